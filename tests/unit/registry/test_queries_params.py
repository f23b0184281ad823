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
    Param("$pid", Kind.PATIENT_ID, required=True, single_value=True),
    Param("$codes", Kind.CODE, and_slots=True),
    Param("$plain"),
    Param("$from", Kind.TIME, single_value=True),
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


def test_exclusive_parameters() -> None:
    declared = (Param("$a"), Param("$b"))
    with pytest.raises(StoredQueryParamNumber):
        Parameters(declared, {"$a": [["'1'"]], "$b": [["'2'"]]}).exactly_one_of("$a", "$b")
    with pytest.raises(StoredQueryMissingParam):
        Parameters(declared, {}).exactly_one_of("$a", "$b")
    assert Parameters(declared, {"$b": [["'2'"]]}).exactly_one_of("$a", "$b") == "$b"
