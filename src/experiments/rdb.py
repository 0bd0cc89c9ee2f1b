"""The shared study's storage: an Optuna RDBStorage on PostgreSQL, with at most two connections per
process, heartbeats, and errors that name the storage with its password masked.

`--storage` (or $TUNELAB_STORAGE) is a SQLAlchemy URL, ``postgresql://user:password@host:port/db``
(psycopg 3 is SQLAlchemy 2.1's default PostgreSQL driver); leave the password out to let libpq
take it from $PGPASSWORD or ~/.pgpass. Every message that names the storage goes through
:func:`mask`; driver messages go through :func:`scrub` too, so the password is never printed.

Connections: a pool of one, plus one overflow connection that exists only while two threads talk to
the database at once (a trial's heartbeat thread and the worker's own query) and is closed when
returned; Optuna's own start-up (schema version check) needs the two. ``pool_pre_ping`` replaces a
connection the server or a firewall dropped while a trial trained. Imported by train's pruning hook,
so it imports nothing heavy at module level.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from urllib.parse import quote, unquote, urlsplit

from src.core.errors import TunelabError
from src.tracking import store

ENV = "TUNELAB_STORAGE"
SCHEMES = ("postgresql", "postgresql+psycopg")
POOL = {"pool_size": 1, "max_overflow": 1, "pool_pre_ping": True, "pool_recycle": 600}
CONNECT_TIMEOUT = 10  # seconds: an unreachable host fails fast, not after TCP's minutes
CREATE_LOCK = 0x74756E656C6162  # pg_advisory_lock key ("tunelab"): one creator at a time


def resolve(flag: str | None) -> str | None:
    """The storage URI: --storage, else $TUNELAB_STORAGE, else None (the local DVC queue)."""
    return flag or os.environ.get(ENV) or None


def mask(uri: str) -> str:
    """``postgresql://user:secret@host:5432/db`` -> ``postgresql://user:***@host:5432/db``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", uri, count=1)


def password(uri: str) -> str | None:
    try:
        return urlsplit(uri).password
    except ValueError:
        return None


def scrub(text: str, uri: str) -> str:
    """``text`` with the URI masked and its password (raw or URL-encoded) replaced by ***."""
    if not uri:
        return text
    text = text.replace(uri, mask(uri))
    secret = password(uri)
    for form in {secret, unquote(secret or ""), quote(secret or "", safe="")} - {None, ""}:
        text = text.replace(form, "***")
    return text


def check_uri(uri: str) -> None:
    scheme = uri.partition("://")[0]
    if scheme not in SCHEMES or not urlsplit(uri).path.strip("/"):
        raise TunelabError(f"--storage {mask(uri)}: expected postgresql://user[:password]@host"
                           f"[:port]/database (a PostgreSQL database; without --storage sweeps and "
                           f"searches run on this machine's DVC queue)")


def reason(error: BaseException, uri: str) -> str:
    """The first line of the driver's message (psycopg's, under SQLAlchemy's and Optuna's), scrubbed."""
    while error.__cause__ is not None and not hasattr(error, "orig"):
        error = error.__cause__
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split("\n")[0].split()) or type(original).__name__
    return scrub(text.removeprefix("connection failed: "), uri)


def storage_error(uri: str, error: BaseException) -> TunelabError:
    return TunelabError(f"shared study storage {mask(uri)}: {reason(error, uri)}")


def application_name(role: str) -> str:
    """How a connection shows in pg_stat_activity: ``tunelab <host> <role>``."""
    return f"tunelab {store.host()} {role}"[:63]


def open_storage(uri: str, role: str, heartbeat: int | None = None, grace: int | None = None,
                 stale_callback=None, create_tables: bool = False):
    """An RDBStorage on ``uri`` with the bounded pool; TunelabError (masked) if it cannot be used.
    Only the process that creates the study creates the tables (``create_tables``, under
    :func:`creation_lock`); workers skip it, so there are no table-creation races."""
    import optuna
    check_uri(uri)
    kwargs = POOL | {"connect_args": {"connect_timeout": CONNECT_TIMEOUT,
                                      "application_name": application_name(role)}}
    try:
        with warnings.catch_warnings():  # heartbeats are experimental since Optuna 2.9, still
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                uri, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=grace,
                heartbeat_stale_trial_callback=stale_callback,
                skip_table_creation=not create_tables)
    except Exception as error:  # noqa: BLE001 - every failure becomes one masked line
        raise storage_error(uri, error) from None


def close(storage) -> None:
    """Close the storage's connections (a waiting door holds none)."""
    storage.engine.dispose()


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """PostgreSQL's advisory lock around creating tables and studies: two hosts starting at once
    create them one after the other (its own short-lived connection, closed on exit)."""
    import sqlalchemy
    check_uri(uri)
    engine = None
    try:
        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool, connect_args={
            "connect_timeout": CONNECT_TIMEOUT, "application_name": application_name("create")})
        connection = engine.connect()
        connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({CREATE_LOCK})"))
    except Exception as error:  # noqa: BLE001
        if engine is not None:
            engine.dispose()
        raise storage_error(uri, error) from None
    try:
        yield
    finally:
        connection.close()  # the session's advisory lock ends with it
        engine.dispose()
