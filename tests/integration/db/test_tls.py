"""PostgreSQL over TLS as managed servers offer it: the server's certificate signed by a CA of their own, which
the URL names with libpq's ``sslrootcert``, and client certificates (``sslcert``, ``sslkey``) where the server
asks for them. The server sits behind an endpoint that speaks TLS as PostgreSQL does and refuses a connection
without it, so every connection that works here was encrypted."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from bot.errors import DatabaseUnavailable
from bot.settings import load_settings
from tests.conftest import EMBEDDING_DIMENSION
from tests.fakes.llm_server import FakeLLM
from tests.integration.services.test_coordination import seen_within
from tests.integration.test_cli import assert_one_line_error, hearth
from tests.support.bot import container_on
from tests.support.postgres import OwnPostgres, TlsPostgres, create_database, tls_postgres


@pytest.fixture(scope="module")
def tls(own_server: OwnPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPostgres]:
    with tls_postgres(own_server.url, tmp_path_factory.mktemp("tls")) as front:
        yield front


@pytest.fixture(scope="module")
def client_certificates(own_server: OwnPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPostgres]:
    """The same server, asking every client for a certificate from the test's CA."""
    with tls_postgres(own_server.url, tmp_path_factory.mktemp("tls-client"), client_certificates=True) as front:
        yield front


@pytest.fixture(scope="module")
async def database_name(own_server: OwnPostgres) -> str:
    """A database on the server, migrated (over its Unix socket)."""
    url = await create_database(own_server.url, f"hearth_tls_{uuid.uuid4().hex[:8]}")
    database = Database(url)
    try:
        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
    finally:
        await database.dispose()
    return str(url.database)


def configured(url: URL) -> str:
    """DATABASE_URL as Hearth's settings take it."""
    return load_settings(env_file=None, database_url=url.render_as_string(hide_password=False)).database_url


@contextlib.asynccontextmanager
async def connected(url: URL) -> AsyncIterator[Database]:
    """A :class:`Database` on ``url`` as configured, checked as at start-up."""
    database = Database(configured(url))
    try:
        await database.check()
        yield database
    finally:
        await database.dispose()


async def refusal(url: URL) -> str:
    """The one line a start-up on ``url`` fails with."""
    with pytest.raises(DatabaseUnavailable) as refused:
        async with connected(url):
            pass
    return str(refused.value)


async def test_verify_full_with_the_servers_ca_connects_and_migrates(
    tls: TlsPostgres, own_server: OwnPostgres, database_name: str, tmp_path: Path
) -> None:
    url = tls.url(database_name, sslmode="verify-full", sslrootcert=str(tls.files.ca))
    async with connected(url) as database:
        assert await migrations.current_revision(database) == migrations.head_revision()

    fresh = await create_database(own_server.url, f"hearth_tls_cli_{uuid.uuid4().hex[:8]}")
    url = url.set(database=fresh.database)
    upgraded = hearth("db", "upgrade", cwd=tmp_path, DATABASE_URL=url.render_as_string(hide_password=False))
    assert upgraded.returncode == 0, upgraded.stderr


def test_sslrootcert_system_checks_against_the_cas_this_machine_trusts(
    tls: TlsPostgres, database_name: str, tmp_path: Path
) -> None:
    """``sslrootcert=system`` (libpq 16): OpenSSL's trusted CAs, here the test's CA through SSL_CERT_FILE."""
    url = tls.url(database_name, sslrootcert="system").render_as_string(hide_password=False)
    trusted = hearth("db", "current", cwd=tmp_path, DATABASE_URL=url, SSL_CERT_FILE=str(tls.files.ca))
    assert trusted.returncode == 0 and "up to date" in trusted.stdout, trusted.stderr
    untrusted = hearth("db", "current", cwd=tmp_path, DATABASE_URL=url, SSL_CERT_FILE=str(tls.files.other_ca))
    assert untrusted.returncode == 3 and "TLS failed" in untrusted.stderr, untrusted.stderr


async def test_a_certificate_from_another_ca_is_refused_in_one_line(tls: TlsPostgres, database_name: str) -> None:
    line = await refusal(tls.url(database_name, sslmode="verify-full", sslrootcert=str(tls.files.other_ca)))
    assert "the server's certificate was refused (unable to get local issuer certificate)" in line, line
    assert "\n" not in line


async def test_verify_full_checks_the_host_name_and_verify_ca_does_not(tls: TlsPostgres, database_name: str) -> None:
    """The server's certificate names localhost, not 127.0.0.1."""
    ca = str(tls.files.ca)
    line = await refusal(tls.url(database_name, host="127.0.0.1", sslmode="verify-full", sslrootcert=ca))
    assert "certificate was refused (IP address mismatch, certificate is not valid for '127.0.0.1')" in line
    async with connected(tls.url(database_name, host="127.0.0.1", sslmode="verify-ca", sslrootcert=ca)):
        pass


async def test_require_encrypts_and_checks_the_ca_only_when_given_one(tls: TlsPostgres, database_name: str) -> None:
    """As in libpq: ``require`` alone does not check the server; with ``sslrootcert`` it checks the CA."""
    async with connected(tls.url(database_name, sslmode="require")):
        pass
    async with connected(tls.url(database_name, host="127.0.0.1", sslmode="require", sslrootcert=str(tls.files.ca))):
        pass
    line = await refusal(tls.url(database_name, sslmode="require", sslrootcert=str(tls.files.other_ca)))
    assert "the server's certificate was refused" in line, line


async def test_a_client_certificate_is_shown_to_a_server_that_asks_for_one(
    client_certificates: TlsPostgres, database_name: str
) -> None:
    files = client_certificates.files
    verified = {"sslmode": "verify-full", "sslrootcert": str(files.ca)}
    await refusal(client_certificates.url(database_name, **verified))
    with_certificate = verified | {"sslcert": str(files.client_cert), "sslkey": str(files.client_key)}
    async with connected(client_certificates.url(database_name, **with_certificate)):
        pass


async def test_other_processes_changes_are_heard_over_tls_with_a_client_certificate(
    client_certificates: TlsPostgres, database_name: str, llm: FakeLLM
) -> None:
    """Each process listens for the others' changes on a connection of its own, outside the pool: it must be
    made with the same TLS context, or a server that asks for a client certificate never lets it in."""
    files = client_certificates.files
    url = client_certificates.url(
        database_name, sslmode="verify-full", sslrootcert=str(files.ca), sslcert=str(files.client_cert),
        sslkey=str(files.client_key),
    )  # fmt: skip
    overrides = {"database_url": configured(url)}
    async with (
        connected(url) as database,
        container_on(database, llm, started=True, **overrides) as first,
        container_on(database, llm, started=True, **overrides) as second,
    ):
        listener = second.coordination.listener
        assert listener is not None
        async with asyncio.timeout(10):
            await listener.wait_connected()
        await first.coordination.set_maintenance(True)
        await seen_within(lambda: second.coordination.maintenance)


def test_a_missing_or_unreadable_certificate_file_is_one_line(tls: TlsPostgres, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    url = tls.url("postgres", sslmode="verify-full", sslrootcert=str(missing))
    result = hearth("db", "current", cwd=tmp_path, DATABASE_URL=url.render_as_string(hide_password=False))
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sslrootcert" in lines[0] and str(missing) in lines[0], result.stderr

    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("not a certificate\n")
    url = tls.url("postgres", sslmode="verify-full", sslrootcert=str(not_a_certificate))
    result = hearth("db", "current", cwd=tmp_path, DATABASE_URL=url.render_as_string(hide_password=False))
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(not_a_certificate) in result.stderr


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"sslmode": "prefer", "sslrootcert": "ca.pem"}, "sslmode=require, verify-ca or verify-full"),
        ({"sslmode": "verify-full", "sslcert": "client.crt", "sslkey": "client.key"}, "sslrootcert"),
        ({"sslrootcert": "system", "sslmode": "require"}, "verify-full"),
        ({"sslmode": "require", "sslcert": "client.crt"}, "sslkey"),
    ],
)
def test_tls_options_that_cannot_work_together_are_one_line(tmp_path: Path, query: dict[str, str], needle: str) -> None:
    url = URL.create("postgresql", username="hearth", host="db.example", database="hearth", query=query)
    result = hearth("db", "current", cwd=tmp_path, DATABASE_URL=url.render_as_string(hide_password=False))
    assert_one_line_error(result, "DATABASE_URL", needle)
