"""The Personify client over real HTTP against the Personify360 simulator on a loopback port."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Kind, new_ref
from writeback_console.personify import client as client_module
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.personify.mapping import (
    ActivityMapping,
    ActivitySource,
    MailingFacts,
    build_activity,
)
from writeback_console.personify.values import PersonifySettings
from writeback_console.sim.simulator import Simulator

USER = "wbuser"
PASSWORD = "Pa55-w0rd-that-must-never-leak"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
HOSTILE = "x' or 1 eq 1 or 'a@b.c"
WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

CONSTITUENTS: list[dict[str, Any]] = [
    {
        "master_customer_id": "000000000101",
        "sub_customer_id": 0,
        "email": "ann@example.org",
        "first_name": "Ann",
        "last_name": "Lee",
        "primary": True,
    },
    {
        "master_customer_id": "000000000102",
        "sub_customer_id": 0,
        "email": "shared@example.org",
        "first_name": "Bob",
        "last_name": "Ray",
        "primary": True,
    },
    {
        "master_customer_id": "000000000103",
        "sub_customer_id": 0,
        "email": "shared@example.org",
        "first_name": "Cy",
        "last_name": "Ng",
        "primary": False,
    },
    {
        "master_customer_id": "000000000103",
        "sub_customer_id": 1,
        "email": "shared@example.org",
        "first_name": "Cy",
        "last_name": "Ng Jr",
        "primary": False,
    },
    {
        "master_customer_id": "000000000104",
        "sub_customer_id": 0,
        "email": "o'brien@example.org",
        "first_name": "Pat",
        "last_name": "O'Brien",
        "primary": True,
    },
    {
        "master_customer_id": "000000000105",
        "sub_customer_id": 0,
        "email": "failing@example.org",
        "first_name": "Fay",
        "last_name": "Ling",
        "primary": True,
    },
]


@pytest.fixture(
    params=[
        ("d", "xml", None, False),
        ("results", "json", None, True),
        ("d", "json", None, False),
        ("results", "xml", None, True),
        ("d", "xml", 2, False),
        ("d", "json", 2, True),
    ],
    ids=lambda p: (
        f"{p[0]}-{p[1]}"
        + (f"-paged-{p[2]}" if p[2] else "")
        + ("-int64-numbers" if p[3] else "-int64-strings")
    ),
)
def sim(request: pytest.FixtureRequest, make_simulator: MakeSimulator) -> Simulator:
    """The simulator in each JSON shape and error format, paging its answers two rows at a time as some
    sites do, and writing Edm.Int64 as OData v2's strings (as WCF does) or as the numbers some sites
    send, so every test runs against each of them and each Int64 form."""
    json_shape, error_format, page_size, int64_as_numbers = request.param
    return make_simulator(
        users={USER: PASSWORD},
        constituents=CONSTITUENTS,
        json_shape=json_shape,
        error_format=error_format,
        page_size=page_size,
        int64_as_numbers=int64_as_numbers,
    )


def connect(sim: Simulator, **settings: Any) -> PersonifyClient:
    values: dict[str, Any] = {"service_root_url": sim.url, "user": USER, "password": PASSWORD, **settings}
    return PersonifyClient(PersonifySettings(**values))


@pytest.fixture
def client(sim: Simulator) -> Iterator[PersonifyClient]:
    with connect(sim) as client:
        yield client


def fields(kind: Kind = Kind.UNSUBSCRIBE, ref: str | None = None, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": kind,
        "ref": ref or new_ref(),
        "account": "ASAE",
        "email": "ann@example.org",
        "occurred_at": WHEN,
        "master_customer_id": "000000000101",
        "sub_customer_id": 0,
        "reason": "Too many emails",
        **changes,
    }
    return build_activity(ActivitySource(**values), ActivityMapping())


def no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert TOKEN not in text


# -- operations ---------------------------------------------------------------------------------------


class TestFindConstituents:
    def test_one(self, client: PersonifyClient) -> None:
        (ann,) = client.find_constituents_by_email("ann@example.org")
        assert (ann.master_customer_id, ann.sub_customer_id, ann.primary) == ("000000000101", 0, True)
        assert (ann.first_name, ann.last_name) == ("Ann", "Lee")
        assert ann.email == "ann@example.org"

    def test_several(self, client: PersonifyClient) -> None:
        found = client.find_constituents_by_email("shared@example.org")
        assert [(c.master_customer_id, c.sub_customer_id, c.primary) for c in found] == [
            ("000000000102", 0, True),
            ("000000000103", 0, False),
            ("000000000103", 1, False),
        ]
        assert [c.last_name for c in found] == ["Ray", "Ng", "Ng Jr"]

    def test_none(self, client: PersonifyClient) -> None:
        assert client.find_constituents_by_email("nobody@example.org") == []

    def test_quote_in_the_address(self, client: PersonifyClient) -> None:
        (pat,) = client.find_constituents_by_email("o'brien@example.org")
        assert pat.last_name == "O'Brien"

    def test_hostile_email_matches_nothing(self, client: PersonifyClient) -> None:
        assert client.find_constituents_by_email(HOSTILE) == []
        assert client.find_constituents_by_email("' or ''='") == []
        assert client.find_constituents_by_email("ann@example.org' or 'a' eq 'a") == []


def _case_id(changes: dict[str, Any]) -> str:
    if "mailing" in changes:
        return f"mailing-{changes['mailing'].furthest_event}"
    if "opted_in" in changes:
        return f"interests-{'in' if changes['opted_in'] else 'out'}"
    return str(changes["kind"].value)


class TestActivities:
    def test_create_returns_the_saved_row(self, sim: Simulator, client: PersonifyClient) -> None:
        ref = new_ref()
        saved = client.create_activity(fields(ref=ref))
        assert saved.activity_id is not None
        assert saved.code == "INFORMZ_UNSUB"
        assert saved.date == WHEN
        assert saved.text.endswith(f"[ref {ref}]")
        (row,) = [r for r in sim.activities() if ref in str(r["ACTIVITY_TEXT"])]
        assert row["MASTER_CUSTOMER_ID"] == "000000000101"
        assert row["ACTIVITY_CODE"] == "INFORMZ_UNSUB"

    def test_activity_ids_are_whole_numbers_in_either_json_form(
        self, sim: Simulator, client: PersonifyClient
    ) -> None:
        refs = [new_ref() for _ in range(2)]
        saved = [client.create_activity(fields(ref=ref)) for ref in refs]
        ids = [a.activity_id for a in saved]
        assert all(isinstance(i, int) for i in ids)
        assert set(ids) == {r["ACTIVITY_ID"] for r in sim.activities()} and len(set(ids)) == 2
        listed = {a.activity_id for a in client.list_activities("000000000101", 0)}
        assert listed == {a.activity_id for a in saved}
        found = client.find_activity_by_ref("000000000101", 0, refs[1])
        assert found is not None and found.activity_id == saved[1].activity_id

    def test_operator_is_recorded(self, sim: Simulator) -> None:
        with connect(sim, operator="WB_CONSOLE") as client:
            saved = client.create_activity(fields())
        assert saved.add_operator == "WB_CONSOLE"

    @pytest.mark.parametrize(
        "changes",
        [
            {"kind": Kind.UNSUBSCRIBE},
            {"kind": Kind.RESUBSCRIBE},
            {"kind": Kind.INVALID_EMAIL, "reason": "550 mailbox unavailable"},
            {"kind": Kind.INTERESTS, "interest": "Advocacy", "opted_in": True},
            {"kind": Kind.INTERESTS, "interest": "Advocacy", "opted_in": False},
            {"kind": Kind.MAILING_ACTIVITY, "mailing": MailingFacts("News", 1, sent_at=WHEN)},
            {"kind": Kind.MAILING_ACTIVITY, "mailing": MailingFacts("News", 1, opened_at=WHEN)},
            {
                "kind": Kind.MAILING_ACTIVITY,
                "mailing": MailingFacts("News", 1, clicks=(("https://x", WHEN),)),
            },
            {"kind": Kind.MAILING_ACTIVITY, "mailing": MailingFacts("News", 1, bounced_at=WHEN)},
            {"kind": Kind.MAILING_ACTIVITY, "mailing": MailingFacts("News", 1, blocked=True)},
        ],
        ids=lambda changes: _case_id(changes),
    )
    def test_every_kind_is_accepted(self, client: PersonifyClient, changes: dict[str, Any]) -> None:
        # The simulator validates codes and subcodes against the project's own SQL script, so this
        # also proves that the default mapping and the script agree.
        values = fields(**changes)
        saved = client.create_activity(values)
        assert (saved.code, saved.subcode) == (values["ActivityCode"], values.get("ActivitySubcode"))

    def test_list_newest_first(self, client: PersonifyClient) -> None:
        refs = [new_ref() for _ in range(3)]
        for days, ref in zip((1, 3, 2), refs, strict=True):
            client.create_activity(fields(ref=ref, occurred_at=WHEN + timedelta(days=days)))
        activities = client.list_activities("000000000101", 0)
        ours = [a for a in activities if any(ref in a.text for ref in refs)]
        assert [a.date for a in ours] == [WHEN + timedelta(days=d) for d in (3, 2, 1)]
        dates = [a.date for a in activities if a.date is not None]
        assert dates == sorted(dates, reverse=True)
        assert "ActivityText" in ours[0].raw and "__metadata" not in ours[0].raw

    def test_list_for_someone_else_is_empty(self, client: PersonifyClient) -> None:
        client.create_activity(fields())
        assert client.list_activities("000000000102", 0) == []
        assert client.list_activities("000000000101", 1) == []

    def test_find_by_ref(self, client: PersonifyClient) -> None:
        longer = "WB-ABCD" + new_ref()[3:9]
        shorter = longer[:-1]
        assert client.find_activity_by_ref("000000000101", 0, shorter) is None
        client.create_activity(fields(ref=longer))
        assert client.find_activity_by_ref("000000000101", 0, shorter) is None
        assert client.find_activity_by_ref("000000000102", 0, longer) is None
        found = client.find_activity_by_ref("000000000101", 0, longer)
        assert found is not None and found.text.endswith(f"[ref {longer}]")

    def test_template_is_fetched_once(
        self, client: PersonifyClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="urllib3")
        for _ in range(3):
            client.create_activity(fields())
        requests_seen = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
        assert sum("/Create?" in line for line in requests_seen) == 1
        assert sum("/Save?" in line for line in requests_seen) == 3

    def test_concurrent_writes_all_arrive_once(self, sim: Simulator, client: PersonifyClient) -> None:
        refs = [new_ref() for _ in range(40)]
        errors: list[BaseException] = []

        def work(chunk: list[str]) -> None:
            for ref in chunk:
                try:
                    client.create_activity(fields(ref=ref))
                except BaseException as exc:  # reported below
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(refs[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        texts = [str(r["ACTIVITY_TEXT"]) for r in sim.activities()]
        assert all(sum(f"[ref {ref}]" in t for t in texts) == 1 for ref in refs)


class TestCodeCheck:
    def test_the_default_codes_are_set_up(self, client: PersonifyClient) -> None:
        check = client.check_activity_codes(ActivityMapping().expected_codes())
        assert check.ok, check.describe()
        assert check.subcodes_checked

    def test_inactive_codes_are_reported(self, sim: Simulator, client: PersonifyClient) -> None:
        sim.set_activity_code_active("INFORMZ_UNSUB", False)
        sim.set_activity_code_active("INFORMZ_IPM", False, "OPTOUT")
        check = client.check_activity_codes(ActivityMapping().expected_codes())
        assert check.inactive_codes == ("INFORMZ_UNSUB",)
        assert check.inactive_subcodes == (("INFORMZ_IPM", "OPTOUT"),)
        assert not check.ok

    def test_unknown_codes_are_reported(self, client: PersonifyClient) -> None:
        check = client.check_activity_codes({"INFORMZ_UNSUB": (), "NOPE": (), "INFORMZ_IPM": ("MAYBE",)})
        assert check.missing_codes == ("NOPE",)
        assert check.missing_subcodes == (("INFORMZ_IPM", "MAYBE"),)
        assert not check.ok and "NOPE" in check.describe()


class TestPagedAnswers:
    """A site that pages server-side sends a few rows and a ``__next`` link; every page is read."""

    @pytest.fixture
    def paged(self, make_simulator: MakeSimulator) -> Simulator:
        return make_simulator(users={USER: PASSWORD}, constituents=CONSTITUENTS, page_size=2)

    def test_email_lookup_sees_the_constituents_on_every_page(self, paged: Simulator) -> None:
        with connect(paged) as client:
            found = client.find_constituents_by_email("shared@example.org")
        # Three communication rows: two on the first page, one on the second.
        assert [(c.master_customer_id, c.sub_customer_id, c.last_name) for c in found] == [
            ("000000000102", 0, "Ray"),
            ("000000000103", 0, "Ng"),
            ("000000000103", 1, "Ng Jr"),
        ]

    def test_activities_on_every_page_are_listed(self, paged: Simulator) -> None:
        refs = [new_ref() for _ in range(5)]
        with connect(paged) as client:
            for days, ref in enumerate(refs):
                client.create_activity(fields(ref=ref, occurred_at=WHEN + timedelta(days=days)))
            before = paged.request_count
            activities = client.list_activities("000000000101", 0)
            pages = paged.request_count - before
        assert [a.text.rsplit("[ref ", 1)[1][:-1] for a in activities] == refs[::-1]
        assert pages == 3

    def test_a_ref_on_a_later_page_is_found(self, paged: Simulator) -> None:
        ref = new_ref()
        with connect(paged) as client:
            client.create_activity(fields(ref=ref))
            paged.page_size = 1
            # The marker matches the activity; the constituent's older rows are not asked for.
            assert client.find_activity_by_ref("000000000101", 0, ref) is not None

    def test_activity_codes_on_every_page_are_checked(self, paged: Simulator) -> None:
        paged.page_size = 1
        with connect(paged) as client:
            check = client.check_activity_codes(ActivityMapping().expected_codes())
        assert check.ok, check.describe()
        assert check.subcodes_checked

    def test_many_constituents_on_several_pages_get_their_names(self, make_simulator: MakeSimulator) -> None:
        people = [
            {
                "master_customer_id": f"0000000002{n:02}",
                "sub_customer_id": 0,
                "email": "team@example.org",
                "first_name": "P",
                "last_name": f"Person {n}",
            }
            for n in range(13)
        ]
        sim = make_simulator(users={USER: PASSWORD}, constituents=people, page_size=3)
        with connect(sim) as client:
            found = client.find_constituents_by_email("team@example.org")
        assert sorted(c.last_name or "" for c in found) == sorted(f"Person {n}" for n in range(13))

    def test_a_next_link_to_another_host_is_not_followed(self, paged: Simulator) -> None:
        # A site behind a proxy that names its inner address; following it would send the password.
        paged.next_link_root = "http://10.0.0.7:8080/PersonifyDataServices/PersonifyData.svc"
        with connect(paged) as client:
            before = paged.request_count
            with pytest.raises(PersonifyError) as info:
                client.find_constituents_by_email("shared@example.org")
        assert paged.request_count - before == 1
        assert info.value.kind is ErrorKind.MALFORMED
        assert "http://10.0.0.7:8080" in info.value.message
        assert "does not follow it" in info.value.message

    def test_a_next_link_on_another_port_or_scheme_is_not_followed(self, paged: Simulator) -> None:
        for root in (
            paged.url.replace(f":{paged.port}/", f":{paged.port + 1}/"),
            paged.url.replace("http://", "https://"),
        ):
            paged.next_link_root = root
            with connect(paged) as client, pytest.raises(PersonifyError, match="does not follow it"):
                client.check_activity_codes({"INFORMZ_UNSUB": ()})

    def test_past_the_cap_the_read_fails_saying_so(
        self, paged: Simulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(client_module, "MAX_COLLECTION_ROWS", 4)
        with connect(paged) as client:
            for _ in range(5):
                client.create_activity(fields())
            with pytest.raises(PersonifyError) as info:
                client.list_activities("000000000101", 0)
        assert "more than 4 rows" in info.value.message
        assert "reads at most 4 rows" in info.value.message


# -- failures -------------------------------------------------------------------------------------


class TestFailures:
    def test_wrong_password(self, sim: Simulator) -> None:
        settings = PersonifySettings(sim.url, USER, "wrong-password")
        with PersonifyClient(settings) as client, pytest.raises(PersonifyError) as info:
            client.find_constituents_by_email("ann@example.org")
        assert (info.value.kind, info.value.status) == (ErrorKind.AUTH, 401)
        assert not info.value.unreachable

    def test_unauthorized_fault(self, sim: Simulator, client: PersonifyClient) -> None:
        sim.faults.unauthorized = True
        with pytest.raises(PersonifyError) as info:
            client.list_activities("000000000101", 0)
        assert info.value.kind is ErrorKind.AUTH

    def test_server_error_carries_the_deepest_message(self, sim: Simulator, client: PersonifyClient) -> None:
        client.create_activity(fields())  # the template is cached before the faults start
        sim.faults.update(fail_rate=1.0, fail_kinds=["500"])
        with pytest.raises(PersonifyError) as info:
            client.list_activities("000000000101", 0)
        assert (info.value.kind, info.value.status) == (ErrorKind.SERVER, 500)
        assert "deadlock" in info.value.message
        assert not info.value.may_have_arrived
        with pytest.raises(PersonifyError) as info:
            client.create_activity(fields())
        assert info.value.kind is ErrorKind.SERVER and info.value.may_have_arrived

    def test_validation_issue_in_a_nested_internalexception(self, client: PersonifyClient) -> None:
        with pytest.raises(PersonifyError) as info:
            client.create_activity({**fields(), "ActivityCode": "NO_SUCH_CODE"})
        error = info.value
        assert (error.kind, error.status) == (ErrorKind.VALIDATION, 400)
        assert "NO_SUCH_CODE" in error.message
        assert "An error occurred while processing this request" not in error.message
        assert not error.may_have_arrived
        assert error.excerpt

    def test_a_password_echoed_by_the_server_is_scrubbed(self, client: PersonifyClient) -> None:
        with pytest.raises(PersonifyError) as info:
            client.create_activity({**fields(), "ActivityCode": PASSWORD})
        assert "'***'" in info.value.message
        no_secret(str(info.value), repr(info.value), info.value.excerpt)

    def test_validation_fault(self, sim: Simulator, client: PersonifyClient) -> None:
        sim.faults.update(fail_rate=1.0, fail_kinds=["validation"])
        with pytest.raises(PersonifyError) as info:
            client.create_activity(fields())
        assert info.value.kind is ErrorKind.VALIDATION and not info.value.may_have_arrived

    def test_failing_email(self, sim: Simulator, client: PersonifyClient) -> None:
        sim.faults.fail_emails = ["failing@example.org"]
        with pytest.raises(PersonifyError) as info:
            client.create_activity(fields(master_customer_id="000000000105", email="failing@example.org"))
        assert info.value.kind is ErrorKind.VALIDATION

    def test_read_timeout(self, sim: Simulator) -> None:
        with connect(sim, read_timeout=0.2) as client:
            client.create_activity(fields())
            sim.faults.latency_ms = 1500
            with pytest.raises(PersonifyError) as info:
                client.list_activities("000000000101", 0)
            assert info.value.kind is ErrorKind.TIMEOUT
            assert not info.value.unreachable and not info.value.may_have_arrived
            with pytest.raises(PersonifyError) as info:
                client.create_activity(fields())
            assert info.value.kind is ErrorKind.TIMEOUT and info.value.may_have_arrived
            assert "0.2 s" in info.value.message

    def test_timeout_fault(self, sim: Simulator) -> None:
        sim.faults.update(fail_rate=1.0, fail_kinds=["timeout"], hold_seconds=1.0)
        with connect(sim, read_timeout=0.3) as client, pytest.raises(PersonifyError) as info:
            client.list_activities("000000000101", 0)
        assert info.value.kind is ErrorKind.TIMEOUT

    def test_dropped_connection(self, sim: Simulator, client: PersonifyClient) -> None:
        client.create_activity(fields())
        sim.faults.update(fail_rate=1.0, fail_kinds=["drop"])
        with pytest.raises(PersonifyError) as info:
            client.list_activities("000000000101", 0)
        assert info.value.kind is ErrorKind.DROPPED and not info.value.may_have_arrived
        with pytest.raises(PersonifyError) as info:
            client.create_activity(fields())
        assert info.value.kind is ErrorKind.DROPPED and info.value.may_have_arrived

    def test_malformed_json(self, sim: Simulator, client: PersonifyClient) -> None:
        client.create_activity(fields())
        sim.faults.update(fail_rate=1.0, fail_kinds=["malformed"])
        with pytest.raises(PersonifyError) as info:
            client.list_activities("000000000101", 0)
        assert info.value.kind is ErrorKind.MALFORMED and info.value.status == 200
        assert info.value.excerpt
        with pytest.raises(PersonifyError) as info:
            client.create_activity(fields())
        assert info.value.kind is ErrorKind.MALFORMED and info.value.may_have_arrived

    def test_the_client_recovers_when_faults_stop(self, sim: Simulator, client: PersonifyClient) -> None:
        sim.faults.update(fail_rate=1.0, fail_kinds=["drop"])
        with pytest.raises(PersonifyError):
            client.list_activities("000000000101", 0)
        sim.faults.fail_rate = 0.0
        assert client.find_constituents_by_email("ann@example.org")


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = PersonifySettings(
        f"http://127.0.0.1:{port}/PersonifyDataServices/PersonifyData.svc", USER, PASSWORD
    )
    with PersonifyClient(settings) as client, pytest.raises(PersonifyError) as info:
        client.create_activity(fields())
    assert info.value.kind is ErrorKind.CONNECTION
    assert info.value.unreachable and not info.value.may_have_arrived


def test_credentials_never_appear(make_simulator: MakeSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """Every failure the client knows, at DEBUG on every logger (urllib3's included)."""
    caplog.set_level(logging.DEBUG)
    seen: list[PersonifyError] = []
    for error_format in ("xml", "json"):
        sim = make_simulator(users={USER: PASSWORD}, constituents=CONSTITUENTS, error_format=error_format)
        with connect(sim, read_timeout=0.3) as client:
            client.create_activity(fields())
            attempts: list[tuple[dict[str, Any], Callable[[], object]]] = [
                ({"unauthorized": True}, lambda: client.list_activities("000000000101", 0)),
                ({"fail_rate": 1.0, "fail_kinds": ["500"]}, lambda: client.create_activity(fields())),
                ({"fail_rate": 1.0, "fail_kinds": ["validation"]}, lambda: client.create_activity(fields())),
                ({"fail_rate": 1.0, "fail_kinds": ["drop"]}, lambda: client.create_activity(fields())),
                ({"fail_rate": 1.0, "fail_kinds": ["malformed"]}, lambda: client.create_activity(fields())),
                ({"latency_ms": 1000}, lambda: client.create_activity(fields())),
                ({}, lambda: client.create_activity({**fields(), "ActivityCode": PASSWORD})),
            ]
            for faults, attempt in attempts:
                sim.faults.update(**{"unauthorized": False, "fail_rate": 0.0, "latency_ms": 0, **faults})
                with pytest.raises(PersonifyError) as info:
                    attempt()
                seen.append(info.value)
    with (
        PersonifyClient(PersonifySettings(sim.url, USER, "bad-" + PASSWORD)) as client,
        pytest.raises(PersonifyError) as info,
    ):
        client.list_activities("000000000101", 0)
    seen.append(info.value)

    assert {e.kind for e in seen} >= {
        ErrorKind.AUTH,
        ErrorKind.SERVER,
        ErrorKind.VALIDATION,
        ErrorKind.DROPPED,
        ErrorKind.MALFORMED,
        ErrorKind.TIMEOUT,
    }
    for error in seen:
        no_secret(str(error), repr(error), error.message, error.excerpt)
    assert caplog.records
    for record in caplog.records:
        no_secret(record.getMessage(), str(record.args), record.exc_text or "")
    no_secret(caplog.text)


class TestEnvironment:
    """Proxies and the CA bundle come from the environment, as requests takes them, read once."""

    def test_a_proxy_named_in_the_environment_is_used(
        self, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sim = make_simulator(users={USER: PASSWORD}, constituents=CONSTITUENTS)
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            nowhere = closed.getsockname()[1]
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{nowhere}")
        with connect(sim) as client, pytest.raises(PersonifyError) as failed:
            client.find_constituents_by_email("ann@example.org")
        assert failed.value.unreachable and not failed.value.sent
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with connect(sim) as client:
            assert [c.master_customer_id for c in client.find_constituents_by_email("ann@example.org")] == [
                "000000000101"
            ]

    def test_the_environment_is_read_once_per_client_not_for_every_request(
        self, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # requests reads every variable of the environment twice per request (0.3 ms of Python, a
        # quarter of what a writeback costs the dispatcher's threads, holding the GIL the window needs).
        import requests.sessions

        reads: list[str] = []
        real = requests.sessions.get_environ_proxies

        def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
            reads.append(url)
            return real(url, no_proxy=no_proxy)

        monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
        monkeypatch.setattr(requests.utils, "get_environ_proxies", counted)
        sim = make_simulator(users={USER: PASSWORD}, constituents=CONSTITUENTS)
        with connect(sim) as client:
            for _ in range(5):
                client.find_constituents_by_email("ann@example.org")
        assert len(reads) <= 1
