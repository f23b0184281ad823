"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from hub.db import Base, Database, alembic_config


def test_upgrade_matches_models_and_is_idempotent(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.begin() as conn:  # start from nothing, whatever ran before
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        database.upgrade()
        database.upgrade()
        tables = set(inspect(database.engine).get_table_names())
        assert {"organisations", "registry_objects", "registry_codes", "oauth_clients"} <= tables
        command.check(alembic_config(database_url))  # raises when models and migrations differ
    finally:
        with database.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        database.dispose()
