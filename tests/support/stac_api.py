"""A real, private STAC API for tests: PostgreSQL + PostGIS + pgstac, served by stac-fastapi-pgstac.

``LocalStacApi`` starts, in a temporary directory, a throw-away PostgreSQL cluster that listens
on 127.0.0.1 only (and on a unix socket inside the temporary directory), installs the pgstac
schema with pypgstac, and serves it with ``uvicorn stac_fastapi.pgstac.app:create_app`` on
127.0.0.1 and a free port. ``close()`` stops both and deletes the directory. Loading goes through
pypgstac's ``Loader`` in upsert mode, so loading the same items twice is harmless.

The second half of the module reads the real STAC metadata kept in ``../shared/data/stac`` (JSON
items, feature collections and stac-geoparquet files) and builds a matching collection for each
collection id: the real collection JSON where one was recorded, otherwise one whose extent is
computed from the items. Item metadata is never edited.

Page size: stac-fastapi 7 answers 10 items per page unless the request says ``limit`` (capped at
10,000); it has no server-side setting for that default, so tests choose the page size with
pystac-client's ``limit``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

#: Environment variable naming the folder of the PostgreSQL binaries (``initdb``, ``pg_ctl``).
PG_BINDIR_ENV = "GEOALIGN_PG_BINDIR"

#: Where Debian / Ubuntu put the binaries of ``postgresql-15`` (first choice), then other majors.
_DEBIAN_BINDIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/*/bin")

_INSTALL_HINT = (
    "install PostgreSQL 15 with PostGIS (Debian/Ubuntu: `apt-get install postgresql-15-postgis-3`) "
    f"or point {PG_BINDIR_ENV} at the folder holding initdb and pg_ctl"
)


class StacApiError(RuntimeError):
    """The local STAC API could not be started, loaded or stopped."""


class PostgresNotFoundError(StacApiError, FileNotFoundError):
    """PostgreSQL or PostGIS is not installed on this machine."""


# --------------------------------------------------------------------------------------------------
# Finding PostgreSQL
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresInstall:
    """Where the PostgreSQL binaries and the PostGIS extension of one installation live.

    Attributes:
        bindir: Folder holding ``initdb``, ``pg_ctl`` and ``pg_config``.
        sharedir: The installation's share folder (``extension/postgis.control`` lies below it).
    """

    bindir: Path
    sharedir: Path

    def tool(self, name: str) -> str:
        """Absolute path of one PostgreSQL program, e.g. ``"initdb"``."""
        return str(self.bindir / name)


def find_postgres() -> PostgresInstall:
    """Find PostgreSQL binaries with the PostGIS extension installed.

    Looks at ``$GEOALIGN_PG_BINDIR``, then ``/usr/lib/postgresql/15/bin``, then other Debian majors,
    then ``initdb`` on ``PATH``.

    Raises:
        PostgresNotFoundError: No installation with ``initdb``, ``pg_ctl`` and PostGIS was found.
    """
    candidates: list[Path] = []
    if env := os.environ.get(PG_BINDIR_ENV):
        candidates.append(Path(env))
    for pattern in _DEBIAN_BINDIRS:
        candidates.extend(sorted(Path("/").glob(pattern.lstrip("/")), reverse=True))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    problems: list[str] = []
    for bindir in dict.fromkeys(candidates):
        if not all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_config")):
            problems.append(f"{bindir}: no initdb/pg_ctl/pg_config")
            continue
        sharedir = Path(
            subprocess.run(
                [str(bindir / "pg_config"), "--sharedir"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        if not (sharedir / "extension" / "postgis.control").is_file():
            problems.append(f"{bindir}: PostGIS is not installed in {sharedir}/extension")
            continue
        return PostgresInstall(bindir=bindir, sharedir=sharedir)
    tried = "; ".join(problems) or "no candidate folder exists"
    raise PostgresNotFoundError(f"PostgreSQL with PostGIS not found ({tried}): {_INSTALL_HINT}")


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send SIGTERM to this child when the test process dies (even by SIGKILL)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    return "\n".join(text.splitlines()[-lines:])


class LocalStacApi:
    """A private pgstac database and stac-fastapi-pgstac server on 127.0.0.1, for tests.

    Example:
        >>> with LocalStacApi() as api:  # doctest: +SKIP
        ...     api.load_collections([collection])
        ...     api.load_items(items)
        ...     pystac_client.Client.open(api.url).search(collections=[collection["id"]])

    Args:
        install: The PostgreSQL installation to use; found with :func:`find_postgres` when omitted.
        context: Let pgstac count matches (``numberMatched`` in search responses; pgstac's own
            default is off, as on Planetary Computer).
        startup_timeout: Seconds to wait for PostgreSQL and then for the API to answer.
        base_dir: Folder in which the temporary directory is made (the system default when omitted).
            When running as root it must be reachable by the ``postgres`` user.
    """

    def __init__(
        self,
        *,
        install: PostgresInstall | None = None,
        context: bool = True,
        startup_timeout: float = 60.0,
        base_dir: Path | None = None,
    ) -> None:
        self._install = install
        self._context = context
        self._startup_timeout = startup_timeout
        self._base_dir = base_dir
        self._tmp: Path | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._server_log: Any = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._pg_started = False
        self._password = secrets.token_urlsafe(18)
        self.pg_port = 0
        self.api_port = 0
        #: Seconds the last :meth:`start` took.
        self.startup_seconds = float("nan")

    # -- properties ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL of the STAC API (``http://127.0.0.1:PORT``)."""
        if self._server is None:
            raise StacApiError("the STAC API is not running: call start() or use `with`")
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dsn(self) -> str:
        """libpq connection string of the pgstac database (superuser ``postgres``, over TCP)."""
        return f"postgresql://postgres:{self._password}@127.0.0.1:{self.pg_port}/postgres"

    @property
    def directory(self) -> Path:
        """The temporary directory holding the cluster, the logs and the unix socket."""
        if self._tmp is None:
            raise StacApiError("the STAC API is not running")
        return self._tmp

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Self:
        """Create the cluster, install pgstac, start the API and wait until ``/`` answers.

        Raises:
            PostgresNotFoundError: PostgreSQL or PostGIS is missing.
            StacApiError: A step failed; the message carries the tail of the relevant log.
        """
        if self._tmp is not None:
            raise StacApiError("this LocalStacApi was already started")
        started = time.perf_counter()
        install = self._install = self._install or find_postgres()
        atexit.register(self.close)
        try:
            self._make_directory()
            self._start_watchdog(install)
            self._initdb(install)
            self._start_postgres(install)
            self._start_api()  # imports take ~1 s: overlap them with the migration
            self._migrate()
            self._wait_for_api()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    def close(self) -> None:
        """Stop the API and the cluster and delete the temporary directory (safe to call twice)."""
        errors: list[str] = []
        if self._server is not None:
            if self._server.poll() is None:
                self._server.terminate()
                try:
                    self._server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._server.kill()
                    self._server.wait(timeout=10)
            self._server = None
        if self._server_log is not None:
            self._server_log.close()
            self._server_log = None
        if self._pg_started and self._tmp is not None:
            result = self._run_as_owner(
                [
                    self._tool("pg_ctl"),
                    "stop",
                    "-D",
                    str(self._tmp / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                ],
                check=False,
            )
            if result.returncode != 0:
                errors.append(f"pg_ctl stop failed: {result.stderr.strip()}")
            self._pg_started = False
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._watchdog is not None:
            if self._watchdog.stdin is not None:
                with contextlib.suppress(OSError):
                    self._watchdog.stdin.write(b"closed\n")
                    self._watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)
            self._watchdog = None
        atexit.unregister(self.close)
        if errors:
            raise StacApiError("; ".join(errors))

    # -- loading -----------------------------------------------------------------------------------

    def load_collections(self, collections: Iterable[dict[str, Any]]) -> None:
        """Insert or update collections (pypgstac upsert)."""
        from pypgstac.load import Loader, Methods

        with self._pgstac() as db:
            Loader(db).load_collections(iter(list(collections)), insert_mode=Methods.upsert)

    def load_items(self, items: Iterable[dict[str, Any]]) -> None:
        """Insert or update items (pypgstac upsert); their collections must be loaded first.

        Raises:
            StacApiError: When an item has no ``collection`` or names one that is not loaded.
        """
        from pypgstac.load import Loader, Methods

        items = list(items)
        wanted = {item.get("collection") for item in items}
        if None in wanted:
            bad = next(item.get("id") for item in items if item.get("collection") is None)
            raise StacApiError(
                f"item {bad!r} has no 'collection': pgstac stores items by collection"
            )
        missing = sorted(str(c) for c in wanted - set(self.collection_ids()))
        if missing:
            raise StacApiError(f"load the collections {missing} before their items")
        with self._pgstac() as db:
            Loader(db).load_items(iter(items), insert_mode=Methods.upsert)

    def collection_ids(self) -> list[str]:
        """Ids of the collections in the database."""
        with self._pgstac() as db:
            return [row[0] for row in db.query("SELECT id FROM collections ORDER BY id;")]

    def reset(self) -> None:
        """Delete every item and collection, so that a test module starts from an empty API.

        pgstac also caches the match count of each search (table ``search_wheres``, one day);
        it is cleared too, or a later search would report the counts of deleted items.
        """
        with self._pgstac() as db:
            for _ in db.query("SELECT delete_collection(id) FROM collections;"):
                pass
            for _ in db.query("DELETE FROM search_wheres RETURNING 1;"):
                pass

    # -- internals -----------------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        if self._install is None:
            raise StacApiError("no PostgreSQL installation chosen yet: call start()")
        return self._install.tool(name)

    def _owner(self) -> pwd.struct_passwd | None:
        """The OS user owning the cluster: ``postgres`` when we are root (initdb refuses root)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as err:
            raise StacApiError(
                "running as root, but there is no 'postgres' user to own the cluster "
                "(initdb refuses to run as root): install the Debian postgresql packages "
                "or run the tests as a normal user"
            ) from err

    def _run_as_owner(
        self, args: list[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        kwargs: dict[str, Any] = {}
        if owner is not None:
            kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        try:
            result = subprocess.run(
                args,
                capture_output=True,
                text=True,
                cwd=self._tmp,
                env={**os.environ, "LC_ALL": "C"},
                check=False,
                **kwargs,
            )
        except OSError as err:
            raise StacApiError(f"{Path(args[0]).name} could not be run: {err}") from err
        if check and result.returncode != 0:
            raise StacApiError(
                f"{Path(args[0]).name} failed with exit code {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def _make_directory(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="geoalign-pgstac-", dir=self._base_dir))
        owner = self._owner()
        if owner is not None:
            os.chown(self._tmp, owner.pw_uid, owner.pw_gid)
            probe = subprocess.run(
                ["test", "-w", str(self._tmp)], user=owner.pw_uid, group=owner.pw_gid, check=False
            )
            if probe.returncode != 0:
                raise StacApiError(
                    f"the postgres user cannot reach {self._tmp}: pass base_dir= (or set TMPDIR "
                    "to) a folder that every user can traverse, such as /tmp"
                )

    def _start_watchdog(self, install: PostgresInstall) -> None:
        """Start a helper that stops the cluster and deletes the directory if we die abruptly.

        ``close()`` (run by the fixture, also when tests fail, and at interpreter exit) does the
        cleaning; the helper covers a test process killed outright (SIGKILL, a CI timeout), after
        which the daemonized postmaster would otherwise run on. uvicorn, a direct child, gets
        SIGTERM from the kernel then (see ``_die_with_parent``).
        """
        owner = self._owner()
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--watchdog",
                install.tool("pg_ctl"),
                str(self.directory),
                str(owner.pw_uid if owner else -1),
                str(owner.pw_gid if owner else -1),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C spares it
        )

    def _initdb(self, install: PostgresInstall) -> None:
        tmp = self.directory
        pwfile = tmp / "pwfile"
        pwfile.write_text(self._password + "\n")
        pwfile.chmod(0o600)
        owner = self._owner()
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run_as_owner(
            [
                install.tool("initdb"),
                "-D",
                str(tmp / "data"),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ]
        )
        pwfile.unlink()
        (tmp / "socket").mkdir(mode=0o700)
        if owner is not None:
            os.chown(tmp / "socket", owner.pw_uid, owner.pw_gid)

    def _start_postgres(self, install: PostgresInstall) -> None:
        tmp = self.directory
        conf = tmp / "data" / "postgresql.conf"
        base_conf = conf.read_text()
        for attempt in range(3):  # another process may take the free port before postgres does
            self.pg_port = free_port()
            conf.write_text(
                base_conf
                + "\n# geoalign tests: private, throw-away cluster\n"
                + "listen_addresses = '127.0.0.1'\n"
                + f"port = {self.pg_port}\n"
                + f"unix_socket_directories = '{tmp / 'socket'}'\n"
                + "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                + "jit = off\n"  # JIT compilation only slows pgstac's small test queries down
            )
            result = self._run_as_owner(
                [
                    install.tool("pg_ctl"),
                    "start",
                    "-D",
                    str(tmp / "data"),
                    "-l",
                    str(tmp / "postgres.log"),
                    "-w",
                    "-t",
                    str(int(self._startup_timeout)),
                ],
                check=False,
            )
            if result.returncode == 0:
                self._pg_started = True
                return
            if "could not bind" not in _tail(tmp / "postgres.log") or attempt == 2:
                raise StacApiError(
                    f"pg_ctl start failed: {result.stderr.strip()}\n--- postgres.log ---\n"
                    f"{_tail(tmp / 'postgres.log')}"
                )

    @contextlib.contextmanager
    def _pgstac(self) -> Iterator[Any]:
        from pypgstac.db import PgstacDB

        db = PgstacDB(dsn=self.dsn)
        try:
            with db:
                yield db
        finally:
            db.close()

    def _migrate(self) -> None:
        from pypgstac.migrate import Migrate

        with self._pgstac() as db:
            Migrate(db).run_migration()
            db.query_one(
                "INSERT INTO pgstac_settings (name, value) VALUES ('context', %s) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value RETURNING name;",
                ("on" if self._context else "off",),
            )

    def _start_api(self) -> None:
        tmp = self.directory
        self.api_port = free_port()
        # A minimal environment: stac-fastapi reads its settings from any matching variable (and
        # from ./.env, hence cwd=tmp), so nothing of the caller's environment may leak in.
        env = {
            key: os.environ[key]
            for key in ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")
            if key in os.environ
        }
        env.update(
            {
                "PGUSER": "postgres",
                "PGPASSWORD": self._password,
                "PGHOST": "127.0.0.1",
                "PGPORT": str(self.pg_port),
                "PGDATABASE": "postgres",
                "DB_MIN_CONN_SIZE": "1",
                "DB_MAX_CONN_SIZE": "4",
                "STAC_FASTAPI_TITLE": "geoalign test STAC API",
                "STAC_FASTAPI_DESCRIPTION": "pgstac on a private PostgreSQL, for tests",
                "STAC_FASTAPI_LANDING_ID": "geoalign-tests",
                "STAC_FASTAPI_VERSION": "test",
            }
        )
        self._server_log = (tmp / "api.log").open("wb")
        self._server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "stac_fastapi.pgstac.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",  # never uvicorn's 0.0.0.0
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
            cwd=tmp,
            env=env,
            stdout=self._server_log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self._server is not None
            if self._server.poll() is not None:
                raise StacApiError(
                    f"the STAC API exited with code {self._server.returncode} while starting\n"
                    f"--- api.log ---\n{_tail(self.directory / 'api.log')}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=2) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                last_error = str(err)
            time.sleep(0.05)
        raise StacApiError(
            f"the STAC API at {self.url} did not answer within {self._startup_timeout:.0f} s "
            f"(last error: {last_error})\n--- api.log ---\n{_tail(self.directory / 'api.log')}\n"
            f"--- postgres.log ---\n{_tail(self.directory / 'postgres.log')}"
        )


# --------------------------------------------------------------------------------------------------
# Real STAC metadata from ../shared/data/stac
# --------------------------------------------------------------------------------------------------

#: Real item files below the shared data folder, by a short source name (provider-collection).
REAL_ITEM_FILES: dict[str, str] = {
    "pc-sentinel-2-l2a": "stac/extracted/planetarycomputer__sentinel-2-l2a.json",
    "pc-sentinel-2-l2a-geoparquet": "stac/stac-geoparquet/sentinel-2-l2a-pc.json",
    "pc-sentinel-1-rtc": "stac/stac-geoparquet/sentinel-1-rtc-pc.json",
    "pc-naip": "stac/extracted/planetarycomputer__naip.json",
    "pc-naip-geoparquet": "stac/stac-geoparquet/naip-pc.json",
    "pc-3dep-lidar-dsm": "stac/stac-geoparquet/3dep-lidar-dsm-pc.json",
    "pc-3dep-lidar-copc": "stac/stac-geoparquet/3dep-lidar-copc-pc.json",
    "pc-landsat-c2-l2": "stac/stac-geoparquet/landsat-c2-l2-pc.json",
    "pc-cop-dem-glo-30": "stac/stac-geoparquet/cop-dem-glo-30-pc.json",
    "pc-io-lulc-annual-v02": "stac/stac-geoparquet/io-lulc-annual-v02-pc.json",
    "es-sentinel-2-l2a": "stac/extracted/earth-search__sentinel-2-l2a.json",
    "es-sentinel-2-c1-l2a": "stac/extracted/earth-search__sentinel-2-c1-l2a.json",
    "es-sentinel-2-l1c": "stac/extracted/earth-search__sentinel-2-l1c.json",
    "es-sentinel-1-grd": "stac/extracted/earth-search__sentinel-1-grd.json",
    "es-landsat-c2-l2": "stac/extracted/earth-search__landsat-c2-l2.json",
    # 10,000 Planetary Computer NAIP items (Colorado, Nebraska, ...) as stac-geoparquet.
    "naip-geoparquet": "stac/stac-fastapi-geoparquet/naip.parquet",
}

#: Real collection JSON recorded from the provider, by collection id. Every other collection is
#: generated by :func:`collection_for_items`.
REAL_COLLECTION_FILES: dict[str, str] = {
    "sentinel-2-l2a": "stac/odc-stac/sentinel-2-l2a.collection.json",  # Planetary Computer's
    "3dep-lidar-copc": "stac/stac-geoparquet/3dep-lidar-copc-pc-collection.json",
}


def read_items(path: Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Read real STAC items from a JSON file (item, list, FeatureCollection) or stac-geoparquet.

    Items read from stac-geoparquet lose the nulls Arrow adds (see :func:`_drop_arrow_nulls`).
    Features that are not complete items are left out: the Earth Search ``sentinel-2-c1-l2a``
    recording holds, besides 6 items, 10 features of a ``fields``-restricted response (only id,
    bbox, collection and a few properties; no geometry, assets or links).

    Args:
        path: A ``.json`` or ``.parquet`` file.
        limit: Read at most this many items (the first ones, in file order).
    """
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        from stac_geoparquet.arrow import stac_table_to_items

        table = pq.read_table(path)
        if limit is not None:
            table = table.slice(0, limit)
        features: list[dict[str, Any]] = [
            _drop_arrow_nulls(item) for item in stac_table_to_items(table)
        ]
    else:
        data = json.loads(path.read_text())
        if isinstance(data, list):
            features = data
        elif data.get("type") == "FeatureCollection":
            features = data["features"]
        elif data.get("type") == "Feature":
            features = [data]
        else:
            raise ValueError(f"{path} holds no STAC item (type {data.get('type')!r})")
    items = [f for f in features if "geometry" in f and "assets" in f]
    return items[:limit] if limit is not None else items


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _drop_arrow_nulls(item: dict[str, Any]) -> dict[str, Any]:
    """Undo the nulls that Arrow adds to items read from stac-geoparquet.

    A parquet file has one schema for all rows, so every item read back carries every column and
    struct field of the file, null where the original JSON item had no such key (``"title": null``
    in links, ``"description": null`` in ``eo:bands``). stac-geoparquet cannot tell those from real
    nulls; the original items had none, except ``properties.datetime``, which STAC requires (null
    for items with a start/end range) and which is kept.
    """
    cleaned: dict[str, Any] = _without_nulls(item)
    if "datetime" in item.get("properties", {}):
        cleaned.setdefault("properties", {})["datetime"] = item["properties"]["datetime"]
    return cleaned


def real_items(
    shared_data: Path, sources: Sequence[str], *, limits: dict[str, int] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Real items of several sources, by source name (see :data:`REAL_ITEM_FILES`).

    Args:
        shared_data: The shared data folder (the ``shared_data`` fixture).
        sources: Source names, keys of :data:`REAL_ITEM_FILES`.
        limits: At most this many items for some sources, e.g. ``{"naip-geoparquet": 150}``.
    """
    unknown = sorted(set(sources) - set(REAL_ITEM_FILES))
    if unknown:
        raise KeyError(f"unknown real item sources {unknown}; known: {sorted(REAL_ITEM_FILES)}")
    limits = limits or {}
    return {
        name: read_items(shared_data / REAL_ITEM_FILES[name], limit=limits.get(name))
        for name in sources
    }


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def item_interval(item: dict[str, Any]) -> tuple[datetime, datetime]:
    """The time span of an item: ``datetime`` or ``start_datetime``/``end_datetime``, in UTC."""
    props = item["properties"]
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime")
    if start is None or end is None:
        raise ValueError(f"item {item.get('id')!r} has neither datetime nor start/end_datetime")
    return _utc(start), _utc(end)


def item_bbox(item: dict[str, Any]) -> tuple[float, float, float, float]:
    """The 2D bbox of an item (its ``bbox``, 2D or 3D, else the bounds of its geometry)."""
    bbox = item.get("bbox")
    if bbox is not None:
        if len(bbox) == 6:
            return (bbox[0], bbox[1], bbox[3], bbox[4])
        return (bbox[0], bbox[1], bbox[2], bbox[3])
    from shapely.geometry import shape

    minx, miny, maxx, maxy = shape(item["geometry"]).bounds
    return (minx, miny, maxx, maxy)


def collection_for_items(
    collection_id: str, items: Sequence[dict[str, Any]], shared_data: Path
) -> dict[str, Any]:
    """The collection for some items: the recorded real one if any, else one generated from them.

    A generated collection has the minimum STAC asks for, and an extent (bbox and interval)
    computed from the items.
    """
    if collection_id in REAL_COLLECTION_FILES:
        collection: dict[str, Any] = json.loads(
            (shared_data / REAL_COLLECTION_FILES[collection_id]).read_text()
        )
        return collection
    if not items:
        raise ValueError(f"no items to compute the extent of collection {collection_id!r} from")
    boxes = [item_bbox(item) for item in items]
    spans = [item_interval(item) for item in items]
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection_id,
        "description": (
            f"Generated for geoalign tests from {len(items)} real items; extent computed from them."
        ),
        "license": "other",
        "extent": {
            "spatial": {
                "bbox": [
                    [
                        min(b[0] for b in boxes),
                        min(b[1] for b in boxes),
                        max(b[2] for b in boxes),
                        max(b[3] for b in boxes),
                    ]
                ]
            },
            "temporal": {
                "interval": [[_iso(min(s[0] for s in spans)), _iso(max(s[1] for s in spans))]]
            },
        },
        "links": [],
    }


def collections_for_items(
    items: Iterable[dict[str, Any]], shared_data: Path
) -> list[dict[str, Any]]:
    """One collection (real or generated, see :func:`collection_for_items`) per collection id."""
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item.get("collection") is None:
            raise ValueError(f"item {item.get('id')!r} has no 'collection'")
        by_collection.setdefault(item["collection"], []).append(item)
    return [collection_for_items(cid, its, shared_data) for cid, its in by_collection.items()]


def load_real_items(
    api: LocalStacApi,
    shared_data: Path,
    sources: Sequence[str],
    *,
    limits: dict[str, int] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Load real items of several sources, and their collections, into a local API.

    Items of different providers that share a collection id (Planetary Computer and Earth Search
    both call theirs ``sentinel-2-l2a``) land in one collection; tell them apart by id or by
    provider-specific properties. A generated collection's extent covers the items of this call.

    Returns:
        The loaded items by source name, exactly as read.
    """
    by_source = real_items(shared_data, sources, limits=limits)
    everything = [item for items in by_source.values() for item in items]
    api.load_collections(collections_for_items(everything, shared_data))
    api.load_items(everything)
    return by_source


def _watchdog_main(pg_ctl: str, directory: str, uid: int, gid: int) -> None:
    """Wait until the parent closes our stdin; unless it said ``closed``, clean up after it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.stdin.readline().strip() == "closed":
        return
    kwargs: dict[str, Any] = {}
    if uid >= 0:
        kwargs = {"user": uid, "group": gid, "extra_groups": []}
    data = str(Path(directory) / "data")
    stop = [pg_ctl, "stop", "-D", data, "-m", "immediate", "-w", "-t", "30"]
    subprocess.run(stop, capture_output=True, check=False, **kwargs)
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--watchdog"]:
    _watchdog_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
