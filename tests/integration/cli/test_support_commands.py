"""`lookup`, `switch` and `check` as support and operators run them, against the real simulator."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.helpers.builders import T0, add_mailing, enqueue, item, row
from tests.helpers.simulator import MakeSimulator
from tests.integration.cli.test_cli import run_cli
from writeback_console.domain import Kind
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, MailingFacts, build_activity
from writeback_console.personify.values import PersonifySettings
from writeback_console.sim.simulator import Simulator
from writeback_console.store import deliveries, switches
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.models import Delivery, MailingRecipient


@pytest.fixture
def sim(make_simulator: MakeSimulator) -> Simulator:
    # Paged two rows at a time, as some sites answer: the command must read every page.
    return make_simulator(page_size=2)


@pytest.fixture
def personify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> Simulator:
    """The settings point at the simulator, through the environment as on a server."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("WRITEBACK_NO_KEYRING", "1")
    monkeypatch.setenv("WRITEBACK_PERSONIFY_URL", sim.url)
    monkeypatch.setenv("WRITEBACK_PERSONIFY_USER", "u")
    monkeypatch.setenv("WRITEBACK_PERSONIFY_PASSWORD", "p")
    return sim


def _write(sim: Simulator, kind: Kind, ref: str, days: int) -> None:
    facts = MailingFacts("November News", 1, sent_at=T0) if kind is Kind.MAILING_ACTIVITY else None
    source = ActivitySource(
        kind=kind,
        mailing=facts,
        ref=ref,
        account="Main",
        email="ann@example.org",
        occurred_at=T0 + timedelta(days=days),
        master_customer_id="000000000101",
        sub_customer_id=0,
        reason="too many emails",
    )
    with PersonifyClient(PersonifySettings(sim.url, "u", "p")) as client:
        client.create_activity(build_activity(source, ActivityMapping()))


def _anns_queue(sqlite_url: str, sim: Simulator) -> dict[str, str]:
    """Ann's own rows (each written to Personify360) and a mailing she received, with her delivery."""
    factory = make_session_factory(make_engine(sqlite_url))
    own = enqueue(factory, item(email="ann@example.org"), item(Kind.RESUBSCRIBE, email="ann@example.org"))
    enqueue(factory, item(email="bob@example.org"))
    mailing_id = add_mailing(factory, remote=3, name="November News")
    with write_transaction(factory) as session:
        session.execute(
            update(MailingRecipient)
            .where(MailingRecipient.mailing_id == mailing_id, MailingRecipient.email == "r2@example.org")
            .values(email="ann@example.org", master_customer_id="000000000101")
        )
    (carrier,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing_id))
    with write_transaction(factory) as session:
        deliveries.prepare_deliveries(session, carrier, mailing_id, now=T0)
    with factory() as session:
        annes = session.execute(
            select(Delivery.ref)
            .join(MailingRecipient, MailingRecipient.id == Delivery.recipient_id)
            .where(MailingRecipient.email == "ann@example.org")
        ).one()
    refs = {
        "unsubscribe": row(factory, own[0]).ref,
        "resubscribe": row(factory, own[1]).ref,
        "mailing": row(factory, carrier).ref,
        "delivery": annes.ref,
    }
    _write(sim, Kind.UNSUBSCRIBE, refs["unsubscribe"], days=0)
    _write(sim, Kind.RESUBSCRIBE, refs["resubscribe"], days=2)
    _write(sim, Kind.MAILING_ACTIVITY, refs["delivery"], days=1)
    return refs


def test_lookup_as_json_has_every_activity_newest_first_with_every_field_and_every_queue_row(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = _anns_queue(sqlite_url, personify)
    code, out, err = run_cli(capsys, sqlite_url, "lookup", "Ann@Example.org", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    (ann,) = data["constituents"]
    assert (ann["master_customer_id"], ann["sub_customer_id"], ann["name"]) == ("000000000101", 0, "Ann Lee")
    # Three activities over two pages of the paged answer, newest first.
    assert [a["ref"] for a in ann["activities"]] == [
        refs["resubscribe"],
        refs["delivery"],
        refs["unsubscribe"],
    ]
    held = {str(r["ACTIVITY_TEXT"]) for r in personify.activities("000000000101")}
    assert {a["text"] for a in ann["activities"]} == held
    fields = set(ann["activities"][0]["fields"])
    assert {"ActivityId", "ActivityCode", "ActivityDate", "ActivityText", "AddOper", "ModDate"} <= fields
    queue = {r["ref"]: r for r in data["queue"]}
    assert set(queue) == {refs["unsubscribe"], refs["resubscribe"], refs["mailing"]}
    mailing = queue[refs["mailing"]]["as_recipient"]
    assert mailing["mailing"] == "November News"
    assert (mailing["ref"], mailing["status"]) == (refs["delivery"], "pending")
    assert queue[refs["unsubscribe"]]["as_recipient"] is None


def test_lookup_as_a_table_prints_each_activity_with_its_fields_and_the_queue(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = _anns_queue(sqlite_url, personify)
    code, out, err = run_cli(capsys, sqlite_url, "lookup", "ann@example.org")
    assert code == 0, err
    assert "Personify360: 1 constituent with the email ann@example.org." in out
    assert "000000000101-0  Ann Lee" in out
    assert "System Activities, newest first: 3" in out
    assert out.index(refs["resubscribe"]) < out.index(refs["delivery"]) < out.index(refs["unsubscribe"])
    assert "ActivityText: Resubscribed in Informz" in out
    assert "AddOper: INFORMZ" in out
    assert "Queue: 3 rows for this email or its mailings" in out
    queue_part = out[out.index("Queue: ") :]
    assert f"November News: {refs['delivery']} pending" in queue_part
    assert refs["mailing"] in queue_part and refs["unsubscribe"] in queue_part


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("not an email@", "nothing follows the @"),
        ("anthony.garcia57479", "it has no @"),
        ("", "Type an email"),
        # A terminal escape, and a byte that is not UTF-8 (as the shell passes it): refused in words,
        # not a traceback.
        ("ann\x1b[2J@example.org", "a control character (U+001B)"),
        ("\udcff@example.org", "a byte that is not UTF-8 text"),
    ],
)
def test_lookup_of_what_is_not_an_email_exits_2_saying_why_and_asks_nothing(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str], email: str, problem: str
) -> None:
    before = personify.request_count
    code, out, err = run_cli(capsys, sqlite_url, "lookup", email)
    assert code == 2
    assert problem in err and out == ""
    assert personify.request_count == before


def test_lookup_of_someone_unknown_says_so_and_still_lists_the_queue(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue(make_session_factory(make_engine(sqlite_url)), item(email="nobody@example.org"))
    code, out, _ = run_cli(capsys, sqlite_url, "lookup", "nobody@example.org")
    assert code == 0
    assert "Personify360: no constituent has the email nobody@example.org." in out
    assert "Queue: 1 row for this email" in out


def test_lookup_when_personify360_rejects_the_credentials_exits_3_in_words(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRITEBACK_PERSONIFY_PASSWORD", "wrong-secret")
    code, out, err = run_cli(capsys, sqlite_url, "lookup", "ann@example.org")
    assert code == 3
    assert "rejected the user name or password" in err
    assert "wrong-secret" not in out + err and "Traceback" not in err


def test_switch_turns_one_account_off_and_on_and_says_which_are_off(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    enqueue(factory, item(email="ann@example.org"), item(email="bob@example.org", account="Foundation"))
    code, out, _ = run_cli(capsys, sqlite_url, "switch", "Foundation", "off")
    assert code == 0
    assert "writeback for Informz account Foundation: off" in out
    assert "switched off (their writebacks queue up, nothing is sent): Foundation" in out
    with factory() as session:
        assert switches.disabled_accounts(session) == {"Foundation"}
        assert switches.writeback_enabled(session, "Main")
    code, out, _ = run_cli(capsys, sqlite_url, "switch", "Typo Account", "off")
    assert code == 0 and "no writeback of an account named 'Typo Account' is in the queue yet" in out
    run_cli(capsys, sqlite_url, "switch", "Typo Account", "on")
    code, out, _ = run_cli(capsys, sqlite_url, "switch", "Foundation", "on")
    assert code == 0 and "every account sends its writebacks" in out
    code, out, _ = run_cli(capsys, sqlite_url, "switch", "*", "off")
    assert code == 0 and "switched off for every account" in out
    with factory() as session:
        assert not switches.writeback_enabled(session)


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["  ", "off"], "ACCOUNT must not be empty"),
        (["x" * 101, "off"], "at most 100"),
        (["a\tb", "on"], "control"),
    ],
)
def test_switch_refuses_bad_input_and_changes_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, _, err = run_cli(capsys, sqlite_url, "switch", *argv)
    assert code == 2 and problem in err
    with make_session_factory(make_engine(sqlite_url))() as session:
        assert switches.disabled_accounts(session) == set() and switches.writeback_enabled(session)


def test_switch_to_a_state_that_is_not_on_or_off_is_a_usage_error(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        run_cli(capsys, sqlite_url, "switch", "Main", "maybe")
    assert refused.value.code == 2 and "invalid choice: 'maybe'" in capsys.readouterr().err


def test_check_says_ok_or_what_failed(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(capsys, sqlite_url, "check")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ok", "ok", "ok"]
    monkeypatch.setenv("WRITEBACK_PERSONIFY_PASSWORD", "wrong")
    code, out, _ = run_cli(capsys, sqlite_url, "check")
    assert code == 3 and "FAILED       User name and password" in out


def test_help_lists_the_support_and_scheduling_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from writeback_console.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in ("lookup", "switch", "check", "reschedule", "cancel"):
        assert f"\n    {name} " in out


def test_lookup_as_a_table_shows_control_characters_from_personify360_escaped(
    sqlite_url: str, personify: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Text typed into Personify360 can hold anything; printed raw, an escape sequence would retitle or
    clear the support person's terminal, and a carriage return would overwrite the line."""
    personify.add_constituents(
        [
            {
                "master_customer_id": "000000000777",
                "sub_customer_id": 0,
                "email": "eve@example.org",
                "first_name": "Eve\x1b]0;owned\x07",
                "last_name": "Lee",
            }
        ]
    )
    enqueue(make_session_factory(make_engine(sqlite_url)), item(email="eve@example.org"))
    source = ActivitySource(
        kind=Kind.UNSUBSCRIBE,
        mailing=None,
        ref="WB-EVE1",
        account="Main",
        email="eve@example.org",
        occurred_at=T0,
        master_customer_id="000000000777",
        sub_customer_id=0,
        reason="",
    )
    fields = build_activity(source, ActivityMapping())
    # As someone typed it in CRM360: our own texts never carry such characters.
    fields["ActivityText"] = "gone\x1b[2J\rfine [ref WB-EVE1]"
    with PersonifyClient(PersonifySettings(personify.url, "u", "p")) as client:
        client.create_activity(fields)
    code, out, err = run_cli(capsys, sqlite_url, "lookup", "eve@example.org")
    assert code == 0, err
    assert not any(ch in out for ch in "\x1b\x07\r")
    assert "Eve\\x1b]0;owned\\x07" in out and "gone\\x1b[2J\\rfine" in out
    code, out, err = run_cli(capsys, sqlite_url, "lookup", "eve@example.org", "--format", "json")
    assert code == 0, err
    assert "\x1b" not in out
    assert json.loads(out)["constituents"][0]["first_name"] == "Eve\x1b]0;owned\x07"


def test_lookup_without_personify360_settings_exits_3_naming_what_is_missing(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 3 is "Personify360 could not be used (settings, credentials, an outage)"; a lookup with no
    password stored ended 1, as a refusal, so a script could not tell it from one."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("WRITEBACK_NO_KEYRING", "1")
    monkeypatch.setenv("WRITEBACK_PERSONIFY_URL", "https://pds.example.org/PersonifyData.svc")
    monkeypatch.setenv("WRITEBACK_PERSONIFY_USER", "u")
    monkeypatch.delenv("WRITEBACK_PERSONIFY_PASSWORD", raising=False)
    code, out, err = run_cli(capsys, sqlite_url, "lookup", "ann@example.org")
    assert code == 3
    assert "password: none stored" in err and out == ""


def test_lookup_prints_names_its_output_cannot_encode_without_a_traceback(
    sqlite_url: str, personify: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redirected on Windows (`lookup … --format json > ann.json`), Python writes the ANSI code page:
    a Polish name ended the lookup with UnicodeEncodeError, JSON and table alike."""
    import io

    from writeback_console.cli import main

    personify.add_constituents(
        [
            {
                "master_customer_id": "000000000901",
                "sub_customer_id": 0,
                "email": "lucja@example.org",
                "first_name": "Łucja",
                "last_name": "Żółć",
            }
        ]
    )

    def run_on_a_code_page(*extra: str) -> str:
        out = io.BytesIO()
        monkeypatch.setattr("sys.stdout", io.TextIOWrapper(out, encoding="cp1252", write_through=True))
        assert main(["--db", sqlite_url, "lookup", "lucja@example.org", *extra]) == 0
        return out.getvalue().decode("cp1252")

    assert json.loads(run_on_a_code_page("--format", "json"))["constituents"][0]["first_name"] == "Łucja"
    # What the code page lacks is written as Python writes it; what it has (ó) as it is.
    assert "\\u0141ucja \\u017bó\\u0142\\u0107" in run_on_a_code_page()


def test_switch_names_an_account_its_output_cannot_encode_without_a_traceback(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from writeback_console.cli import main

    out = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(out, encoding="cp1252", write_through=True))
    assert main(["--db", sqlite_url, "switch", "Łódź", "off"]) == 0
    assert "Informz account \\u0141ód\\u017a: off" in out.getvalue().decode("cp1252")
