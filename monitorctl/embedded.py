"""A real PostgreSQL on demand, for the tests and for `monitorctl demo`.

Backends, chosen in this order by :func:`start`:

* ``external``: an explicit DSN (``MONITOR_TEST_DSN``) to a server someone else runs;
* ``local``: a throwaway cluster made with the machine's ``initdb``/``pg_ctl`` in a temp dir,
  listening on a unix socket only, with pg_cron preloaded when its library is installed; preferred
  whenever those binaries are present;
* ``docker``: a testcontainers container built from ``docker/``, when the server binaries are absent
  and a Docker engine answers, or when asked for with ``MONITOR_TEST_BACKEND=docker``. When Docker
  cannot build, pull or start it (an engine on an air-gapped network), the local cluster is used
  instead if its binaries are there.

The local cluster runs as the unprivileged ``postgres`` user when started by root (initdb
refuses root), and is stopped and removed at exit, on Ctrl-C and on failure.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

CRON_DATABASE = "postgres"


class EmbeddedError(RuntimeError):
    """The embedded server could not be started; the message says why and what to do."""


@dataclass
class Server:
    """A running PostgreSQL server and how to reach it."""

    backend: str
    conninfo: dict  # connection parameters without dbname
    cron_database: str | None  # None when pg_cron is not available
    cron_note: str = ""
    container_id: str | None = None  # the docker backend's container
    workers: list["Server"] = field(default_factory=list)  # the citus backend's worker nodes
    _stop: list = field(default_factory=list, repr=False)

    def dsn(self, dbname: str = CRON_DATABASE) -> str:
        return make_conninfo("", **self.conninfo, dbname=dbname)

    @property
    def has_cron(self) -> bool:
        return self.cron_database is not None

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create (or re-create) database ``name`` and return its DSN.

        On a Citus cluster the database is made on every node: from ``template`` (a database made here
        before, copied on every node alike), or new, with the citus extension and its workers added."""
        from psycopg import sql

        for node in (self, *self.workers):
            with psycopg.connect(node.dsn(), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                conn.execute(stmt)
        if self.workers and not template:
            citus_cluster(self, name)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        for node in (self, *self.workers):
            with psycopg.connect(node.dsn(), autocommit=True) as conn:
                for attempt in range(50):
                    try:
                        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                        break
                    except psycopg.errors.ObjectInUse:  # Citus: a background worker of the database, ending
                        if attempt == 49 or not self.workers:
                            raise
                        time.sleep(0.1)

    def set_template(self, name: str, template: bool) -> None:
        """Mark database ``name`` as a template that may be copied, or not. Nobody may stay connected
        to a database being copied: on a Citus cluster (where each node's maintenance daemon and the
        nodes' cached connections stay in it) a template takes no connections and those are ended."""
        from psycopg import sql

        for node in (self, *self.workers):
            with psycopg.connect(node.dsn(), autocommit=True) as conn:
                allow = not (template and self.workers)
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {} IS_TEMPLATE {}").format(
                    sql.Identifier(name), sql.Literal(allow), sql.Literal(template)))
                if not allow:
                    conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                                 (name,))

    def stop(self) -> None:
        while self._stop:
            with contextlib.suppress(Exception):
                self._stop.pop()()


BACKENDS = ("local", "docker", "dsn", "citus")  # what MONITOR_TEST_BACKEND (or demo --backend) may ask for


def choose_backend(wanted: str | None = None) -> tuple[str, str]:
    """The backend to use and why, in a few words: what ``wanted`` (or MONITOR_TEST_BACKEND) asks for
    (``dsn``: the server of MONITOR_TEST_DSN); else the server of MONITOR_TEST_DSN when it is set;
    else ``local`` when the PostgreSQL server binaries are present, ``docker`` when they are not and
    an engine answers, and ``local`` (which then says what is missing) otherwise."""
    source = "--backend" if wanted else "MONITOR_TEST_BACKEND"
    wanted = (wanted or os.environ.get("MONITOR_TEST_BACKEND", "")).strip().lower()
    if wanted and wanted not in BACKENDS:
        raise EmbeddedError(f"{source}={wanted!r} is not a backend: use local, docker, dsn or citus")
    if wanted == "dsn":
        if not os.environ.get("MONITOR_TEST_DSN"):
            raise EmbeddedError(f"{source}=dsn needs MONITOR_TEST_DSN, the connection string of your server")
        return "external", f"{source}=dsn"
    if wanted:
        return wanted, f"{source}={wanted}"
    if os.environ.get("MONITOR_TEST_DSN"):
        return "external", "MONITOR_TEST_DSN is set"
    if local_binaries_present():
        return "local", "PostgreSQL's server binaries are installed"
    if (DOCKER_DIR / "Dockerfile").exists() and docker_available():
        return "docker", "no PostgreSQL server binaries here, and a Docker engine answers"
    return "local", "no Docker engine answers"


def start(progress=None, settings: dict[str, str] | None = None, backend: str | None = None) -> Server:
    """Start (or reach) a PostgreSQL server with the best backend this machine offers (or ``backend``),
    saying which in one line.

    settings: server parameters for a server started here (an external one is used as it is).
    When Docker fails (build, pull, start), the local cluster is used if its binaries are there,
    and ``progress`` is told so in one line; else EmbeddedError says both why."""
    say = progress or (lambda msg: None)
    backend, why = choose_backend(backend)
    say(f"server: {'your server (MONITOR_TEST_DSN)' if backend == 'external' else backend} ({why})")
    if backend == "external":
        return external(os.environ["MONITOR_TEST_DSN"])
    if backend == "citus":
        return start_citus(say, settings=settings)
    if backend == "docker":
        say("starting PostgreSQL with pg_cron in a Docker container")
        try:
            if not (DOCKER_DIR / "Dockerfile").exists():
                raise EmbeddedError(f"there is no {DOCKER_DIR / 'Dockerfile'} to build its image from")
            return start_docker(settings)
        except Exception as exc:  # e.g. no registry to pull the base image from on an air-gapped network
            why = f"Docker could not start a PostgreSQL container ({one_line(exc)})"
            if not local_binaries_present():
                raise EmbeddedError(f"{why}, and the PostgreSQL server binaries (initdb, pg_ctl) are not "
                                    "installed: install postgresql or set MONITOR_TEST_DSN") from exc
            say(f"{why}: using a local cluster instead")
    return start_local(say, settings=settings)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters (Docker's can be long)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- external -------------------------------------------------------------------------------------

def external(dsn: str) -> Server:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params.pop("dbname", None)
    server = Server("external", params, None)
    with psycopg.connect(server.dsn(dsn_dbname(dsn)), autocommit=True) as conn:
        row = conn.execute(
            "select current_setting('cron.database_name', true),"
            " exists (select from pg_extension where extname = 'pg_cron')"
        ).fetchone()
    if row[0]:
        server.cron_database = row[0]
    else:
        server.cron_note = "pg_cron is not preloaded on that server"
    return server


def dsn_dbname(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn).get("dbname") or CRON_DATABASE


# -- docker (testcontainers) ----------------------------------------------------------------------

DOCKER_DIR = Path(__file__).resolve().parent.parent / "docker"


def docker_available() -> bool:
    """True when a Docker engine answers (not just when the client is installed)."""
    if os.environ.get("MONITOR_NO_DOCKER"):
        return False
    try:
        import docker  # installed with testcontainers
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


OFFICIAL_BASE = "postgres:15.18"          # the PostgreSQL the committed schema dump was made with
LOCAL_BASE = "monitorctl-postgres-base:15"  # the same, built from Debian's archive (docker/build-base.sh)
CONTAINER_LABEL = "monitorctl.test"         # on every container started here: `make test-docker` removes them


def docker_base() -> str:
    """The image docker/Dockerfile builds FROM: the official one when it is here or can be pulled, else
    the one built from Debian's archive; EmbeddedError naming the fix when there is neither."""
    import docker
    import docker.errors
    client = docker.from_env(timeout=60)
    for name in (OFFICIAL_BASE, LOCAL_BASE):
        try:
            client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            pass
    try:
        repo, tag = OFFICIAL_BASE.split(":")
        client.images.pull(repo, tag=tag)
        return OFFICIAL_BASE
    except Exception as exc:
        raise EmbeddedError(f"no base image: {OFFICIAL_BASE} cannot be pulled ({one_line(exc, 120)}) and "
                            f"{LOCAL_BASE} is not built: run docker/build-base.sh (or `make test-docker`)") from exc


def start_docker(settings: dict[str, str] | None = None) -> Server:
    # Ryuk, testcontainers' reaper, is an image of its own that an air-gapped engine cannot pull: the
    # server's stop() removes the container instead, and `make test-docker` removes any left behind
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.image import DockerImage
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before the community/ split
        from testcontainers.postgres import PostgresContainer

    base = docker_base()
    image = DockerImage(path=str(DOCKER_DIR), tag="monitorctl-postgres:15", clean_up=False,
                        buildargs={"BASE": base}).build()
    container = PostgresContainer(str(image), username="postgres", password="postgres", dbname=CRON_DATABASE)
    container.with_kwargs(labels={CONTAINER_LABEL: "1"})
    if settings:
        container.with_command(" ".join(["postgres"] + [f"-c {k}={v}" for k, v in settings.items()]))
    server = Server("docker", {}, CRON_DATABASE)
    server._stop.append(container.stop)  # a container that started but failed later is not left behind
    try:
        container.start()
        server.conninfo = {
            "host": container.get_container_host_ip(),
            "port": str(container.get_exposed_port(5432)),
            "user": "postgres",
            "password": "postgres",
        }
        server.container_id = container.get_wrapped_container().id
        wait_ready(server)
        create_cron_extension(server)
    except BaseException:
        server.stop()
        raise
    return server


# -- local cluster --------------------------------------------------------------------------------

def local_binaries_present() -> bool:
    """True when the PostgreSQL server binaries (initdb, pg_ctl) for a local cluster are installed."""
    try:
        return (pg_bindir() / "pg_ctl").exists()
    except EmbeddedError:
        return False


def pg_bindir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise EmbeddedError("PostgreSQL server binaries not found: install postgresql (initdb, pg_ctl) or set MONITOR_TEST_DSN")


def cron_library_present(bindir: Path) -> bool:
    return (bindir.parent / "lib" / "pg_cron.so").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise EmbeddedError("running as root needs a 'postgres' user to own the server (initdb refuses root)")
    return ["runuser", "-u", "postgres", "--", *cmd]


def start_local(say=lambda msg: None, with_cron: bool | None = None,
                settings: dict[str, str] | None = None, preload: tuple[str, ...] = ()) -> Server:
    """A throwaway cluster; ``with_cron``: None preloads pg_cron when installed, False never, True must.
    ``settings``: server parameters written after the defaults below (they win); ``preload``: libraries
    loaded before pg_cron (citus must come first)."""
    bindir = pg_bindir()
    if with_cron is None:
        with_cron = cron_library_present(bindir)
    elif with_cron and not cron_library_present(bindir):
        raise EmbeddedError("pg_cron is not installed (apt-get install postgresql-15-cron)")
    base = Path(tempfile.mkdtemp(prefix="monitorctl-pg-"))
    datadir, sockdir = base / "data", base
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres") if _has_user("postgres") else None
        if pw:
            os.chown(base, pw.pw_uid, pw.pw_gid)
    os.chmod(base, 0o755)
    port = free_port()
    server = Server("local", {"host": str(sockdir), "port": str(port), "user": "postgres"},
                    CRON_DATABASE if with_cron else None)
    server.cron_note = "" if with_cron else (
        "pg_cron is not preloaded on this server: scheduling is off" if cron_library_present(bindir) else
        "pg_cron is not installed (apt-get install postgresql-15-cron): scheduling is off")
    stopper = _LocalStopper(bindir, datadir, base)
    server._stop.append(stopper)
    atexit.register(server.stop)
    _install_signal_handlers()
    try:
        say(f"initialising a throwaway PostgreSQL cluster in {base}")
        _run(_as_server_user([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]), "initdb")
        conf = [
            "listen_addresses = ''",
            f"port = {port}",
            f"unix_socket_directories = '{sockdir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 200",
            "shared_buffers = 256MB",
            "log_min_messages = warning",
            "timezone = 'UTC'",
        ]
        conf += [f"{k} = '{v}'" for k, v in (settings or {}).items()]
        libraries = [*preload, *(["pg_cron"] if with_cron else [])]
        if libraries:
            conf.append(f"shared_preload_libraries = '{','.join(libraries)}'")
        if "citus" in preload:  # how the node reaches itself (a plan that reads its own shards)
            conf.append(f"citus.local_hostname = '{sockdir}'")
        if with_cron:
            conf += [
                f"cron.database_name = '{CRON_DATABASE}'",
                f"cron.host = '{sockdir}'",
            ]
        with open(datadir / "postgresql.conf", "a") as f:
            f.write("\n# monitorctl embedded server\n" + "\n".join(conf) + "\n")
        _run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(base / "server.log"),
                              "-w", "-t", "60", "start"]), "pg_ctl start")
        stopper.started = True
        wait_ready(server)
        if with_cron:
            create_cron_extension(server)
        say(f"PostgreSQL {server_version(server)} running on {sockdir} port {port}")
        return server
    except BaseException:
        server.stop()
        raise


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class _LocalStopper:
    def __init__(self, bindir: Path, datadir: Path, base: Path):
        self.bindir, self.datadir, self.base, self.started = bindir, datadir, base, False

    def __call__(self) -> None:
        if self.started:
            subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                            "-m", "immediate", "-w", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stdout.strip().splitlines()[-5:])
        raise EmbeddedError(f"{what} failed: {tail}")


_handlers_installed = False


def _install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into a normal exit so atexit stops the server."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))


# -- citus (three local clusters) ------------------------------------------------------------------

CITUS_WORKERS = 2


def citus_present(bindir: Path | None = None) -> bool:
    """True when Citus (citus.so and its extension files) is installed for this PostgreSQL."""
    try:
        bindir = bindir or pg_bindir()
    except EmbeddedError:
        return False
    found = subprocess.run([str(bindir / "pg_config"), "--pkglibdir", "--sharedir"], capture_output=True,
                           text=True) if (bindir / "pg_config").exists() else None
    if found is not None and found.returncode == 0:
        lib, share = (Path(line) for line in found.stdout.split())
    else:  # Debian's layout
        lib, share = bindir.parent / "lib", Path("/usr/share/postgresql") / bindir.parent.name
    return (lib / "citus.so").exists() and (share / "extension" / "citus.control").exists()


def start_citus(say=lambda msg: None, settings: dict[str, str] | None = None,
                workers: int = CITUS_WORKERS) -> Server:
    """A Citus cluster on this machine: a coordinator with pg_cron and ``workers`` workers, each a local
    cluster of its own (citus and pg_cron preloaded on every node, as Citus asks). The nodes reach each
    other over their unix sockets. Databases made through the returned server exist on every node."""
    bindir = pg_bindir()
    if not citus_present(bindir):
        raise EmbeddedError("Citus is not installed for this PostgreSQL: see docs/scaling.md")
    if not cron_library_present(bindir):
        raise EmbeddedError("pg_cron is not installed (apt-get install postgresql-15-cron)")
    settings = {"citus.shard_count": "8", "max_worker_processes": "32", **(settings or {})}
    say(f"starting a Citus cluster: a coordinator and {workers} workers")
    coordinator = start_local(say, with_cron=True, settings=settings, preload=("citus",))
    coordinator.backend = "citus"
    try:
        for _ in range(workers):
            worker = start_local(say, with_cron=True, settings=settings, preload=("citus",))
            coordinator.workers.append(worker)
            coordinator._stop.insert(0, worker.stop)
    except BaseException:
        coordinator.stop()
        raise
    return coordinator


def citus_cluster(server: Server, dbname: str) -> None:
    """Make database ``dbname`` (on every node already) one Citus cluster: the extension everywhere,
    the coordinator's address, and the workers added."""
    for node in (server, *server.workers):
        with psycopg.connect(node.dsn(dbname), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    with psycopg.connect(server.dsn(dbname), autocommit=True) as conn:
        conn.execute("select citus_set_coordinator_host(%s, %s)",
                     (server.conninfo["host"], int(server.conninfo["port"])))
        for worker in server.workers:
            conn.execute("select citus_add_node(%s, %s)", (worker.conninfo["host"], int(worker.conninfo["port"])))


# -- shared ---------------------------------------------------------------------------------------

def wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def create_cron_extension(server: Server) -> None:
    with psycopg.connect(server.dsn(server.cron_database), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")


def server_version(server: Server) -> str:
    with psycopg.connect(server.dsn()) as conn:
        return conn.execute("show server_version").fetchone()[0]
