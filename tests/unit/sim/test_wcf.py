"""WCF Data Services error documents and JSON dates as the simulator writes and reads them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from writeback_console.sim.wcf import (
    METADATA_NS,
    ODataError,
    parse_json_date,
    render_json,
    render_xml,
    server_fault,
    validation_issue,
)

NS = {"m": METADATA_NS}


def deepest_xml(document: bytes) -> str:
    root = ET.fromstring(document)
    level = root.find("m:innererror", NS)
    message = root.findtext("m:message", namespaces=NS) or ""
    while level is not None:
        message = level.findtext("m:message", namespaces=NS) or ""
        level = level.find("m:internalexception", NS)
    return message


def deepest_json(document: bytes) -> str:
    error = json.loads(document)["error"]
    message: str = error["message"]["value"]
    level = error.get("innererror")
    while level is not None:
        message = level["message"]
        level = level.get("internalexception")
    return message


def test_validation_issue_reason_sits_two_levels_down_in_xml() -> None:
    document = render_xml(validation_issue("Activity Code 'X' is not valid & <odd>."))
    root = ET.fromstring(document)
    assert root.tag == f"{{{METADATA_NS}}}error"
    assert root.findtext("m:code", namespaces=NS) == ""
    assert root.find("m:message", NS).attrib["{http://www.w3.org/XML/1998/namespace}lang"] == "en-US"  # type: ignore[union-attr]
    inner = root.find("m:innererror", NS)
    assert inner is not None and inner.find("m:internalexception/m:internalexception", NS) is not None
    assert deepest_xml(document) == "Activity Code 'X' is not valid & <odd>."


def test_validation_issue_reason_sits_two_levels_down_in_json() -> None:
    document = render_json(validation_issue("Customer 1-0 does not exist."))
    error = json.loads(document)["error"]
    assert error["code"] == "" and error["message"]["lang"] == "en-US"
    assert (
        error["innererror"]["internalexception"]["internalexception"]["message"]
        == "Customer 1-0 does not exist."
    )
    assert deepest_json(document) == "Customer 1-0 does not exist."


def test_plain_error_has_no_innererror() -> None:
    error = ODataError(400, "Syntax error at position 3.")
    assert "innererror" not in json.loads(render_json(error))["error"]
    assert ET.fromstring(render_xml(error)).find("m:innererror", NS) is None
    assert deepest_xml(render_xml(error)) == deepest_json(render_json(error)) == "Syntax error at position 3."


def test_server_fault_names_a_deadlock() -> None:
    fault = server_fault()
    assert fault.status == 500
    assert "deadlock" in deepest_xml(render_xml(fault)) == deepest_json(render_json(fault))
    assert "deadlock" in str(fault)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1700000000000)/", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("/Date(1700000000000+0100)/", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("/Date(-1000)/", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_json_dates(text: str, expected: datetime) -> None:
    assert parse_json_date(text) == expected


@pytest.mark.parametrize("text", ["2026-01-01", "/Date()/", "/Date(12)", "Date(12)/", "/Date(1e3)/", ""])
def test_bad_json_dates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_json_date(text)


def test_characters_xml_cannot_carry_are_replaced() -> None:
    document = render_xml(ODataError(400, "unexpected character '\x00' or '\x1b' in 'a\tb'"))
    assert deepest_xml(document) == "unexpected character '\ufffd' or '\ufffd' in 'a\tb'"
