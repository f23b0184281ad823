"""Database engine, sessions and migrations (SQLAlchemy 2, Alembic).

`Database` owns the engine of one hub. Views get a request-scoped session
with `get_session()`; the CLI and tests use `Database.session()` directly.
Services never commit on their own: the caller owns the transaction, so the
effect of a transaction and its audit record commit together.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin
    # (SQLAlchemy's documented pysqlite recipe): otherwise reads run outside any
    # transaction and a SAVEPOINT can commit the caller's work.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class _SqliteGate:
    """Lets one SQLite transaction at a time in, across threads and worker processes.

    Each transaction first takes an exclusive flock on a file beside the database,
    then BEGIN IMMEDIATE. A waiting transaction wakes the moment the lock is
    released, where SQLite's own busy handler would sleep in growing steps (up to
    100 ms) and leave the CPU idle under concurrent writers. IMMEDIATE keeps two
    transactions that read, then write, from deadlocking.

    A transaction begun on a connection with the READ_ONLY execution option
    (`begin_read_only`) skips the gate: BEGIN DEFERRED reads a WAL snapshot
    while writers go on. It must not write; end it before writing.
    """

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}.lock" if database_path not in ("", ":memory:") else None

    def connected(self, _dbapi_conn: Any, record: Any) -> None:
        if self.path:
            record.info["gate_fd"] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def begin(self, conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN DEFERRED")   # a WAL snapshot: blocks no writer, waits for none
            return
        fd = conn.info.get("gate_fd") if self.path else None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            conn.info["gate_held"] = fd
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(conn)
            raise

    def end(self, conn: Any) -> None:
        fd = conn.info.pop("gate_held", None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def checkin(self, _dbapi_conn: Any, record: Any) -> None:
        fd = record.info.get("gate_fd")
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def closed(self, _dbapi_conn: Any, record: Any) -> None:
        fd = record.info.pop("gate_fd", None)
        if fd is not None:
            os.close(fd)

    def install(self, engine: Engine) -> None:
        event.listen(engine, "connect", self.connected)
        event.listen(engine, "begin", self.begin)
        event.listen(engine, "commit", self.end)
        event.listen(engine, "rollback", self.end)
        event.listen(engine, "checkin", self.checkin)
        event.listen(engine, "close", self.closed)


READ_ONLY = "xdshub_read_only"


def begin_read_only(session: Session) -> None:
    """Start `session`'s next transaction as a read-only one: on SQLite it takes no write lock, so reads
    run beside writers and each other. Call before the session's first statement; end the transaction
    (commit) before anything writes."""
    session.connection(execution_options={READ_ONLY: True})


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # LIFO: the connection used last is taken again. Each SQLite connection has its own page cache, and
        # a write through one (every request appends an audit record) makes the others drop theirs, so
        # rotating through the pool (FIFO, the default) read the database afresh on most requests.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_use_lifo=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        _SqliteGate(engine.url.database or "").install(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def new_session(self) -> Session:
        return self._sessions()

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def init_app(app: Any, database: Database) -> None:
    """Attach the database to a Flask app with a request-scoped session."""
    from flask import g

    app.extensions["xdshub.db"] = database

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()


def get_database() -> Database:
    from flask import current_app

    return current_app.extensions["xdshub.db"]  # type: ignore[no-any-return]


def get_session() -> Session:
    """The request's session (one per request, closed at teardown)."""
    from flask import g

    if "db_session" not in g:
        g.db_session = get_database().new_session()
    return g.db_session  # type: ignore[no-any-return]
