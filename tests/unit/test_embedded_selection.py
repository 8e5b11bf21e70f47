"""Which PostgreSQL the tests and `monitorctl demo` get: an explicit DSN, else a local throwaway cluster
when the server binaries are there, else Docker when an engine answers; MONITOR_TEST_BACKEND asks for
one; a Docker that cannot start its container falls back to the local cluster (no database needed here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from monitorctl import embedded

REAL_START_DOCKER = embedded.start_docker


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("MONITOR_TEST_DSN", raising=False)
    monkeypatch.delenv("MONITOR_NO_DOCKER", raising=False)
    monkeypatch.delenv("MONITOR_TEST_BACKEND", raising=False)


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
    assert embedded.choose_backend()[0] == "external"
    assert embedded.start() == "ext"
    assert starters == [("external", "host=db.example port=5433 dbname=t")]


def test_docker_only_when_an_engine_answers(monkeypatch, starters):
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: False)
    monkeypatch.setattr(embedded, "docker_available", lambda: True)
    assert embedded.choose_backend()[0] == "docker"
    messages = []
    assert embedded.start(messages.append) == "dock"
    assert starters == [("docker",)] and "a Docker engine answers" in messages[0]


def test_local_cluster_otherwise(monkeypatch, starters):
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: False)
    monkeypatch.setattr(embedded, "docker_available", lambda: False)
    assert embedded.choose_backend()[0] == "local"
    assert embedded.start() == "loc"
    assert starters == [("local",)]


def test_no_docker_backend_without_its_dockerfile(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: False)
    monkeypatch.setattr(embedded, "docker_available", lambda: True)
    monkeypatch.setattr(embedded, "DOCKER_DIR", tmp_path)  # e.g. an installed wheel: no docker/ folder
    assert embedded.choose_backend()[0] == "local"


def test_the_local_cluster_is_preferred_when_its_binaries_are_there(monkeypatch, starters):
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: True)
    monkeypatch.setattr(embedded, "docker_available", lambda: True)  # an engine answers: not asked
    assert embedded.choose_backend()[0] == "local"
    assert embedded.start() == "loc"
    assert starters == [("local",)]


def test_local_binaries_present_needs_initdb_and_pg_ctl(monkeypatch, tmp_path):
    def missing():
        raise embedded.EmbeddedError("PostgreSQL server binaries not found")
    monkeypatch.setattr(embedded, "pg_bindir", missing)
    assert embedded.local_binaries_present() is False
    monkeypatch.setattr(embedded, "pg_bindir", lambda: tmp_path)  # initdb found, pg_ctl not
    assert embedded.local_binaries_present() is False
    (tmp_path / "pg_ctl").touch()
    assert embedded.local_binaries_present() is True


def test_monitor_test_backend_asks_for_one(monkeypatch, starters):
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: True)
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "docker")
    assert embedded.choose_backend()[0] == "docker"
    assert embedded.start() == "dock"
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: False)
    monkeypatch.setattr(embedded, "docker_available", lambda: True)
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "local")
    assert embedded.choose_backend()[0] == "local"
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "podman")
    with pytest.raises(embedded.EmbeddedError, match="use local, docker, dsn or citus"):
        embedded.choose_backend()
    monkeypatch.setenv("MONITOR_TEST_DSN", "host=db.example dbname=t")  # asked for: docker, even with a DSN
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "docker")
    assert embedded.choose_backend() == ("docker", "MONITOR_TEST_BACKEND=docker")
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "dsn")
    assert embedded.choose_backend() == ("external", "MONITOR_TEST_BACKEND=dsn")
    monkeypatch.delenv("MONITOR_TEST_DSN")
    with pytest.raises(embedded.EmbeddedError, match="MONITOR_TEST_BACKEND=dsn needs MONITOR_TEST_DSN"):
        embedded.choose_backend()


def test_start_says_which_backend_and_why(monkeypatch, starters):
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: True)
    messages = []
    embedded.start(messages.append)
    assert messages == ["server: local (PostgreSQL's server binaries are installed)"]
    messages.clear()
    embedded.start(messages.append, backend="docker")
    assert messages[0] == "server: docker (--backend=docker)"


def _docker_fails(monkeypatch, calls, binaries: bool):
    """Docker asked for (or the only choice), and unable to start: e.g. no registry to pull from."""
    def start_docker(settings=None):
        calls.append(("docker",))
        raise RuntimeError('500 Server Error: Internal Server Error ("Get "https://registry-1.docker.io/v2/":\n'
                           'dial tcp: lookup registry-1.docker.io: no such host")')
    monkeypatch.setattr(embedded, "start_docker", start_docker)
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: binaries)
    monkeypatch.setattr(embedded, "docker_available", lambda: True)


def test_a_docker_that_cannot_start_its_container_falls_back_to_the_local_cluster(monkeypatch, starters):
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "docker")
    _docker_fails(monkeypatch, starters, binaries=True)
    messages = []
    assert embedded.start(messages.append) == "loc"
    assert starters == [("docker",), ("local",)]
    said = messages[-1]
    assert said.count("\n") == 0 and said.startswith("Docker could not start a PostgreSQL container (500 ")
    assert "no such host" in said and said.endswith("): using a local cluster instead")


def test_a_docker_that_cannot_start_and_no_local_binaries_is_one_error(monkeypatch, starters):
    _docker_fails(monkeypatch, starters, binaries=False)
    with pytest.raises(embedded.EmbeddedError) as caught:
        embedded.start()
    message = str(caught.value)
    assert "\n" not in message and "Docker could not start a PostgreSQL container" in message
    assert "initdb, pg_ctl" in message and "MONITOR_TEST_DSN" in message
    assert starters == [("docker",)]


def test_an_image_that_cannot_be_pulled_falls_back(monkeypatch, starters):
    """The real start_docker, its build failing as on an air-gapped network."""
    errors = pytest.importorskip("docker.errors")
    image = pytest.importorskip("testcontainers.core.image")

    class Unbuildable:
        def __init__(self, *args, **kwargs):
            pass

        def build(self, **kwargs):
            raise errors.BuildError("failed to resolve source metadata for docker.io/library/postgres:15: "
                                    "dial tcp: lookup registry-1.docker.io: no such host", build_log=iter([]))

    monkeypatch.setattr(image, "DockerImage", Unbuildable)
    monkeypatch.setattr(embedded, "docker_base", lambda: embedded.OFFICIAL_BASE)
    monkeypatch.setattr(embedded, "start_docker", REAL_START_DOCKER)
    monkeypatch.setenv("MONITOR_TEST_BACKEND", "docker")
    monkeypatch.setattr(embedded, "local_binaries_present", lambda: True)
    messages = []
    assert embedded.start(messages.append) == "loc"
    assert messages[-1].endswith("no such host): using a local cluster instead")


def test_demo_says_in_one_line_that_it_has_no_server(monkeypatch):
    from tests.acceptance.support import invoke

    monkeypatch.setenv("MONITOR_TEST_BACKEND", "docker")
    _docker_fails(monkeypatch, [], binaries=False)
    r = invoke("demo")
    assert r.returncode == 1 and r.stdout == ""
    banner, chosen, trying, error = r.stderr.splitlines()  # and no traceback
    assert banner.startswith("monitorctl demo: ") and chosen == "  server: docker (MONITOR_TEST_BACKEND=docker)"
    assert "Docker" in trying
    assert error.startswith("monitorctl: cannot start a throwaway PostgreSQL for the demo: Docker could not "
                            "start a PostgreSQL container (500 Server Error") and error.endswith("MONITOR_TEST_DSN")


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
    assert "ARG BASE=postgres:15.18\nFROM ${BASE}" in dockerfile and embedded.OFFICIAL_BASE == "postgres:15.18"
    assert "ENV POSTGRES_HOST_AUTH_METHOD=trust" in dockerfile
    assert "postgresql-15-cron" in dockerfile
    assert "shared_preload_libraries = 'pg_cron'" in dockerfile
    assert "cron.database_name = 'postgres'" in dockerfile
    assert embedded.CRON_DATABASE == "postgres"
