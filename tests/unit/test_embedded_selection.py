"""Which PostgreSQL the tests and `monitorctl demo` get: an explicit DSN, else Docker when an engine
answers, else a local throwaway cluster (no database needed here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from monitorctl import embedded


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("MONITOR_TEST_DSN", raising=False)
    monkeypatch.delenv("MONITOR_NO_DOCKER", raising=False)


@pytest.fixture
def starters(monkeypatch):
    """Record which backend start() picks instead of starting one."""
    calls = []
    monkeypatch.setattr(embedded, "external", lambda dsn: calls.append(("external", dsn)) or "ext")
    monkeypatch.setattr(embedded, "start_docker", lambda settings=None: calls.append(("docker",)) or "dock")
    monkeypatch.setattr(embedded, "start_local", lambda say, settings=None: calls.append(("local",)) or "loc")
    return calls


def test_monitor_test_dsn_wins_even_when_docker_answers(monkeypatch, starters):
    monkeypatch.setenv("MONITOR_TEST_DSN", "host=db.example port=5433 dbname=t")
    monkeypatch.setattr(embedded, "docker_available", lambda: True)
    assert embedded.choose_backend() == "external"
    assert embedded.start() == "ext"
    assert starters == [("external", "host=db.example port=5433 dbname=t")]


def test_docker_only_when_an_engine_answers(monkeypatch, starters):
    monkeypatch.setattr(embedded, "docker_available", lambda: True)
    assert embedded.choose_backend() == "docker"
    messages = []
    assert embedded.start(messages.append) == "dock"
    assert starters == [("docker",)] and "Docker" in messages[0]


def test_local_cluster_otherwise(monkeypatch, starters):
    monkeypatch.setattr(embedded, "docker_available", lambda: False)
    assert embedded.choose_backend() == "local"
    assert embedded.start() == "loc"
    assert starters == [("local",)]


def test_no_docker_backend_without_its_dockerfile(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "docker_available", lambda: True)
    monkeypatch.setattr(embedded, "DOCKER_DIR", tmp_path)  # e.g. an installed wheel: no docker/ folder
    assert embedded.choose_backend() == "local"


def _fake_docker(ping):
    def from_env(timeout=None):
        client = types.SimpleNamespace(ping=ping)
        return client
    return types.SimpleNamespace(from_env=from_env)


def test_docker_available_asks_the_engine(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", _fake_docker(lambda: True))
    assert embedded.docker_available() is True

    def refused():
        raise ConnectionError("Cannot connect to the Docker daemon")
    monkeypatch.setitem(sys.modules, "docker", _fake_docker(refused))
    assert embedded.docker_available() is False


def test_monitor_no_docker_turns_docker_off(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", _fake_docker(lambda: True))
    monkeypatch.setenv("MONITOR_NO_DOCKER", "1")
    assert embedded.docker_available() is False


def test_a_client_without_an_engine_is_not_docker(monkeypatch, tmp_path):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")  # nothing listens there
    assert embedded.docker_available() is False


def test_start_local_refuses_to_promise_pg_cron_it_does_not_have(monkeypatch):
    monkeypatch.setattr(embedded, "pg_bindir", lambda: Path("/nonexistent/bin"))
    with pytest.raises(embedded.EmbeddedError, match="pg_cron is not installed"):
        embedded.start_local(with_cron=True)


def test_the_docker_image_preloads_pg_cron():
    dockerfile = (embedded.DOCKER_DIR / "Dockerfile").read_text()
    assert "FROM postgres:15" in dockerfile
    assert "postgresql-15-cron" in dockerfile
    assert "shared_preload_libraries = 'pg_cron'" in dockerfile
    assert "cron.database_name = 'postgres'" in dockerfile
    assert embedded.CRON_DATABASE == "postgres"
