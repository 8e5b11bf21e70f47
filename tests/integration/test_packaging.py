"""The wheel carries sql/, migrations/ and queries.sql, and a monitorctl installed from it works
without the source tree."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg

from tests.foundation_support import DETECTORS, cli_env

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(out: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
    if importlib.util.find_spec("hatchling"):  # build offline when the backend is at hand
        cmd.append("--no-build-isolation")
    proc = subprocess.run([*cmd, str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("monitorctl-*.whl")
    return wheel


def test_the_wheel_ships_the_sql_and_an_installed_monitorctl_uses_it(tmp_path, fresh_db):
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"monitorctl/queries.sql"}
    expected |= {f"monitorctl/sql/{p.name}" for p in (ROOT / "sql").iterdir() if ".sql" in p.name}
    for which in ("monitor", "ledger"):
        expected |= {f"monitorctl/migrations/{which}/{p.name}" for p in (ROOT / "migrations" / which).glob("*.sql")}
    assert any(n.startswith("monitorctl/sql/") for n in expected)
    assert expected <= names, sorted(expected - names)

    # unpacked outside the source tree, first on the path: it reads its own copies of the SQL
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = cli_env() | {"PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "import monitorctl, monitorctl.resources as r;"
         " print(monitorctl.__file__); print(r.sql_dir()); print(r.migrations_dir('monitor'))"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert probe.returncode == 0, probe.stderr
    for line in probe.stdout.split():
        assert Path(line).is_relative_to(site), probe.stdout

    result = subprocess.run([sys.executable, "-m", "monitorctl", "--dsn", fresh_db, "install", "--with-ledger",
                             "--no-schedule"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(fresh_db) as c:
        assert {r[0] for r in c.execute("select name from monitor.detectors")} == DETECTORS
    assert os.listdir(site / "monitorctl" / "sql")
