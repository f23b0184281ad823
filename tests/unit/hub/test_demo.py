"""The demo's compliance account: created once, a new random password at every start, each change audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.console.accounts import LockoutPolicy, LoginRefused, authenticate
from hub.db import Database
from hub.demo import DEMO_CONSOLE_ACCOUNT, ensure_console_account
from hub.setup import initialise


def test_each_start_gives_the_account_a_new_password(tmp_path: Path) -> None:
    settings = initialise(tmp_path / "demo")
    first, second = ensure_console_account(settings), ensure_console_account(settings)
    assert first != second and len(second) >= 16
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            with pytest.raises(LoginRefused):
                authenticate(session, DEMO_CONSOLE_ACCOUNT, first, LockoutPolicy(5, 60))
        with database.session() as session:
            assert authenticate(session, DEMO_CONSOLE_ACCOUNT, second, LockoutPolicy(5, 60)).role == "compliance"
            changes = session.scalars(select(AuditRecord.event_type).where(AuditRecord.event_id == "110113")).all()
        assert changes == ["110136", "110137"]
    finally:
        database.dispose()
