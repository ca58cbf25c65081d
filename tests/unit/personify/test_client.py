"""Unit tests for the Personify client over a fake transport: requests, parsing and error mapping."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3.exceptions
from requests.adapters import BaseAdapter

from writeback_console.personify import client as client_module
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.personify.values import CodeCheck, PersonifySettings

ROOT = "https://pds.example.org/PersonifyDataServices/PersonifyData.svc"
PASSWORD = "s3cret-Pa55"
TOKEN = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()

Handler = Callable[[requests.PreparedRequest], requests.Response]


class FakeTransport(BaseAdapter):
    """Answers every request with what the test's handler says, and remembers the requests."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []
        self.lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        with self.lock:
            self.requests.append(request)
        response = self.handler(request)
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def answer(
    status: int = 200, body: Any = None, content_type: str = "application/json", **headers: str
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = http.client.responses.get(status, "")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response._content = raw
    response._content_consumed = True  # type: ignore[attr-defined]
    response.headers.update({"Content-Type": content_type, **headers})
    return response


def options(request: requests.PreparedRequest) -> dict[str, str]:
    query = urlsplit(request.url or "").query
    return {key: values[0] for key, values in parse_qs(query, strict_parsing=bool(query)).items()}


def entity_set(request: requests.PreparedRequest) -> str:
    return urlsplit(request.url or "").path.rsplit("/", 1)[-1]


def make_client(handler: Handler, **settings: Any) -> tuple[PersonifyClient, FakeTransport]:
    transport = FakeTransport(handler)
    session = requests.Session()
    session.mount("https://", transport)
    values: dict[str, Any] = {"service_root_url": ROOT, "user": "svc", "password": PASSWORD, **settings}
    return PersonifyClient(PersonifySettings(**values), session=session), transport


class TestSettings:
    @pytest.mark.parametrize(
        "url",
        [
            "",
            "pds.example.org/x",
            "ftp://pds.example.org/x",
            "https:///x",
            "https://h:99999/x",
            "https://h/x?a=1",
        ],
    )
    def test_bad_urls_name_the_field(self, url: str) -> None:
        with pytest.raises(ValueError, match=r"^service_root_url:"):
            PersonifySettings(service_root_url=url, user="u", password="p")

    def test_credentials_in_the_url_are_refused(self) -> None:
        with pytest.raises(ValueError, match="user name or password"):
            PersonifySettings(service_root_url="https://u:p@h/x", user="u", password="p")

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("connect_timeout", 0),
            ("read_timeout", -1),
            ("pool_size", 0),
            ("user", ""),
            ("operator", "A\r\nX: y"),
        ],
    )
    def test_bad_values_name_the_field(self, name: str, value: Any) -> None:
        values: dict[str, Any] = {"service_root_url": ROOT, "user": "u", "password": "p", name: value}
        with pytest.raises(ValueError, match=f"^{name}:"):
            PersonifySettings(**values)

    def test_plain_http_is_refused_because_it_sends_the_password_unencrypted(self) -> None:
        with pytest.raises(
            ValueError, match=r"^service_root_url: http:// would send .* password unencrypted"
        ):
            PersonifySettings(service_root_url="http://pds.example.org/x.svc", user="u", password="p")
        with pytest.raises(ValueError, match="allow_insecure_http"):
            PersonifySettings(service_root_url="HTTP://10.0.0.5:8080/x.svc", user="u", password="p")

    def test_plain_http_is_allowed_when_asked_for(self) -> None:
        settings = PersonifySettings(
            service_root_url="http://pds.example.org/x.svc", user="u", password="p", allow_insecure_http=True
        )
        assert settings.root == "http://pds.example.org/x.svc"

    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.0.0.1:8642", "127.8.9.10", "[::1]:8642", "localhost", "LOCALHOST:1"]
    )
    def test_plain_http_to_this_computer_needs_no_flag(self, host: str) -> None:
        PersonifySettings(service_root_url=f"http://{host}/x.svc", user="u", password="p")

    @pytest.mark.parametrize("host", ["localhost.example.org", "127.0.0.1.example.org", "128.0.0.1", "[::2]"])
    def test_hosts_that_only_look_local_need_the_flag(self, host: str) -> None:
        with pytest.raises(ValueError, match=r"^service_root_url: http://"):
            PersonifySettings(service_root_url=f"http://{host}/x.svc", user="u", password="p")

    @pytest.mark.parametrize(
        ("operator", "named"),
        [
            ("Jos\u00e9", "'\u00e9' (U+00E9)"),
            ("INFORMZ\u2013WB", "'\u2013' (U+2013)"),
            ("A\tB", "'\\t' (U+0009)"),
            ("A\r\nX: y", "'\\r' (U+000D)"),
        ],
    )
    def test_operator_outside_printable_ascii_is_refused_naming_the_character(
        self, operator: str, named: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            PersonifySettings(service_root_url=ROOT, user="u", password="p", operator=operator)
        assert str(info.value) == (
            f"operator: {named} cannot be sent in the AddModOper header: "
            "use plain ASCII letters, digits and punctuation"
        )

    @pytest.mark.parametrize("operator", ["", "   ", "X" * 51])
    def test_operator_must_be_1_to_50_characters_not_only_spaces(self, operator: str) -> None:
        with pytest.raises(ValueError, match=r"^operator: .* cannot be sent in the AddModOper header"):
            PersonifySettings(service_root_url=ROOT, user="u", password="p", operator=operator)

    @pytest.mark.parametrize("operator", ["X" * 50, "J. O'Brien-Smith (web)", "~"])
    def test_operator_of_printable_ascii_is_accepted(self, operator: str) -> None:
        assert PersonifySettings(ROOT, "u", "p", operator=operator).operator == operator

    @pytest.mark.parametrize(
        ("user", "password", "message"),
        [
            ("u", "pa\ud800ss", "password: holds an unpaired surrogate (U+D800) and cannot be sent"),
            ("sv\udcffc", "p", "user: holds an unpaired surrogate (U+DCFF) and cannot be sent"),
            ("dom:svc", "p", "user: must not contain ':' (HTTP Basic ends the user name at the first colon)"),
        ],
    )
    def test_credentials_that_cannot_be_sent_are_refused_naming_the_field(
        self, user: str, password: str, message: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            PersonifySettings(service_root_url=ROOT, user=user, password=password)
        assert str(info.value) == message

    def test_a_password_with_any_other_unicode_is_accepted(self) -> None:
        assert PersonifySettings(ROOT, "u", "p\u20ac\u2013 \U0001f511").password == "p\u20ac\u2013 \U0001f511"

    def test_password_is_not_in_the_repr(self) -> None:
        settings = PersonifySettings(service_root_url=ROOT, user="svc", password=PASSWORD)
        assert PASSWORD not in repr(settings)
        assert "svc" in repr(settings)

    def test_client_repr_shows_url_and_user_only(self) -> None:
        client, _ = make_client(lambda r: answer(body={"d": []}))
        assert repr(client) == f"PersonifyClient(url={ROOT!r}, user='svc')"


def test_requests_carry_auth_accept_and_encoded_filter() -> None:
    client, transport = make_client(lambda r: answer(body={"d": []}))
    assert client.find_constituents_by_email("o'brien+x@example.org") == []
    (request,) = transport.requests
    assert request.headers["Authorization"] == f"Basic {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert entity_set(request) == "CusCommunications"
    url = request.url or ""
    assert "+" not in urlsplit(url).query
    assert "%20" in url
    assert options(request) == {
        "$filter": "(CommTypeCodeString eq 'EMAIL') and (FormattedPhoneAddress eq 'o''brien+x@example.org')",
        "$select": "MasterCustomerId,SubCustomerId,PrimaryFlag",
    }


def test_constituents_are_deduplicated_and_named() -> None:
    def handler(request: requests.PreparedRequest) -> requests.Response:
        if entity_set(request) == "CusCommunications":
            rows = [
                {
                    "__metadata": {},
                    "MasterCustomerId": "000000000102",
                    "SubCustomerId": 0,
                    "PrimaryFlag": False,
                },
                {"MasterCustomerId": "000000000101", "SubCustomerId": 0, "PrimaryFlag": "N"},
                {"MasterCustomerId": "000000000101", "SubCustomerId": 0, "PrimaryFlag": "Y"},
                {"MasterCustomerId": "000000000101", "SubCustomerId": 1, "PrimaryFlag": False},
            ]
            return answer(body={"d": {"results": rows}})
        assert entity_set(request) == "CustomerInfos"
        return answer(
            body={
                "d": [
                    {
                        "MasterCustomerId": "000000000101",
                        "SubCustomerId": 0,
                        "LabelName": "Ann Lee",
                        "FirstName": "Ann",
                        "LastName": "Lee",
                        "RecordType": "I",
                        "Extra": 1,
                    },
                    {
                        "MasterCustomerId": "000000000102",
                        "SubCustomerId": 0,
                        "LabelName": "ACME Inc",
                        "FirstName": "",
                        "LastName": "",
                        "RecordType": "C",
                    },
                ]
            }
        )

    client, transport = make_client(handler)
    found = client.find_constituents_by_email("  ann@example.org ")
    assert [(c.master_customer_id, c.sub_customer_id, c.primary) for c in found] == [
        ("000000000101", 0, True),
        ("000000000101", 1, False),
        ("000000000102", 0, False),
    ]
    assert found[0].label_name == "Ann Lee"
    assert found[0].email == "ann@example.org"
    assert found[1].label_name is None
    assert found[1].display_name == "000000000101-1"
    assert found[2].first_name is None and found[2].record_type == "C"
    names_filter = options(transport.requests[1])["$filter"]
    assert names_filter.count(" or ") == 2
    assert "(MasterCustomerId eq '000000000101') and (SubCustomerId eq 1)" in names_filter


def test_many_constituents_are_named_in_chunks() -> None:
    rows = [{"MasterCustomerId": f"{i:012d}", "SubCustomerId": 0, "PrimaryFlag": False} for i in range(25)]

    def handler(request: requests.PreparedRequest) -> requests.Response:
        if entity_set(request) == "CusCommunications":
            return answer(body={"d": rows})
        return answer(body={"d": []})

    client, transport = make_client(handler)
    assert len(client.find_constituents_by_email("shared@example.org")) == 25
    assert [entity_set(r) for r in transport.requests].count("CustomerInfos") == 3
    assert all(len(r.url or "") < 2048 for r in transport.requests)


def test_empty_email_asks_nothing() -> None:
    client, transport = make_client(lambda r: answer(body={"d": []}))
    assert client.find_constituents_by_email("   ") == []
    assert transport.requests == []


def activity_row(activity_id: Any, date: str | None, text: str = "t") -> dict[str, Any]:
    return {
        "__metadata": {"type": "PersonifyDataASI.CusActivity"},
        "ActivityId": activity_id,
        "MasterCustomerId": "000000000101",
        "SubCustomerId": 0,
        "ActivityCode": "INFORMZ_UNSUB",
        "ActivitySubcode": "",
        "ActivityDate": date,
        "ActivityText": text,
        "Subsystem": "CUS",
        "AddOperator": "INFORMZ",
        "SomethingNew": {"x": 1},
    }


#: Edm.Int64 as OData v2's JSON format writes it (a string, as WCF does) and as some sites do (a number).
INT64_FORMS = {"string": str, "number": int}


@pytest.mark.parametrize("int64", INT64_FORMS.values(), ids=INT64_FORMS.keys())
def test_activities_newest_first_by_date_then_id(int64: Callable[[int], Any]) -> None:
    rows = [
        activity_row(int64(1), "/Date(1700000000000)/"),
        activity_row(int64(3), "/Date(1700000000000)/"),
        activity_row(int64(2), "/Date(1800000000000+0100)/"),
        activity_row(int64(4), None),
        activity_row(int64(5), "garbage"),
        activity_row(int64(10), "/Date(1700000000000)/"),
    ]
    client, transport = make_client(lambda r: answer(body={"d": {"results": rows}}))
    activities = client.list_activities("000000000101", 0)
    # 10 after 3: the ids compare as numbers, whichever form they came in.
    assert [a.activity_id for a in activities] == [2, 10, 3, 1, 5, 4]
    first = activities[0]
    assert first.date == datetime.fromtimestamp(1_800_000_000, UTC)
    assert first.code == "INFORMZ_UNSUB" and first.subcode is None and first.add_operator == "INFORMZ"
    assert "__metadata" not in first.raw and first.raw["SomethingNew"] == {"x": 1}
    assert options(transport.requests[0]) == {
        "$filter": "(MasterCustomerId eq '000000000101') and (SubCustomerId eq 0)"
    }


@pytest.mark.parametrize("value", ["12a", "", 1.5, True, {"x": 1}])
def test_an_activity_id_that_is_no_int64_is_a_protocol_error_naming_it(value: Any) -> None:
    rows = [activity_row(1, None), activity_row(value, None)]
    client, _ = make_client(lambda r: answer(body={"d": rows}))
    with pytest.raises(PersonifyError, match="answered CusActivities with a value") as info:
        client.list_activities("000000000101", 0)
    assert info.value.kind is ErrorKind.MALFORMED and info.value.status == 200
    assert "ActivityId is " in info.value.message and "Edm.Int64" in info.value.message
    with pytest.raises(PersonifyError, match="ActivityId is "):
        client.find_activity_by_ref("000000000101", 0, "WB-1")


def test_an_activity_without_an_id_has_none() -> None:
    row = activity_row(None, "/Date(1)/")
    client, _ = make_client(lambda r: answer(body={"d": [row]}))
    (activity,) = client.list_activities("000000000101", 0)
    assert activity.activity_id is None


@pytest.mark.parametrize("int64", INT64_FORMS.values(), ids=INT64_FORMS.keys())
def test_an_activity_id_under_another_name_is_read_in_either_form(int64: Callable[[int], Any]) -> None:
    row = activity_row(None, None)
    del row["ActivityId"]
    row["CusActivityId"] = int64(9007199254740993)  # past 2**53, where a float would lose it
    client, _ = make_client(lambda r: answer(body={"d": [row]}))
    (activity,) = client.list_activities("000000000101", 0)
    assert activity.activity_id == 9007199254740993


def test_a_constituent_key_that_is_no_number_is_a_protocol_error_not_sub_customer_0() -> None:
    # Read as 0, it would send the writeback to the constituent's main record instead.
    def handler(request: requests.PreparedRequest) -> requests.Response:
        row = {"MasterCustomerId": "000000000101", "SubCustomerId": "1x", "PrimaryFlag": True}
        return answer(body={"d": [row]})

    client, transport = make_client(handler)
    with pytest.raises(PersonifyError, match="answered CusCommunications with a value") as info:
        client.find_constituents_by_email("ann@example.org")
    assert "SubCustomerId is '1x', not an Edm.Int32" in info.value.message
    assert len(transport.requests) == 1


def test_find_by_ref_uses_the_bracketed_marker_and_rechecks() -> None:
    rows = [activity_row(1, "/Date(1)/", "x [ref WB-ABCD]"), activity_row(2, "/Date(2)/", "y [ref WB-ABC]")]
    client, transport = make_client(lambda r: answer(body={"d": rows}))
    found = client.find_activity_by_ref("000000000101", 0, "WB-ABC")
    assert found is not None and found.activity_id == 2
    assert "substringof('[ref WB-ABC]',ActivityText)" in options(transport.requests[0])["$filter"]


class TestNextPageLinks:
    """What a ``__next`` link may be; the pages themselves are read against the simulator."""

    def test_a_link_given_twice_ends_the_read(self) -> None:
        link = ROOT + "/CusActivities?$skiptoken=1"
        client, transport = make_client(
            lambda r: answer(body={"d": {"results": [activity_row(1, None, "x")], "__next": link}})
        )
        with pytest.raises(PersonifyError, match="already given"):
            client.list_activities("000000000101", 0)
        assert len(transport.requests) == 2

    @pytest.mark.parametrize(
        "link",
        [
            "https://svc:x@pds.example.org/PersonifyDataServices/PersonifyData.svc/CusActivities?$skiptoken=1",
            "https://pds.example.org.evil.example/CusActivities?$skiptoken=1",
            "https://pds.example.org:8443/CusActivities?$skiptoken=1",
            "https://pds.example.org:port/CusActivities",
            "//evil.example/CusActivities?$skiptoken=1",
            "http://pds.example.org/PersonifyDataServices/PersonifyData.svc/CusActivities?$skiptoken=1",
        ],
    )
    def test_a_link_off_the_service_root_is_refused(self, link: str) -> None:
        client, transport = make_client(lambda r: answer(body={"d": {"results": [], "__next": link}}))
        with pytest.raises(PersonifyError, match="does not follow it") as info:
            client.list_activities("000000000101", 0)
        assert len(transport.requests) == 1
        assert PASSWORD not in info.value.message

    def test_a_link_carrying_a_user_name_is_refused_saying_so(self) -> None:
        """Its host is the service root's, so naming only the host read "on https://pds.example.org,
        not on https://pds.example.org"."""
        link = "https://evil.example\\@pds.example.org/PersonifyDataServices/PersonifyData.svc/CusActivities"
        client, _ = make_client(lambda r: answer(body={"d": {"results": [], "__next": link}}))
        with pytest.raises(PersonifyError, match="does not follow it") as info:
            client.list_activities("000000000101", 0)
        assert "a user name or password" in info.value.message
        assert "evil.example" not in info.value.message

    def test_a_first_page_past_the_cap_says_one_page(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(client_module, "MAX_COLLECTION_ROWS", 1)
        link = ROOT + "/CusActivities?$skiptoken=1"
        client, _ = make_client(
            lambda r: answer(body={"d": {"results": [activity_row(1, None, "x")], "__next": link}})
        )
        with pytest.raises(PersonifyError) as info:
            client.list_activities("000000000101", 0)
        assert "with more than 1 row in 1 page;" in info.value.message

    def test_the_default_port_is_the_same_port(self) -> None:
        link = (
            "https://PDS.example.org:443/PersonifyDataServices/PersonifyData.svc/CusActivities?$skiptoken=1"
        )
        pages = iter(
            [
                {"d": {"results": [activity_row(1, None, "a")], "__next": link}},
                {"d": {"results": [activity_row(2, None, "b")]}},
            ]
        )
        client, transport = make_client(lambda r: answer(body=next(pages)))
        assert [a.activity_id for a in client.list_activities("000000000101", 0)] == [2, 1]
        assert (transport.requests[1].url or "").endswith("/CusActivities?$skiptoken=1")

    def test_a_link_relative_to_the_service_root_is_followed_there(self) -> None:
        pages = iter(
            [
                {"d": {"results": [activity_row(1, None, "a")], "__next": "CusActivities?$skiptoken=1"}},
                {"d": {"results": [activity_row(2, None, "b")]}},
            ]
        )
        client, transport = make_client(lambda r: answer(body=next(pages)))
        assert [a.activity_id for a in client.list_activities("000000000101", 0)] == [2, 1]
        assert transport.requests[1].url == ROOT + "/CusActivities?$skiptoken=1"

    def test_a_next_link_that_is_not_text_is_malformed(self) -> None:
        client, _ = make_client(lambda r: answer(body={"d": {"results": [], "__next": 5}}))
        with pytest.raises(PersonifyError, match="'__next' is not an address"):
            client.list_activities("000000000101", 0)


def test_find_by_ref_none_when_absent() -> None:
    client, _ = make_client(lambda r: answer(body={"d": [activity_row(1, None, "x [ref WB-ABCD]")]}))
    assert client.find_activity_by_ref("000000000101", 0, "WB-ABC") is None


TEMPLATE = {
    "__metadata": {"type": "PersonifyDataASI.CusActivity"},
    "ActivityId": 0,
    "MasterCustomerId": None,
    "SubCustomerId": 0,
    "ActivityCode": None,
    "ActivityDate": "/Date(-62135596800000)/",
    "ActivityText": None,
    "Subsystem": "CUS",
    "CallTopicCode": None,
}


def saving_handler(calls: dict[str, int], create_delay: float = 0.0) -> Handler:
    lock = threading.Lock()

    def handler(request: requests.PreparedRequest) -> requests.Response:
        name = entity_set(request)
        with lock:
            calls[name] = calls.get(name, 0) + 1
        if name == "Create":
            time.sleep(create_delay)
            return answer(body={"d": TEMPLATE})
        assert name == "Save"
        saved = json.loads(request.body or b"")
        saved["ActivityId"] = 42
        saved["AddOperator"] = request.headers.get("AddModOper")
        return answer(body={"d": saved})

    return handler


def test_create_fills_the_template_and_saves() -> None:
    calls: dict[str, int] = {}
    client, transport = make_client(saving_handler(calls), operator="INFORMZ_WB")
    when = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    saved = client.create_activity(
        {
            "MasterCustomerId": "000000000101",
            "SubCustomerId": 0,
            "ActivityCode": "INFORMZ_UNSUB",
            "ActivityDate": when,
            "ActivityText": "Bye [ref WB-1]",
        }
    )
    assert saved.activity_id == 42 and saved.add_operator == "INFORMZ_WB" and saved.date == when
    create, save = transport.requests
    assert create.method == "GET" and options(create) == {"EntityName": "'CusActivity'"}
    assert save.method == "POST" and options(save) == {"EntityName": "'CusActivity'"}
    assert save.headers["AddModOper"] == "INFORMZ_WB"
    assert save.headers["Content-Type"] == "application/json"
    body = json.loads(save.body or b"")
    assert body["ActivityDate"] == "/Date(1700000000000)/"
    assert body["CallTopicCode"] is None and body["Subsystem"] == "CUS"
    assert "__metadata" not in body


def test_the_template_goes_back_in_the_form_it_came_in() -> None:
    template = {**TEMPLATE, "ActivityId": "0"}
    client, transport = make_client(
        lambda r: answer(
            body={"d": template if entity_set(r) == "Create" else {**template, "ActivityId": "77"}}
        )
    )
    saved = client.create_activity({"ActivityText": "x"})
    assert saved.activity_id == 77
    assert json.loads(transport.requests[1].body or b"")["ActivityId"] == "0"


@pytest.mark.parametrize("value", ["7x", None])
def test_a_save_answer_with_an_unreadable_id_is_a_protocol_error_that_may_have_arrived(value: Any) -> None:
    def handler(request: requests.PreparedRequest) -> requests.Response:
        if entity_set(request) == "Create":
            return answer(body={"d": TEMPLATE})
        return answer(body={"d": {**TEMPLATE, "ActivityId": "7", "SubCustomerId": value}})

    client, _ = make_client(handler)
    with pytest.raises(PersonifyError, match="answered Save with a value") as info:
        client.create_activity({"ActivityText": "x"})
    assert info.value.kind is ErrorKind.MALFORMED and "SubCustomerId is " in info.value.message
    # The Save was answered 200: the activity is there, so it is looked for before any new write.
    assert info.value.write and info.value.may_have_arrived


def test_template_is_fetched_once_by_many_threads() -> None:
    calls: dict[str, int] = {}
    client, _ = make_client(saving_handler(calls, create_delay=0.05))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            client.create_activity({"MasterCustomerId": f"{i:012d}", "ActivityText": f"n{i}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert calls == {"Create": 1, "Save": 16}


def test_create_refuses_bad_field_names() -> None:
    client, _ = make_client(saving_handler({}))
    with pytest.raises(ValueError, match="property name"):
        client.create_activity({"Bad Name": 1})


def codes_handler(codes: list[dict[str, Any]], subcodes: list[dict[str, Any]] | None) -> Handler:
    def handler(request: requests.PreparedRequest) -> requests.Response:
        if entity_set(request) == "ApplicationCodes":
            return answer(body={"d": codes})
        if subcodes is None:
            return answer(
                404,
                b"<error><message>Resource not found for segment 'ApplicationSubcodes'.</message></error>",
                "application/xml",
            )
        return answer(body={"d": {"results": subcodes}})

    return handler


EXPECTED = {
    "INFORMZ_UNSUB": (),
    "INFORMZ_MAILING": ("SENT", "OPEN"),
    "INFORMZ_IPM": ("OPTIN",),
    "INFORMZ_GONE": (),
}


def test_code_check_finds_every_problem() -> None:
    codes: list[dict[str, Any]] = [
        {"Code": "INFORMZ_UNSUB", "Option1": "Y", "ActiveFlag": True},
        {"Code": "INFORMZ_MAILING", "Option1": "N", "ActiveFlag": "N"},
        {"Code": "INFORMZ_IPM", "Option1": None},
    ]
    subcodes: list[dict[str, Any]] = [
        {"Code": "INFORMZ_MAILING", "Subcode": "SENT", "ActiveFlag": False},
        {"Code": "INFORMZ_IPM", "Subcode": "OPTIN"},
    ]
    client, transport = make_client(codes_handler(codes, subcodes))
    check = client.check_activity_codes(EXPECTED)
    assert check == CodeCheck(
        missing_codes=("INFORMZ_GONE",),
        contact_tracking_codes=("INFORMZ_UNSUB",),
        inactive_codes=("INFORMZ_MAILING",),
        missing_subcodes=(("INFORMZ_MAILING", "OPEN"),),
        inactive_subcodes=(("INFORMZ_MAILING", "SENT"),),
    )
    assert not check.ok
    text = check.describe()
    for word in ("INFORMZ_GONE", "Contact-tracking", "INFORMZ_MAILING/OPEN", "Inactive subcodes", "sql/"):
        assert word in text
    assert options(transport.requests[0])["$filter"] == "(SubsystemString eq 'CUS') and (Type eq 'ACTIVITY')"


def test_code_check_without_a_subcode_entity_set() -> None:
    codes = [{"Code": c, "Option1": "N"} for c in EXPECTED if c != "INFORMZ_GONE"]
    client, _ = make_client(codes_handler(codes, None))
    check = client.check_activity_codes({c: s for c, s in EXPECTED.items() if c != "INFORMZ_GONE"})
    assert check.ok and not check.subcodes_checked
    assert "Subcodes could not be checked" in check.describe()


def test_code_check_all_good() -> None:
    codes = [{"Code": "A", "Option1": "N", "ActiveFlag": True}]
    client, _ = make_client(codes_handler(codes, [{"Code": "A", "Subcode": "S"}]))
    check = client.check_activity_codes({"A": ("S",)})
    assert check.ok and check.subcodes_checked
    assert check.describe() == "All activity codes and subcodes are set up in Personify360."


class TestHttpErrors:
    def test_xml_validation_issue_gives_the_deepest_message(self) -> None:
        body = (
            b'<?xml version="1.0"?><error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
            b"<code/><message>Outer</message><innererror><message>Middle</message><internalexception>"
            b"<message>Validation issues: bad code</message></internalexception></innererror></error>"
        )
        client, _ = make_client(lambda r: answer(400, body, "application/xml"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        error = info.value
        assert (error.kind, error.status, error.message) == (
            ErrorKind.VALIDATION,
            400,
            "Validation issues: bad code",
        )
        assert error.excerpt.startswith("<?xml")

    def test_plain_reason_when_the_body_says_nothing(self) -> None:
        client, _ = make_client(lambda r: answer(503, b"<html>down</html>", "text/html"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        assert (info.value.kind, info.value.message) == (ErrorKind.UNAVAILABLE, "Service Unavailable")
        assert not info.value.may_have_arrived

    def test_server_error_on_save_may_have_arrived(self) -> None:
        def handler(request: requests.PreparedRequest) -> requests.Response:
            if entity_set(request) == "Create":
                return answer(body={"d": TEMPLATE})
            return answer(500, {"error": {"message": {"value": "boom"}}})

        client, _ = make_client(handler)
        with pytest.raises(PersonifyError) as info:
            client.create_activity({"ActivityText": "x"})
        assert info.value.kind is ErrorKind.SERVER and info.value.may_have_arrived

    def test_auth(self) -> None:
        client, _ = make_client(lambda r: answer(401, b"", "text/plain"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        assert (info.value.kind, info.value.message, str(info.value)) == (
            ErrorKind.AUTH,
            "Unauthorized",
            "HTTP 401: Unauthorized",
        )

    def test_not_json(self) -> None:
        client, _ = make_client(lambda r: answer(200, b"<html>login page</html>", "text/html"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        assert info.value.kind is ErrorKind.MALFORMED and info.value.status == 200
        assert "login page" in info.value.excerpt

    def test_json_of_the_wrong_shape(self) -> None:
        client, _ = make_client(lambda r: answer(200, {"value": []}))
        with pytest.raises(PersonifyError, match="unexpected content") as info:
            client.list_activities("1", 0)
        assert info.value.kind is ErrorKind.MALFORMED

    def test_redirect_is_reported_not_followed(self) -> None:
        client, transport = make_client(lambda r: answer(301, b"", "text/html", Location="https://other/x"))
        with pytest.raises(PersonifyError, match="redirects to https://other/x") as info:
            client.list_activities("1", 0)
        assert info.value.kind is ErrorKind.MALFORMED and len(transport.requests) == 1

    def test_no_content_is_malformed(self) -> None:
        client, _ = make_client(lambda r: answer(204, b""))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        assert info.value.kind is ErrorKind.MALFORMED

    def test_credentials_echoed_by_the_server_are_scrubbed(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        echo = f"<error><message>login svc/{PASSWORD} with Basic {TOKEN} refused</message></error>".encode()
        client, _ = make_client(lambda r: answer(403, echo, "application/xml"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        error = info.value
        for text in (str(error), repr(error), error.message, error.excerpt, caplog.text):
            assert PASSWORD not in text and TOKEN not in text
        assert "***" in error.message and error.kind is ErrorKind.AUTH


def raising(exc: BaseException) -> Handler:
    def handler(request: requests.PreparedRequest) -> requests.Response:
        raise exc

    return handler


def _refused() -> requests.ConnectionError:
    cause = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")  # type: ignore[arg-type]
    cause.__context__ = ConnectionRefusedError(111, "Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", cause))  # type: ignore[arg-type]


def _dns() -> requests.ConnectionError:
    cause = urllib3.exceptions.NameResolutionError("pds.example.org", None, OSError("nodename"))  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", cause))  # type: ignore[arg-type]


def _aborted() -> requests.ConnectionError:
    reason = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", reason))


def _read_timeout_while_streaming() -> requests.ConnectionError:
    return requests.ConnectionError(urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out."))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind", "unreachable", "arrived", "words"),
    [
        (requests.ConnectTimeout("x"), ErrorKind.TIMEOUT, True, False, "could not connect"),
        (requests.ReadTimeout("x"), ErrorKind.TIMEOUT, False, True, "did not answer within 30 s"),
        (_read_timeout_while_streaming(), ErrorKind.TIMEOUT, False, True, "did not answer"),
        # A transport that cannot tell when the TLS error came treats the write as possibly arrived.
        (
            requests.exceptions.SSLError("certificate verify failed"),
            ErrorKind.TLS,
            True,
            True,
            "secure connection",
        ),
        (requests.exceptions.ChunkedEncodingError("x"), ErrorKind.DROPPED, False, True, "closed"),
        (_aborted(), ErrorKind.DROPPED, False, True, "closed before"),
        (_refused(), ErrorKind.CONNECTION, True, False, "connection was refused"),
        (_dns(), ErrorKind.CONNECTION, True, False, "could not be found (DNS)"),
        (requests.ConnectionError("odd"), ErrorKind.CONNECTION, True, True, "could not talk"),
    ],
)
def test_network_errors_are_classified(
    exc: BaseException, kind: ErrorKind, unreachable: bool, arrived: bool, words: str
) -> None:
    calls = {"n": 0}

    def handler(request: requests.PreparedRequest) -> requests.Response:
        calls["n"] += 1
        if entity_set(request) == "Create":
            return answer(body={"d": TEMPLATE})
        raise exc

    client, _ = make_client(handler)
    with pytest.raises(PersonifyError) as info:
        client.create_activity({"ActivityText": "x"})
    error = info.value
    assert (error.kind, error.unreachable, error.may_have_arrived, error.status) == (
        kind,
        unreachable,
        arrived,
        None,
    )
    assert words in error.message
    assert "pds.example.org" in error.message


def test_a_failed_read_is_never_may_have_arrived() -> None:
    client, _ = make_client(raising(requests.ReadTimeout("x")))
    with pytest.raises(PersonifyError) as info:
        client.list_activities("1", 0)
    assert not info.value.may_have_arrived


def test_context_manager_closes_the_session() -> None:
    client, _ = make_client(lambda r: answer(body={"d": []}))
    closed: list[bool] = []
    client._session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with client as same:
        assert same is client
    assert closed == [True]


class TestSizeLimits:
    def test_oversized_error_body_falls_back_to_the_reason(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(client_module, "MAX_ERROR_BODY", 1000)
        body = b"<error><message>" + b"x" * 5000 + b"</message></error>"
        client, _ = make_client(lambda r: answer(400, body, "application/xml"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        assert (info.value.kind, info.value.message) == (ErrorKind.VALIDATION, "Bad Request")
        assert info.value.excerpt.startswith("<error><message>xxx") and len(info.value.excerpt) == 500

    def test_oversized_answer_is_malformed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(client_module, "MAX_RESPONSE_BODY", 1000)
        client, _ = make_client(lambda r: answer(200, {"d": [{"A": "x" * 5000}]}))
        with pytest.raises(PersonifyError, match="larger than") as info:
            client.list_activities("1", 0)
        assert info.value.kind is ErrorKind.MALFORMED

    def test_long_messages_are_capped(self) -> None:
        body = b"<error><message>" + b"y" * 50_000 + b"</message></error>"
        client, _ = make_client(lambda r: answer(400, body, "application/xml"))
        with pytest.raises(PersonifyError) as info:
            client.list_activities("1", 0)
        assert len(info.value.message) == client_module.MAX_MESSAGE_LENGTH
