"""SQLite transactions: writers one at a time through the gate; read-only ones beside them, on a snapshot."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from hub.db import Database, begin_read_only


def test_a_read_only_transaction_neither_waits_for_a_writer_nor_sees_its_uncommitted_rows(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        writer = database.new_session()
        writer.execute(text("INSERT INTO t VALUES (2)"))          # holds the gate and SQLite's write lock
        seen: list[int] = []

        def read() -> None:
            reader = database.new_session()
            begin_read_only(reader)
            seen.append(int(reader.execute(text("SELECT count(*) FROM t")).scalar_one()))
            reader.commit()
            reader.close()

        thread = threading.Thread(target=read)
        thread.start()
        thread.join(timeout=10)          # a deadlock guard, not a timing assertion
        assert not thread.is_alive(), "the read-only transaction waited for the writer"
        assert seen == [1]
        writer.commit()
        writer.close()
    finally:
        database.dispose()


def test_a_second_writer_waits_for_the_first(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
        first = database.new_session()
        first.execute(text("INSERT INTO t VALUES (1)"))
        done = threading.Event()

        def write() -> None:
            with database.session() as second:
                second.execute(text("INSERT INTO t VALUES (2)"))
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        assert not done.wait(0.5)          # still waiting at the gate while the first is open
        first.commit()
        first.close()
        thread.join(timeout=10)
        assert done.is_set()
    finally:
        database.dispose()
