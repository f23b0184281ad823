"""Stored query parameter syntax (ITI TF-2a 3.18.4.1.2.3.5) and multiplicity rules."""

from __future__ import annotations

import pytest

from hub.errors import RegistryMetadataError, StoredQueryMissingParam, StoredQueryParamNumber, XdsError
from registry.queries.params import CodeValue, Kind, Param, Parameters, split_value


@pytest.mark.parametrize(
    ("text", "members"),
    [
        ("'a'", ["a"]),
        ("('a')", ["a"]),
        ("('a', 'b','c')", ["a", "b", "c"]),
        ("20240101", ["20240101"]),
        ("(1, 2)", ["1", "2"]),
        ("'O''Brien'", ["O'Brien"]),
        ("('a,b', 'c')", ["a,b", "c"]),
    ],
)
def test_value_syntax(text: str, members: list[str]) -> None:
    assert split_value(text, "$p") == members


@pytest.mark.parametrize("text", ["'unterminated", "(a b)", "drop table; --"])
def test_bad_value_syntax(text: str) -> None:
    with pytest.raises(RegistryMetadataError):
        split_value(text, "$p")


DECLARED = (
    Param("$pid", Kind.PATIENT_ID, required=True, multiple=False),
    Param("$codes", Kind.CODE, and_slots=True),
    Param("$plain"),
    Param("$from", Kind.TIME, multiple=False),
)
PID = "'P1^^^&1.2.3&ISO'"


def test_and_of_slots_or_within_a_slot() -> None:
    params = Parameters(DECLARED, {"$pid": [[PID]], "$codes": [["('a^^s1','b^^s2')"], ["('c')"]]})
    assert params.code_slots("$codes") == [[CodeValue("a", "s1"), CodeValue("b", "s2")], [CodeValue("c", "")]]


def test_unknown_parameters_are_ignored() -> None:
    assert not Parameters(DECLARED, {"$pid": [[PID]], "$whatever": [["'x'"]]}).has("$whatever")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({}, StoredQueryMissingParam),
        ({"$pid": [["'not a patient id'"]]}, RegistryMetadataError),
        ({"$pid": [["'P1^^^&1.2.3&ISO'", "'P2^^^&1.2.3&ISO'"]]}, StoredQueryParamNumber),
        ({"$pid": [[PID]], "$plain": [["'a'"], ["'b'"]]}, StoredQueryParamNumber),
        ({"$pid": [[PID]], "$from": [["2024-01-01"]]}, RegistryMetadataError),
    ],
    ids=["missing-required", "malformed-patient-id", "two-patient-ids", "repeated-slot", "bad-time"],
)
def test_parameter_errors(raw: dict[str, list[list[str]]], error: type[XdsError]) -> None:
    with pytest.raises(error):
        Parameters(DECLARED, raw)


KINDS = (
    Param("$status", Kind.STATUS),
    Param("$type", Kind.ENTRY_TYPE),
    Param("$assoc", Kind.ASSOCIATION_TYPE),
    Param("$uuid", Kind.UUID),
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("$status", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved',"
                    "'urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated')"),
        ("$status", "('urn:ihe:iti:2010:StatusType:DeferredCreation')"),
        ("$type", "('urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1','urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248')"),
        ("$assoc", "('urn:ihe:iti:2007:AssociationType:RPLC','urn:ihe:iti:2007:AssociationType:signs')"),
        ("$uuid", "('urn:uuid:0b4e6f2c-1d1a-4f8e-9a8b-0c0d0e0f0a0b')"),
    ],
)
def test_kinds_accept(name: str, text: str) -> None:
    assert Parameters(KINDS, {name: [[text]]}).values(name)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("$status", "('Approved')"),
        ("$status", "('urn:oasis:names:tc:ebxml-regrep:StatusType:')"),
        ("$type", "('urn:uuid:00000000-0000-0000-0000-000000000000')"),
        ("$assoc", "('RPLC')"),
        ("$uuid", "('1.2.3')"),
    ],
)
def test_kinds_refuse(name: str, text: str) -> None:
    with pytest.raises(RegistryMetadataError):
        Parameters(KINDS, {name: [[text]]})


def test_values_of_several_value_elements_are_ored() -> None:
    params = Parameters(DECLARED, {"$pid": [[PID]], "$plain": [["('a','b')", "'c'"]]})
    assert params.values("$plain") == ["a", "b", "c"] and params.slots("$plain") == [["a", "b", "c"]]


def test_exclusive_parameters() -> None:
    declared = (Param("$a"), Param("$b"))
    with pytest.raises(StoredQueryParamNumber):
        Parameters(declared, {"$a": [["'1'"]], "$b": [["'2'"]]}).exactly_one_of("$a", "$b")
    with pytest.raises(StoredQueryMissingParam):
        Parameters(declared, {}).exactly_one_of("$a", "$b")
    assert Parameters(declared, {"$b": [["'2'"]]}).exactly_one_of("$a", "$b") == "$b"
