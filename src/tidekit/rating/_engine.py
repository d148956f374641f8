"""Opening a rating database: a URL or a file path to a SQLAlchemy engine.

SQLite runs in WAL mode (``TIDEKIT_SQLITE_SYNC`` picks ``synchronous``), with foreign keys on and
writers taking the lock at ``BEGIN IMMEDIATE``; PostgreSQL goes through psycopg 3. Both engines
hide bound parameters from error messages, so a failed statement never logs a rater's comment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tidekit.errors import ConfigError, DataError, MissingDependencyError

__all__ = ["create_engine", "normalize_url"]


def normalize_url(db: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a plain file path; PostgreSQL goes through psycopg 3."""
    text = str(db)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix):]
    if text.startswith(("sqlite://", "postgresql+psycopg://")):
        return text
    raise ConfigError(f"database URL {sa.make_url(text).render_as_string(hide_password=True)!r} is not "
                      "supported; use a file path, sqlite:///FILE or postgresql://USER@HOST:PORT/DB")


def _sqlite_engine(url: str, busy_timeout_s: float) -> sa.Engine:
    engine = sa.create_engine(url, pool_size=8, max_overflow=24, pool_timeout=60, hide_parameters=True)
    sync = os.environ.get("TIDEKIT_SQLITE_SYNC", "NORMAL").upper()
    if sync not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"TIDEKIT_SQLITE_SYNC={sync!r}: use NORMAL, FULL or EXTRA")

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # writers take the write lock up front, so they queue on busy_timeout instead of failing
        # on a lock upgrade; a read needs no transaction (WAL readers see committed data)
        if conn.get_execution_options().get("tidekit_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_engine(db: str | Path, must_exist: bool = True, busy_timeout_s: float = 30.0) -> sa.Engine:
    """An engine for ``db``; a missing SQLite file is an error unless ``must_exist`` is False.
    ``busy_timeout_s``: how long a SQLite write waits for another connection's lock."""
    url = normalize_url(db)
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if not path or path == ":memory:":
            raise ConfigError("an in-memory SQLite database cannot be shared by a server; give a file path")
        if must_exist and not Path(path).is_file():
            raise DataError(f"no rating database at {path}; create the study first with "
                            "'tidekit rate create CONFIG --dataset ... --generations ... --db ...'")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url, busy_timeout_s)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingDependencyError("The PostgreSQL rating store", "psycopg[binary]",
                                     "pip install 'tidekit[postgres]'") from None
    return sa.create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True, hide_parameters=True)
