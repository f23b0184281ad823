"""Calling AE titles: VR AE validation (PS3.5 6.2), host restrictions, registration, and their audit messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hub.audit import events
from hub.audit.message import Action, Outcome, render_audit_message
from hub.db import Database
from repository.dimse.entities import (
    AeError,
    add_entity,
    find_calling_entity,
    host_allowed,
    list_entities,
    normalise_ae_title,
    normalise_host,
    remove_entity,
)
from tests.unit.hub.audit.test_message import assert_valid


@pytest.mark.parametrize(("given", "kept"), [
    ("CT_SCANNER_1", "CT_SCANNER_1"),
    ("  MR 3T  ", "MR 3T"),                 # leading and trailing spaces are not significant
    ("A" * 16, "A" * 16),
    ("lower-case.ok", "lower-case.ok"),      # case is kept: AE titles are compared exactly
])
def test_valid_ae_titles(given: str, kept: str) -> None:
    assert normalise_ae_title(given) == kept


@pytest.mark.parametrize(("given", "why"), [
    ("", "spaces only"),
    ("      ", "spaces only"),
    ("A" * 17, "longer than 16"),
    ("CT\\1", repr("\\")),
    ("CT\t1", repr("\t")),
    ("CT\x001", repr("\x00")),
    ("ÇT1", repr("Ç")),
], ids=["empty", "spaces", "17 chars", "backslash", "tab", "nul", "non-ascii"])
def test_invalid_ae_titles(given: str, why: str) -> None:
    with pytest.raises(AeError, match=re.escape(why)):
        normalise_ae_title(given)


@pytest.mark.parametrize(("given", "kept"), [
    (None, None), ("", None), ("10.1.2.3", "10.1.2.3"), ("10.1.2.0/24", "10.1.2.0/24"), ("10.1.2.9/24", "10.1.2.0/24"),
    ("::1", "::1"), ("fd00::/8", "fd00::/8"),
])
def test_host_restrictions_are_addresses_or_networks(given: str | None, kept: str | None) -> None:
    assert normalise_host(given) == kept


def test_a_host_name_is_not_a_restriction() -> None:
    with pytest.raises(AeError, match="not an IP address"):
        normalise_host("ct.example.org")


@pytest.mark.parametrize(("restriction", "address", "allowed"), [
    (None, "192.0.2.1", True), ("192.0.2.1", "192.0.2.1", True), ("192.0.2.1", "192.0.2.2", False),
    ("192.0.2.0/24", "192.0.2.77", True), ("192.0.2.0/24", "::ffff:192.0.2.77", True),
    ("192.0.2.0/24", "198.51.100.1", False), ("192.0.2.1", None, False), ("192.0.2.1", "not-an-ip", False),
])
def test_host_allowed(restriction: str | None, address: str | None, allowed: bool) -> None:
    assert host_allowed(restriction, address) is allowed


def test_register_list_find_remove(database: Database, organisation_factory: Callable[..., int]) -> None:
    organisation_factory("Org A", "1.2.3.4.5")
    with database.session() as session:
        added = add_entity(session, " CT1 ", "1.2.3.4.5", "10.0.0.0/8")
    assert (added.ae_title, added.organisation_name, added.host) == ("CT1", "Org A", "10.0.0.0/8")
    with database.session() as session:
        with pytest.raises(AeError, match="already registered to Org A"):
            add_entity(session, "CT1", "1.2.3.4.5")
        with pytest.raises(AeError, match="no organisation with OID"):
            add_entity(session, "CT2", "9.9.9")
    with database.session() as session:
        assert [e.ae_title for e in list_entities(session)] == ["CT1"]
        found = find_calling_entity(session, "CT1   ")     # as an A-ASSOCIATE-RQ pads it
        assert found is not None and found.organisation_oid == "1.2.3.4.5"
        assert find_calling_entity(session, "ct1") is None
        assert find_calling_entity(session, "") is None
    with database.session() as session:
        remove_entity(session, "CT1")
    with database.session() as session:
        assert list_entities(session) == []
        with pytest.raises(AeError, match="not registered"):
            remove_entity(session, "CT1")


def test_the_audit_messages_are_valid_dicom_audit_messages() -> None:
    hub = events.Party(user_id="dicom://XDSHUB@127.0.0.1:11112", address="127.0.0.1", alternative_id="AETITLES=XDSHUB")
    sender = events.Party(user_id="1.2.3.4.5", address="127.0.0.1", name="Org A", alternative_id="AETITLES=CT1")
    now = datetime.now(UTC)
    transferred = events.instances_transferred(
        sender=sender, hub=hub, outcome=Outcome.SUCCESS, time=now, source_id="https://hub", action=Action.CREATE,
        studies=[("1.2.3", [("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"), ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.5")])],
        patient_id="P1^^^&1.2.3&ISO", description="C-STORE: 2 instance(s), 2 new")
    assert transferred.study_uids == ("1.2.3",) and transferred.patient_ids == ("P1^^^&1.2.3&ISO",)
    changed = events.application_entity_changed(hub=hub, time=now, source_id="https://hub", ae_title="CT1",
                                                organisation_oid="1.2.3.4.5", host="10.0.0.0/8", change="added")
    for event in (transferred, changed):
        assert_valid(render_audit_message(event))
