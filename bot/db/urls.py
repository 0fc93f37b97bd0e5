"""Database URLs: DATABASE_URL parsed, and pinned to the async driver Hearth uses for its backend."""

import ssl
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["URL", "make_url", "normalise_database_url", "postgresql_connect_args"]

# Drivers Hearth speaks, and the spellings users commonly paste that mean the same thing.
_DRIVER_ALIASES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalise_database_url(raw: str) -> URL:
    """Parse a DATABASE_URL and pin it to the async driver Hearth uses for that backend."""
    try:
        url = make_url(raw.strip())
    except ValueError:  # make_url's int() of the port
        raise ValueError("the port in the URL is not a whole number (e.g. …@localhost:5432/hearth)") from None
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected e.g. sqlite+aiosqlite:///./data/hearth.db "
            "or postgresql+asyncpg://user:password@host:5432/hearth"
        ) from None
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError(f"the port in the URL must lie in 1..65535, not {url.port}")
    driver = _DRIVER_ALIASES.get(url.drivername)
    if driver is None:
        raise ValueError(f"unsupported database driver {url.drivername!r}; use sqlite+aiosqlite or postgresql+asyncpg")
    url = url.set(drivername=driver)
    if driver.startswith("sqlite") and not url.database:
        # SQLite takes no file name for a database in memory: everything would be gone at the next start.
        raise ValueError(
            "the SQLite URL names no file (e.g. sqlite+aiosqlite:///./data/hearth.db); write :memory: as the file "
            "for a database that is lost at every stop"
        )
    if driver.startswith("sqlite") and (url.database or "").startswith("~"):
        # SQLite opens "~/hearth.db" as a folder named ~ in the working folder, which does not exist.
        url = url.set(database=str(Path(url.database or "").expanduser()))
    if driver.startswith("postgresql"):
        if not url.database:
            raise ValueError("the PostgreSQL URL names no database (…/DBNAME at the end)")
        url = _asyncpg_options(url)
    return url


# The query options asyncpg takes from a URL (SQLAlchemy passes each to ``asyncpg.connect`` as a string).
_ASYNCPG_OPTIONS = (
    "host",
    "port",
    "ssl",
    "passfile",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "prepared_statement_cache_size",
)


# libpq's options naming TLS files: the certificate of the CA that signed the server's (managed PostgreSQL hands
# one out), and a client certificate with its key. asyncpg takes none of them as an argument: they stay in the URL,
# where pg_dump reads them too, and :func:`postgresql_connect_args` makes them the TLS context asyncpg is given.
TLS_FILE_OPTIONS = ("sslrootcert", "sslcert", "sslkey")
_TLS_MODES = ("require", "verify-ca", "verify-full")


def _asyncpg_options(url: URL) -> URL:
    """libpq's ``sslmode`` (in the URLs hosted PostgreSQL hands out) as asyncpg's ``ssl``, which takes the same
    values, and libpq's TLS files (see :data:`TLS_FILE_OPTIONS`); any other option asyncpg does not take is an
    error naming it, rather than a TypeError on connect."""
    if "sslmode" in url.query:
        sslmode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"])
        if "ssl" not in url.query:
            url = url.update_query_dict({"ssl": sslmode})
    unknown = [name for name in url.query if name not in _ASYNCPG_OPTIONS + TLS_FILE_OPTIONS]
    if unknown:
        raise ValueError(
            f"the PostgreSQL driver (asyncpg) takes no option {unknown[0]!r}: remove it from the URL "
            f"(it takes sslmode, {', '.join(TLS_FILE_OPTIONS)} and {', '.join(_ASYNCPG_OPTIONS)})"
        )
    return _tls_files(url)


def _one(value: str | tuple[str, ...]) -> str:
    """A query option given once, or the last of its values when given more than once."""
    return value if isinstance(value, str) else value[-1]


def _tls_files(url: URL) -> URL:
    """Check libpq's TLS file options against the TLS mode, which they make ``require`` when none is given (or
    ``verify-full`` for ``sslrootcert=system``, as libpq does): a file is of use only on an encrypted connection."""
    files = {name: _one(url.query[name]) for name in TLS_FILE_OPTIONS if name in url.query}
    if not files:
        return url
    if "ssl" not in url.query:
        url = url.update_query_dict({"ssl": "verify-full" if files.get("sslrootcert") == "system" else "require"})
    mode = _one(url.query["ssl"])
    if mode not in _TLS_MODES:
        raise ValueError(
            f"{next(iter(files))} takes sslmode=require, verify-ca or verify-full, not {mode!r}: "
            "a certificate is of use only on a connection that must be encrypted"
        )
    if files.get("sslrootcert") == "system" and mode != "verify-full":
        raise ValueError(f"sslrootcert=system takes sslmode=verify-full (as in libpq), not {mode!r}")
    if mode != "require" and "sslrootcert" not in files:
        raise ValueError(
            f"sslmode={mode} needs sslrootcert=FILE, the certificate of the CA that signed the server's "
            "(or sslrootcert=system for the CAs this machine trusts)"
        )
    if ("sslcert" in files) != ("sslkey" in files):
        raise ValueError("sslcert and sslkey go together: the client certificate's file and its key's")
    return url


def postgresql_connect_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """The URL SQLAlchemy's asyncpg dialect is given and the ``connect_args`` for the engine: for a URL naming TLS
    files (see :data:`TLS_FILE_OPTIONS`), the URL without them and the TLS context made from them, as libpq
    would make it: ``require`` encrypts without checking the server unless ``sslrootcert`` names its CA,
    ``verify-ca`` checks that the CA signed its certificate, ``verify-full`` also that it names the host. A URL
    naming none is returned as it is. Raises ValueError saying which file cannot be read, and why."""
    files = {name: _one(url.query[name]) for name in TLS_FILE_OPTIONS if name in url.query}
    if url.get_backend_name() != "postgresql" or not files:
        return url, {}
    mode = _one(url.query.get("ssl", "require"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # libpq's default ssl_min_protocol_version
    rootcert = files.get("sslrootcert")
    if rootcert is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = mode == "verify-full"
        if rootcert == "system":
            context.load_default_certs()
        else:
            _check_readable("sslrootcert", rootcert)
            try:
                context.load_verify_locations(cafile=rootcert)
            except ssl.SSLError as exc:
                raise ValueError(f"the sslrootcert file {rootcert} holds no PEM certificate ({_reason(exc)})") from None
    if "sslcert" in files and "sslkey" in files:
        certificate, key = files["sslcert"], files["sslkey"]
        _check_readable("sslcert", certificate)
        _check_readable("sslkey", key)
        try:
            # No password: OpenSSL would otherwise ask for one on the terminal for an encrypted key.
            context.load_cert_chain(certificate, key, password=lambda: b"")
        except ssl.SSLError as exc:
            raise ValueError(
                f"the sslcert file {certificate} and the sslkey file {key} are not a PEM certificate and its "
                f"unencrypted key ({_reason(exc)})"
            ) from None
    return url.difference_update_query([*TLS_FILE_OPTIONS, "ssl"]), {"ssl": context}


def _check_readable(option: str, path: str) -> None:
    try:
        Path(path).open("rb").close()
    except OSError as exc:
        raise ValueError(f"cannot read the {option} file {path} ({exc.strerror or exc})") from None


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc).replace("_", " ").lower()
