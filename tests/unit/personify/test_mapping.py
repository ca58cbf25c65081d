"""Unit tests for turning writebacks into CusActivity fields (the activity codes in docs/architecture.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writeback_console.domain import Kind
from writeback_console.personify.mapping import (
    DEFAULT_ACTIVITY_CODES,
    DEFAULT_SUBCODES,
    ActivityMapping,
    ActivitySource,
    MailingFacts,
    build_activity,
    fit_text,
    format_when,
    ref_marker,
)

WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
REF = "WB-7K2M9QX4BD"


def source(kind: Kind, **changes: Any) -> ActivitySource:
    base = ActivitySource(
        kind=kind,
        ref=REF,
        account="ASAE",
        email="ann@example.org",
        occurred_at=WHEN,
        master_customer_id="000000000101",
        sub_customer_id=0,
    )
    return replace(base, **changes)


def mailing(**changes: Any) -> MailingFacts:
    return replace(MailingFacts(mailing_name="November News", mailing_id=4711, sent_at=WHEN), **changes)


MAPPING = ActivityMapping()


def test_defaults_match_the_design_table() -> None:
    assert DEFAULT_ACTIVITY_CODES == {
        Kind.UNSUBSCRIBE: "INFORMZ_UNSUB",
        Kind.RESUBSCRIBE: "INFORMZ_RESUB",
        Kind.INVALID_EMAIL: "INFORMZ_BADEMAIL",
        Kind.MAILING_ACTIVITY: "INFORMZ_MAILING",
        Kind.INTERESTS: "INFORMZ_IPM",
    }
    assert DEFAULT_SUBCODES == {
        "INFORMZ_MAILING": ("SENT", "OPEN", "CLICK", "BOUNCE", "BLOCK"),
        "INFORMZ_IPM": ("OPTIN", "OPTOUT"),
    }
    assert MAPPING.expected_codes() == {
        "INFORMZ_UNSUB": (),
        "INFORMZ_RESUB": (),
        "INFORMZ_BADEMAIL": (),
        "INFORMZ_MAILING": ("SENT", "OPEN", "CLICK", "BOUNCE", "BLOCK"),
        "INFORMZ_IPM": ("OPTIN", "OPTOUT"),
    }


def test_unsubscribe() -> None:
    fields = build_activity(source(Kind.UNSUBSCRIBE, reason="Too many emails"), MAPPING)
    assert fields == {
        "MasterCustomerId": "000000000101",
        "SubCustomerId": 0,
        "ActivityCode": "INFORMZ_UNSUB",
        "ActivityDate": WHEN,
        "ActivityText": 'Unsubscribed in Informz account "ASAE" on 2026-11-20 10:00 UTC. '
        f"Reason: Too many emails [ref {REF}]",
        "Subsystem": "CUS",
    }


def test_unsubscribe_without_reason() -> None:
    text = build_activity(source(Kind.UNSUBSCRIBE), MAPPING)["ActivityText"]
    assert "Reason: not given [ref" in text


def test_resubscribe() -> None:
    fields = build_activity(source(Kind.RESUBSCRIBE), MAPPING)
    assert fields["ActivityCode"] == "INFORMZ_RESUB"
    assert "ActivitySubcode" not in fields
    assert (
        fields["ActivityText"]
        == f'Resubscribed in Informz account "ASAE" on 2026-11-20 10:00 UTC [ref {REF}]'
    )


def test_invalid_email() -> None:
    fields = build_activity(source(Kind.INVALID_EMAIL, reason="550 mailbox unavailable"), MAPPING)
    assert fields["ActivityCode"] == "INFORMZ_BADEMAIL"
    assert (
        fields["ActivityText"] == f"Email ann@example.org undeliverable: 550 mailbox unavailable [ref {REF}]"
    )


@pytest.mark.parametrize(("opted_in", "subcode", "word"), [(True, "OPTIN", "in"), (False, "OPTOUT", "out")])
def test_interests(opted_in: bool, subcode: str, word: str) -> None:
    fields = build_activity(source(Kind.INTERESTS, interest="Advocacy", opted_in=opted_in), MAPPING)
    assert fields["ActivityCode"] == "INFORMZ_IPM"
    assert fields["ActivitySubcode"] == subcode
    assert fields["ActivityText"] == f"Advocacy opted {word} via Informz on 2026-11-20 10:00 UTC [ref {REF}]"


def test_interests_need_the_interest_and_direction() -> None:
    with pytest.raises(ValueError, match="Interests"):
        build_activity(source(Kind.INTERESTS, interest="Advocacy"), MAPPING)
    with pytest.raises(ValueError, match="Interests"):
        build_activity(source(Kind.INTERESTS, opted_in=True), MAPPING)


def test_mailing_activity_summarises_every_event() -> None:
    facts = mailing(
        opened_at=WHEN + timedelta(minutes=5),
        clicks=(
            ("https://example.org/a", WHEN + timedelta(minutes=6)),
            ("https://example.org/b", WHEN + timedelta(hours=1)),
        ),
    )
    fields = build_activity(source(Kind.MAILING_ACTIVITY, mailing=facts), MAPPING)
    assert fields["ActivityCode"] == "INFORMZ_MAILING"
    assert fields["ActivitySubcode"] == "CLICK"
    assert fields["ActivityText"] == (
        'Mailing "November News" (ID 4711) from Informz account "ASAE": sent 2026-11-20 10:00 UTC; '
        "opened 2026-11-20 10:05 UTC; clicked 2 links: https://example.org/a (2026-11-20 10:06 UTC), "
        f"https://example.org/b (2026-11-20 11:00 UTC) [ref {REF}]"
    )


def test_mailing_activity_bounce_with_reason() -> None:
    facts = mailing(bounced_at=WHEN + timedelta(minutes=1), bounce_reason="550 no such user")
    fields = build_activity(source(Kind.MAILING_ACTIVITY, mailing=facts), MAPPING)
    assert fields["ActivitySubcode"] == "BOUNCE"
    assert "bounced 2026-11-20 10:01 UTC (550 no such user)" in fields["ActivityText"]


def test_mailing_activity_needs_the_facts() -> None:
    with pytest.raises(ValueError, match="Mailing Activity"):
        build_activity(source(Kind.MAILING_ACTIVITY), MAPPING)


CLICK = (("https://x", WHEN),)


@pytest.mark.parametrize(
    ("facts", "subcode"),
    [
        (mailing(), "SENT"),
        (mailing(sent_at=None), "SENT"),
        (mailing(opened_at=WHEN), "OPEN"),
        (mailing(opened_at=WHEN, clicks=CLICK), "CLICK"),
        (mailing(clicks=CLICK), "CLICK"),
        (mailing(opened_at=WHEN, clicks=CLICK, bounced_at=WHEN), "BOUNCE"),
        (mailing(bounced_at=WHEN), "BOUNCE"),
        (mailing(sent_at=None, blocked=True), "BLOCK"),
        (mailing(blocked=True, bounced_at=WHEN, clicks=CLICK), "BLOCK"),
    ],
)
def test_subcode_is_the_furthest_event(facts: MailingFacts, subcode: str) -> None:
    assert build_activity(source(Kind.MAILING_ACTIVITY, mailing=facts), MAPPING)["ActivitySubcode"] == subcode


def test_blocked_reads_as_not_sent() -> None:
    text = build_activity(source(Kind.MAILING_ACTIVITY, mailing=mailing(sent_at=None, blocked=True)), MAPPING)
    assert ": blocked, not sent [ref" in text["ActivityText"]


def test_configured_codes_and_subcodes_are_used() -> None:
    mapping = ActivityMapping.from_dict(
        {
            "codes": {"mailing_activity": "SITE_MAIL", "interests": "SITE_IPM"},
            "subcodes": {"mailing_activity": {"click": "CLK"}, "interests": {"opt_out": "OUT"}},
        }
    )
    facts = mailing(clicks=CLICK)
    fields = build_activity(source(Kind.MAILING_ACTIVITY, mailing=facts), mapping)
    assert (fields["ActivityCode"], fields["ActivitySubcode"]) == ("SITE_MAIL", "CLK")
    fields = build_activity(source(Kind.INTERESTS, interest="X", opted_in=False), mapping)
    assert (fields["ActivityCode"], fields["ActivitySubcode"]) == ("SITE_IPM", "OUT")
    assert mapping.expected_codes()["SITE_MAIL"] == ("SENT", "OPEN", "CLK", "BOUNCE", "BLOCK")


def test_when_is_utc_whatever_the_zone() -> None:
    eastern = timezone(timedelta(hours=-5))
    fields = build_activity(
        source(Kind.RESUBSCRIBE, occurred_at=datetime(2026, 11, 20, 5, 0, tzinfo=eastern)), MAPPING
    )
    assert "on 2026-11-20 10:00 UTC" in fields["ActivityText"]
    assert fields["ActivityDate"] == WHEN
    assert fields["ActivityDate"].tzinfo is UTC
    assert format_when(WHEN) == "2026-11-20 10:00 UTC"


def test_naive_occurred_at_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        build_activity(source(Kind.RESUBSCRIBE, occurred_at=datetime(2026, 11, 20)), MAPPING)


def test_braces_in_values_are_just_characters() -> None:
    reason = "{email} {0} {reason.__class__} {{x}} %s"
    text = build_activity(source(Kind.UNSUBSCRIBE, reason=reason), MAPPING)["ActivityText"]
    assert text.endswith(f"Reason: {reason} [ref {REF}]")


def test_control_characters_are_stripped_from_values() -> None:
    fields = build_activity(
        source(Kind.UNSUBSCRIBE, reason="a\x00b\r\nc\td\x1b[31m", account="A\x07CME"), MAPPING
    )
    assert fields["ActivityText"].startswith('Unsubscribed in Informz account "ACME"')
    assert "Reason: ab c d[31m [ref" in fields["ActivityText"]


def test_literal_braces_in_templates() -> None:
    mapping = ActivityMapping.from_dict({"templates": {"resubscribe": "{{Informz}} {account}"}})
    assert (
        build_activity(source(Kind.RESUBSCRIBE), mapping)["ActivityText"] == f"{{Informz}} ASAE [ref {REF}]"
    )


class TestRefMarker:
    def test_marker(self) -> None:
        assert ref_marker("WB-ABC") == "[ref WB-ABC]"
        assert ref_marker("WB-ABC") not in f"text {ref_marker('WB-ABCD')}"

    @pytest.mark.parametrize("ref", ["", "WB ABC", "WB-]", "x" * 100, "-WB", "WB-\x00"])
    def test_bad_refs(self, ref: str) -> None:
        with pytest.raises(ValueError, match="reference"):
            ref_marker(ref)


class TestTruncation:
    def test_short_text_is_untouched(self) -> None:
        assert fit_text("hello", "[ref X]", 100) == "hello [ref X]"

    def test_cut_with_ellipsis(self) -> None:
        assert fit_text("a" * 50, "[ref X]", 20) == "a" * 11 + "… [ref X]"

    def test_exact_fit_is_not_cut(self) -> None:
        assert fit_text("a" * 12, "[ref X]", 20) == "a" * 12 + " [ref X]"

    @given(st.text(max_size=5000), st.integers(min_value=100, max_value=3000))
    def test_reason_of_any_length_keeps_the_marker(self, reason: str, limit: int) -> None:
        mapping = ActivityMapping(max_text_length=limit)
        text = build_activity(source(Kind.UNSUBSCRIBE, reason=reason), mapping)["ActivityText"]
        assert len(text) <= limit
        assert text.endswith(f" [ref {REF}]")
        assert text.count("[ref ") >= 1
        assert not any(ord(ch) < 32 for ch in text)

    def test_many_clicks_are_cut_but_keep_the_marker(self) -> None:
        clicks = tuple((f"https://example.org/{i}", WHEN) for i in range(500))
        fields = build_activity(source(Kind.MAILING_ACTIVITY, mailing=mailing(clicks=clicks)), MAPPING)
        assert 1900 < len(fields["ActivityText"]) <= 2000
        assert fields["ActivityText"].endswith(f"… [ref {REF}]")
        assert fields["ActivitySubcode"] == "CLICK"


class TestSettings:
    def test_round_trip(self) -> None:
        assert ActivityMapping.from_dict(MAPPING.to_dict()) == MAPPING
        custom = ActivityMapping.from_dict(
            {
                "codes": {"unsubscribe": "X_UNSUB"},
                "max_text_length": 500,
                "templates": {"resubscribe": "{email}"},
            }
        )
        assert ActivityMapping.from_dict(custom.to_dict()) == custom
        assert custom.to_dict()["codes"]["unsubscribe"] == "X_UNSUB"

    def test_empty_dict_is_the_default(self) -> None:
        assert ActivityMapping.from_dict({}) == ActivityMapping()

    @pytest.mark.parametrize(
        ("data", "key"),
        [
            ({"codes": {"newsletter": "X"}}, "codes.newsletter"),
            ({"codes": {"unsubscribe": ""}}, "codes.unsubscribe"),
            ({"codes": {"unsubscribe": "   "}}, "codes.unsubscribe"),
            ({"codes": {"unsubscribe": "HAS SPACE"}}, "codes.unsubscribe"),
            ({"codes": {"unsubscribe": 5}}, "codes.unsubscribe"),
            ({"codes": ["x"]}, "codes"),
            ({"templates": {"unsubscribe": "Bye {nmae}"}}, "templates.unsubscribe"),
            ({"templates": {"resubscribe": "Back: {reason}"}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": "{account.__class__}"}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": "{account!r}"}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": "{account:>10}"}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": "{0}"}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": "unbalanced {"}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": ""}}, "templates.resubscribe"),
            ({"templates": {"resubscribe": "a\nb"}}, "templates.resubscribe"),
            ({"templates": {"spam": "x"}}, "templates.spam"),
            ({"subcodes": {"unsubscribe": {}}}, "subcodes.unsubscribe"),
            ({"subcodes": {"mailing_activity": {"forward": "FWD"}}}, "subcodes.mailing_activity.forward"),
            ({"subcodes": {"interests": {"opt_in": ""}}}, "subcodes.interests.opt_in"),
            ({"max_text_length": 10}, "max_text_length"),
            ({"max_text_length": "2000"}, "max_text_length"),
            ({"subsystem": ""}, "subsystem"),
            ({"colour": "red"}, "colour"),
        ],
    )
    def test_bad_settings_name_the_key(self, data: dict[str, Any], key: str) -> None:
        with pytest.raises(ValueError) as info:
            ActivityMapping.from_dict(data)
        assert str(info.value).startswith(f"{key}:")

    def test_constructed_mapping_is_validated_and_read_only(self) -> None:
        with pytest.raises(ValueError, match="codes: missing"):
            ActivityMapping(codes={Kind.UNSUBSCRIBE: "X"})
        with pytest.raises(TypeError):
            MAPPING.codes[Kind.UNSUBSCRIBE] = "X"  # type: ignore[index]
