"""Database URLs and engines: which backend a URL names, and an engine set up for it.

Kept apart from the store so callers that only need a URL's backend (the Optuna study in the same
database, the ``automl db`` commands) do not reach into the store's implementation.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


SQLITE_BUSY_S = 30.0  # how long a connection waits for another's write lock


def _write_ahead_log(cursor: Any) -> None:
    """Put the file in WAL mode. SQLite does not call its busy handler while it changes the journal
    mode, so on a new file that several processes open at once the change fails at once with
    "database is locked" while another holds the lock: retry it as the busy timeout would."""
    deadline = time.monotonic() + SQLITE_BUSY_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_engine(url: str) -> Engine:
    """An engine with pre-ping (survives server restarts) and SQLite made safe for concurrency."""
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_S}, pool_pre_ping=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            _write_ahead_log(cursor)
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_S * 1000)}")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800)
