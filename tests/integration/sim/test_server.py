"""The Personify360 simulator over real HTTP on a loopback port: the service, Save's validation, faults."""

from __future__ import annotations

import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.simulator import PASSWORD, SAMPLE_CONSTITUENTS, USER, MakeSimulator
from writeback_console.personify.mapping import DEFAULT_ACTIVITY_CODES, DEFAULT_SUBCODES
from writeback_console.sim.server import Faults
from writeback_console.sim.simulator import Simulator
from writeback_console.sim.wcf import METADATA_NS

NS = {"m": METADATA_NS}
EMAIL_LOOKUP = "CommTypeCodeString eq 'EMAIL' and FormattedPhoneAddress eq '{}'"
HOSTILE_FILTER = "FormattedPhoneAddress eq 'x'' or 1 eq 1 or ''a@b.c'"
SAVE = "/Save?EntityName='CusActivity'"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (USER, PASSWORD)
        session.headers["Accept"] = "application/json"
        yield session


def get(http: requests.Session, sim: Simulator, path: str, **params: str) -> requests.Response:
    return http.get(sim.url + path, params=params or None, timeout=5)


def results(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    d = response.json()["d"]
    return d["results"] if isinstance(d, dict) else d  # type: ignore[no-any-return]


def deepest_message(response: requests.Response) -> str:
    """The innermost message of a WCF error document, in either format."""
    if response.headers["Content-Type"].startswith("application/json"):
        level: dict[str, Any] | None = response.json()["error"]
        assert level is not None
        message: str = level["message"]["value"]
        level = level.get("innererror")
        while level is not None:
            message = level["message"]
            level = level.get("internalexception")
        return message
    root = ET.fromstring(response.content)
    assert root.tag == f"{{{METADATA_NS}}}error"
    message = root.findtext("m:message", namespaces=NS) or ""
    node = root.find("m:innererror", NS)
    while node is not None:
        message = node.findtext("m:message", namespaces=NS) or ""
        node = node.find("m:internalexception", NS)
    return message


def activity(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "MasterCustomerId": "000000000101",
        "SubCustomerId": 0,
        "ActivityCode": "INFORMZ_UNSUB",
        "ActivitySubcode": None,
        "ActivityDate": "/Date(1795000000000)/",
        "ActivityText": "Unsubscribed in Informz [ref WB-TEST000001]",
        "Subsystem": "CUS",
    }
    body.update(changes)
    return body


def save(http: requests.Session, sim: Simulator, body: Any, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return http.post(sim.url + SAVE, json=body, **kwargs)


# -- the service --------------------------------------------------------------------------------------


class TestAuth:
    def test_no_credentials(self, simulator: Simulator) -> None:
        response = requests.get(simulator.url + "/CustomerInfos", headers={"Accept": "application/json"})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")

    @pytest.mark.parametrize("auth", [(USER, "wrong"), ("nobody", PASSWORD), (USER, ""), ("", "")])
    def test_wrong_credentials(self, simulator: Simulator, auth: tuple[str, str]) -> None:
        response = requests.get(simulator.url + "/CustomerInfos", auth=auth)
        assert response.status_code == 401

    @pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", "Basic", "Basic dTpw dTpw"])
    def test_malformed_authorization_header(self, simulator: Simulator, header: str) -> None:
        response = requests.get(simulator.url + "/CustomerInfos", headers={"Authorization": header})
        assert response.status_code == 401

    def test_scheme_is_case_insensitive(self, simulator: Simulator) -> None:
        response = requests.get(
            simulator.url + "/CustomerInfos",
            headers={"Authorization": "basic dTpw", "Accept": "application/json"},
        )
        assert response.status_code == 200

    def test_users_can_change_while_serving(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.users = {"other": "secret"}
        assert get(http, simulator, "/CustomerInfos").status_code == 401
        http.auth = ("other", "secret")
        assert get(http, simulator, "/CustomerInfos").status_code == 200

    def test_metadata_needs_credentials_too(self, simulator: Simulator) -> None:
        assert requests.get(simulator.url + "/$metadata").status_code == 401


class TestServiceDocuments:
    def test_metadata_names_every_entity_set(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(http, simulator, "/$metadata")
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/xml")
        root = ET.fromstring(response.content)
        sets = {
            e.attrib["Name"] for e in root.iter("{http://schemas.microsoft.com/ado/2008/09/edm}EntitySet")
        }
        assert sets == {
            "CusCommunications",
            "CustomerInfos",
            "CusActivities",
            "ApplicationCodes",
            "ApplicationSubcodes",
        }
        functions = {
            e.attrib["Name"]
            for e in root.iter("{http://schemas.microsoft.com/ado/2008/09/edm}FunctionImport")
        }
        assert functions == {"Create", "Save"}

    def test_service_document(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(http, simulator, "/")
        assert "CusCommunications" in response.json()["d"]["EntitySets"]

    def test_json_must_be_asked_for(self, simulator: Simulator) -> None:
        response = requests.get(simulator.url + "/CustomerInfos", auth=(USER, PASSWORD))
        assert response.status_code == 415
        assert "Accept: application/json" in deepest_message(response)
        with_format = requests.get(simulator.url + "/CustomerInfos?$format=json", auth=(USER, PASSWORD))
        assert with_format.status_code == 200

    def test_unknown_paths_are_404(self, simulator: Simulator, http: requests.Session) -> None:
        assert get(http, simulator, "/Nope").status_code == 404
        assert "Nope" in deepest_message(get(http, simulator, "/Nope"))
        assert http.get(simulator.url.replace("PersonifyData.svc", "Other.svc")).status_code == 404
        assert get(http, simulator, "/CustomerInfos/CusActivities").status_code == 404

    def test_writes_to_entity_sets_are_refused(self, simulator: Simulator, http: requests.Session) -> None:
        assert http.post(simulator.url + "/CusActivities", json={}).status_code == 405
        assert http.delete(simulator.url + "/CusActivities(1)").status_code == 405
        assert http.get(simulator.url + SAVE).status_code == 405

    def test_request_count(self, simulator: Simulator, http: requests.Session) -> None:
        before = simulator.request_count
        for _ in range(3):
            get(http, simulator, "/CustomerInfos")
        requests.get(simulator.url)  # a 401 counts too
        assert simulator.request_count == before + 4


class TestPrimitiveForms:
    """Values in OData v2's JSON form ("Representing Primitive Types"), as WCF writes them, or with
    ``int64_as_numbers`` Int64 as the JSON numbers some sites send."""

    @pytest.fixture
    def saved(self, simulator: Simulator, http: requests.Session) -> dict[str, Any]:
        response = save(http, simulator, activity(ActivitySubcode=None))
        assert response.status_code == 200, response.text
        return response.json()["d"]  # type: ignore[no-any-return]

    def test_int64_is_a_string_of_digits(
        self, simulator: Simulator, http: requests.Session, saved: dict[str, Any]
    ) -> None:
        emails = results(get(http, simulator, "/CusCommunications"))
        assert [r["CusCommunicationId"] for r in emails] == ["1", "2", "3", "4"]
        (listed,) = results(get(http, simulator, "/CusActivities"))
        (row,) = simulator.activities()
        assert listed["ActivityId"] == saved["ActivityId"] == str(row["ACTIVITY_ID"])
        keyed = get(http, simulator, f"/CusActivities({saved['ActivityId']}L)").json()["d"]
        assert keyed["ActivityId"] == saved["ActivityId"]

    def test_other_primitives(
        self, simulator: Simulator, http: requests.Session, saved: dict[str, Any]
    ) -> None:
        assert saved["SubCustomerId"] == 0 and saved["ActivitySubcode"] is None
        assert saved["ActivityDate"] == "/Date(1795000000000)/"
        assert saved["AddDate"].startswith("/Date(") and saved["AddDate"].endswith(")/")
        emails = results(get(http, simulator, "/CusCommunications"))
        assert {type(r["PrimaryFlag"]) for r in emails} == {bool}
        assert [r["PrimaryFlag"] for r in emails] == [True, True, False, True]
        codes = results(get(http, simulator, "/ApplicationCodes"))
        assert {type(r["ActiveFlag"]) for r in codes} == {bool}

    def test_the_template_writes_its_defaults_in_the_same_form(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        template = get(http, simulator, "/Create", EntityName="'CusActivity'").json()["d"]
        assert template["ActivityId"] == "0" and template["SubCustomerId"] == 0
        assert template["__metadata"]["uri"] == simulator.url + "/CusActivities(0L)"

    def test_an_int64_key_in_a_uri_carries_its_l(self, simulator: Simulator, http: requests.Session) -> None:
        (first, *_) = results(get(http, simulator, "/CusCommunications"))
        assert first["__metadata"]["uri"] == simulator.url + "/CusCommunications(1L)"
        # A composite key of a string and an Int32 has no suffix.
        (ann, *_) = results(get(http, simulator, "/CustomerInfos"))
        assert ann["__metadata"]["uri"].endswith(
            "/CustomerInfos(MasterCustomerId='000000000101',SubCustomerId=0)"
        )

    def test_int64_as_numbers_writes_json_numbers(
        self, simulator: Simulator, http: requests.Session, saved: dict[str, Any]
    ) -> None:
        simulator.int64_as_numbers = True
        emails = results(get(http, simulator, "/CusCommunications"))
        assert [r["CusCommunicationId"] for r in emails] == [1, 2, 3, 4]
        (listed,) = results(get(http, simulator, "/CusActivities"))
        assert listed["ActivityId"] == int(saved["ActivityId"])
        template = get(http, simulator, "/Create", EntityName="'CusActivity'").json()["d"]
        assert template["ActivityId"] == 0
        again = save(http, simulator, activity()).json()["d"]
        assert isinstance(again["ActivityId"], int) and again["ActivityId"] == listed["ActivityId"] + 1
        # The rest is the same in either form.
        assert emails[0]["PrimaryFlag"] is True and again["ActivityDate"] == "/Date(1795000000000)/"


class TestEntitySets:
    def test_email_lookup_finds_every_match(self, simulator: Simulator, http: requests.Session) -> None:
        found = results(
            get(
                http,
                simulator,
                "/CusCommunications",
                **{"$filter": EMAIL_LOOKUP.format("shared@example.org")},
            )
        )
        assert [(r["MasterCustomerId"], r["SubCustomerId"], r["PrimaryFlag"]) for r in found] == [
            ("000000000102", 0, True),
            ("000000000103", 1, False),
        ]
        assert all(r["__metadata"]["type"].endswith(".CusCommunication") for r in found)

    def test_email_lookup_is_case_insensitive_and_quotes_work(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        assert (
            len(
                results(
                    get(
                        http,
                        simulator,
                        "/CusCommunications",
                        **{"$filter": EMAIL_LOOKUP.format("ANN@Example.ORG")},
                    )
                )
            )
            == 1
        )
        quoted = EMAIL_LOOKUP.format("o''brien@example.org")
        (row,) = results(get(http, simulator, "/CusCommunications", **{"$filter": quoted}))
        assert row["MasterCustomerId"] == "000000000104"

    def test_plus_in_an_email_survives_url_encoding(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        simulator.add_constituents([{"master_customer_id": "000000000300", "email": "a+tag@example.org"}])
        (row,) = results(
            get(
                http, simulator, "/CusCommunications", **{"$filter": EMAIL_LOOKUP.format("a+tag@example.org")}
            )
        )
        assert row["MasterCustomerId"] == "000000000300"

    def test_customer_infos(self, simulator: Simulator, http: requests.Session) -> None:
        rows = results(get(http, simulator, "/CustomerInfos", **{"$filter": "LastName eq 'O''Brien'"}))
        assert [(r["MasterCustomerId"], r["FirstName"], r["LabelName"], r["RecordType"]) for r in rows] == [
            ("000000000104", "Pat", "Pat O'Brien", "I")
        ]

    def test_application_codes_come_from_the_project_script(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        rows = results(
            get(
                http,
                simulator,
                "/ApplicationCodes",
                **{"$filter": "SubsystemString eq 'CUS' and Type eq 'ACTIVITY'"},
            )
        )
        assert {r["Code"] for r in rows} == set(DEFAULT_ACTIVITY_CODES.values())
        assert all(r["ActiveFlag"] is True and r["Option1"] != "Y" and r["Description"] for r in rows)
        subrows = results(get(http, simulator, "/ApplicationSubcodes"))
        assert {(r["Code"], r["Subcode"]) for r in subrows} == {
            (code, sub) for code, subs in DEFAULT_SUBCODES.items() for sub in subs
        }

    def test_activities_are_listed_after_save(self, simulator: Simulator, http: requests.Session) -> None:
        assert save(http, simulator, activity()).status_code == 200
        rows = results(
            get(
                http,
                simulator,
                "/CusActivities",
                **{"$filter": "MasterCustomerId eq '000000000101' and SubCustomerId eq 0"},
            )
        )
        (row,) = rows
        assert row["ActivityDate"] == "/Date(1795000000000)/"
        assert (row["Subsystem"], row["ActivityCode"], row["ActivitySubcode"]) == (
            "CUS",
            "INFORMZ_UNSUB",
            None,
        )
        by_ref = results(
            get(
                http,
                simulator,
                "/CusActivities",
                **{"$filter": "substringof('[ref WB-TEST000001]', ActivityText)"},
            )
        )
        assert by_ref == rows
        newer = results(
            get(
                http,
                simulator,
                "/CusActivities",
                **{"$filter": "ActivityDate ge datetime'2026-11-18T00:00:00'"},
            )
        )
        assert newer == rows

    @pytest.mark.parametrize("json_shape", ["d", "results"])
    def test_both_json_shapes(
        self, make_simulator: MakeSimulator, http: requests.Session, json_shape: str
    ) -> None:
        sim = make_simulator(json_shape=json_shape)
        d = get(http, sim, "/CustomerInfos").json()["d"]
        rows = d["results"] if json_shape == "results" else d
        assert isinstance(rows, list) and len(rows) == len(SAMPLE_CONSTITUENTS)
        assert list(d) == ["results"] if json_shape == "results" else True

    def test_json_shape_changes_while_serving(self, simulator: Simulator, http: requests.Session) -> None:
        assert isinstance(get(http, simulator, "/CustomerInfos").json()["d"], list)
        simulator.json_shape = "results"
        assert isinstance(get(http, simulator, "/CustomerInfos").json()["d"]["results"], list)
        with pytest.raises(ValueError):
            simulator.json_shape = "atom"  # type: ignore[assignment]


class TestKeysAndSelect:
    def test_composite_key(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(http, simulator, "/CustomerInfos(MasterCustomerId='000000000103',SubCustomerId=1)")
        entity = response.json()["d"]
        assert (entity["MasterCustomerId"], entity["SubCustomerId"], entity["FirstName"]) == (
            "000000000103",
            1,
            "Cy",
        )
        assert entity["__metadata"]["uri"].endswith(
            "/CustomerInfos(MasterCustomerId='000000000103',SubCustomerId=1)"
        )

    def test_percent_encoded_key(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(http, simulator, "/CustomerInfos(MasterCustomerId=%27000000000101%27,SubCustomerId=0)")
        assert response.json()["d"]["FirstName"] == "Ann"

    def test_single_key(self, simulator: Simulator, http: requests.Session) -> None:
        activity_id = save(http, simulator, activity()).json()["d"]["ActivityId"]
        entity = get(http, simulator, f"/CusActivities({activity_id})").json()["d"]
        assert entity["ActivityId"] == activity_id
        assert get(http, simulator, f"/CusActivities(ActivityId={activity_id})").status_code == 200

    def test_missing_entity_is_404(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(http, simulator, "/CustomerInfos(MasterCustomerId='999',SubCustomerId=0)")
        assert response.status_code == 404
        assert "CustomerInfos" in deepest_message(response)

    @pytest.mark.parametrize(
        "key",
        [
            "(MasterCustomerId='000000000101')",
            "(MasterCustomerId=000000000101,SubCustomerId=0)",
            "(MasterCustomerId='000000000101',SubCustomerId='0')",
            "(MasterCustomerId='000000000101',SubCustomerId=0,Extra=1)",
            "(MasterCustomerId='000000000101',MasterCustomerId='1')",
            "('000000000101')",
            "(MasterCustomerId='000000000101',SubCustomerId=0",
            "(MasterCustomerId='0001'',SubCustomerId=0)",
            "(MasterCustomerId=='1',SubCustomerId=0)",
            "()",
        ],
    )
    def test_malformed_keys_are_400(self, simulator: Simulator, http: requests.Session, key: str) -> None:
        response = get(http, simulator, "/CustomerInfos" + key)
        assert response.status_code in (400, 404), response.text
        assert deepest_message(response)

    def test_select(self, simulator: Simulator, http: requests.Session) -> None:
        rows = results(
            get(
                http,
                simulator,
                "/CusCommunications",
                **{
                    "$filter": EMAIL_LOOKUP.format("ann@example.org"),
                    "$select": "MasterCustomerId, SubCustomerId,PrimaryFlag",
                },
            )
        )
        assert [set(r) for r in rows] == [{"__metadata", "MasterCustomerId", "SubCustomerId", "PrimaryFlag"}]
        # The key is not selected, yet the URI still names the entity.
        assert rows[0]["__metadata"]["uri"].endswith("/CusCommunications(1L)")
        every = results(get(http, simulator, "/CustomerInfos", **{"$select": "*"}))
        assert "LabelName" in every[0]

    def test_select_on_a_single_entity(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(
            http,
            simulator,
            "/CustomerInfos(MasterCustomerId='000000000101',SubCustomerId=0)",
            **{"$select": "LastName"},
        )
        assert set(response.json()["d"]) == {"__metadata", "LastName"}

    @pytest.mark.parametrize(
        "params",
        [
            {"$select": "Nope"},
            {"$select": ""},
            {"$top": "1"},
            {"$skip": "1"},
            {"$orderby": "LastName"},
            {"$expand": "Activities"},
            {"$count": "true"},
            {"$format": "atom"},
        ],
    )
    def test_unsupported_options_are_400(
        self, simulator: Simulator, http: requests.Session, params: dict[str, str]
    ) -> None:
        response = get(http, simulator, "/CustomerInfos", **params)
        assert response.status_code == 400
        assert deepest_message(response)

    def test_option_given_twice_is_400(self, simulator: Simulator, http: requests.Session) -> None:
        response = http.get(simulator.url + "/CustomerInfos?$filter=true&$filter=false")
        assert response.status_code == 400


class TestServerPaging:
    """``page_size`` pages collections as WCF's SetEntitySetPageSize does; off, nothing changes."""

    def test_a_paged_answer_carries_a_next_link_until_the_last_page(
        self, make_simulator: MakeSimulator, http: requests.Session
    ) -> None:
        sim = make_simulator(page_size=3)
        url: str | None = sim.url + "/CusCommunications?$filter=CommTypeCodeString%20eq%20'EMAIL'"
        pages: list[list[str]] = []
        while url is not None:
            response = http.get(url, timeout=5)
            pages.append([row["MasterCustomerId"] for row in results(response)])
            d = response.json()["d"]
            url = d.get("__next") if isinstance(d, dict) else None
            if url is not None:
                assert url.startswith(sim.url + "/CusCommunications?")
                assert "%24filter=" in url or "$filter=" in url
        assert pages == [["000000000101", "000000000102", "000000000103"], ["000000000104"]]

    def test_composite_keys_page_in_key_order(
        self, make_simulator: MakeSimulator, http: requests.Session
    ) -> None:
        sim = make_simulator(page_size=2, json_shape="d")
        first = http.get(sim.url + "/CustomerInfos", timeout=5).json()["d"]
        assert [r["MasterCustomerId"] for r in first["results"]] == ["000000000101", "000000000102"]
        assert first["__next"].endswith("$skiptoken=%27000000000102%27%2C0")
        rest = http.get(first["__next"], timeout=5).json()["d"]
        # The last page has no link, and in the shape asked for.
        assert [r["MasterCustomerId"] for r in rest] == ["000000000103", "000000000104"]

    def test_a_select_is_kept_on_every_page(
        self, make_simulator: MakeSimulator, http: requests.Session
    ) -> None:
        sim = make_simulator(page_size=1)
        first = get(http, sim, "/CustomerInfos", **{"$select": "LastName"}).json()["d"]
        second = http.get(first["__next"], timeout=5).json()["d"]
        assert [set(r) for r in second["results"]] == [{"__metadata", "LastName"}]

    def test_an_int64_key_pages_with_its_l(
        self, make_simulator: MakeSimulator, http: requests.Session
    ) -> None:
        sim = make_simulator(page_size=3)
        first = get(http, sim, "/CusCommunications").json()["d"]
        assert first["__next"].endswith("$skiptoken=3L")
        rest = results(http.get(first["__next"], timeout=5))
        assert [r["CusCommunicationId"] for r in rest] == ["4"]

    @pytest.mark.parametrize("token", ["0", "'000000000101'", "'a',0,1", "0,'a'", "'a'0", "x"])
    def test_a_skiptoken_that_is_not_a_key_is_400(
        self, make_simulator: MakeSimulator, http: requests.Session, token: str
    ) -> None:
        sim = make_simulator(page_size=2)
        response = get(http, sim, "/CustomerInfos", **{"$skiptoken": token})
        assert response.status_code == 400
        assert "skip token" in deepest_message(response)

    def test_without_paging_a_skiptoken_is_refused_and_nothing_is_cut(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        assert get(http, simulator, "/CustomerInfos", **{"$skiptoken": "'000000000101',0"}).status_code == 400
        d = get(http, simulator, "/CustomerInfos").json()["d"]
        assert isinstance(d, list) and len(d) == len(SAMPLE_CONSTITUENTS)

    def test_a_single_entity_is_not_paged(
        self, make_simulator: MakeSimulator, http: requests.Session
    ) -> None:
        sim = make_simulator(page_size=1)
        d = get(http, sim, "/CustomerInfos(MasterCustomerId='000000000101',SubCustomerId=0)").json()["d"]
        assert d["LastName"] == "Lee" and "__next" not in d

    def test_page_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="page_size"):
            Simulator(page_size=0)


class TestFilters:
    def test_hostile_value_matches_nothing(self, simulator: Simulator, http: requests.Session) -> None:
        assert results(get(http, simulator, "/CusCommunications", **{"$filter": HOSTILE_FILTER})) == []
        everything = "FormattedPhoneAddress eq 'x' or 1 eq 1"
        assert len(results(get(http, simulator, "/CusCommunications", **{"$filter": everything}))) == 4

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "FormattedPhoneAddress eq",
            "FormattedPhoneAddress eq 'x",
            "Nope eq 'x'",
            "FormattedPhoneAddress eq 1",
            "substringof('x')",
            "frob(FormattedPhoneAddress)",
            "SubCustomerId add 1 eq 2",
            "((((",
            "))",
            "'",
            "FormattedPhoneAddress eq 'x'; DROP TABLE CUSTOMER",
            "(" * 200 + "true" + ")" * 200,
            " or ".join(["true"] * 2000),
            "FormattedPhoneAddress",
            "SubCustomerId eq 1.0",
            "\x00",
            "PrimaryFlag gt true",
        ],
    )
    def test_malformed_filters_are_400(self, simulator: Simulator, http: requests.Session, text: str) -> None:
        response = get(http, simulator, "/CusCommunications", **{"$filter": text})
        assert response.status_code == 400, response.text
        assert deepest_message(response)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=50))
    @example(text="-\u00b2")  # a minus before a superscript two, which str.isdigit calls a digit
    def test_no_filter_text_causes_a_500(
        self, simulator: Simulator, http: requests.Session, text: str
    ) -> None:
        response = get(http, simulator, "/CusCommunications", **{"$filter": text})
        assert response.status_code in (200, 400), response.text


# -- Create and Save ----------------------------------------------------------------------------------


class TestCreateAndSave:
    def test_create_returns_a_template(self, simulator: Simulator, http: requests.Session) -> None:
        template = get(http, simulator, "/Create", EntityName="'CusActivity'").json()["d"]
        assert template["__metadata"]["type"].endswith(".CusActivity")
        assert template["Subsystem"] == "CUS"
        assert template["ActivityDate"] is None and template["ActivitySubcode"] is None
        # Declared not nullable in $metadata, so never null: empty until filled.
        assert template["ActivityCode"] == "" and template["MasterCustomerId"] == ""
        assert {"MasterCustomerId", "SubCustomerId", "ActivitySubcode", "ActivityText"} <= set(template)

    def test_filled_template_saves(self, simulator: Simulator, http: requests.Session) -> None:
        template = get(http, simulator, "/Create", EntityName="'CusActivity'").json()["d"]
        template.update(activity(ActivityCode="INFORMZ_MAILING", ActivitySubcode="CLICK"))
        response = save(http, simulator, template, headers={"AddModOper": "WB_CONSOLE"})
        assert response.status_code == 200, response.text
        saved = response.json()["d"]
        assert isinstance(saved["ActivityId"], str) and int(saved["ActivityId"]) > 0
        assert (saved["ActivityCode"], saved["ActivitySubcode"]) == ("INFORMZ_MAILING", "CLICK")
        assert saved["ActivityDate"] == "/Date(1795000000000)/"
        assert saved["AddOper"] == "WB_CONSOLE"
        (row,) = simulator.activities("000000000101")
        assert str(row["ACTIVITY_ID"]) == saved["ActivityId"]
        assert (row["ADDOPER"], row["MODOPER"]) == ("WB_CONSOLE", "WB_CONSOLE")
        assert row["ACTIVITY_DATE"] == "2026-11-18T11:06:40.000"
        assert row["ACTIVITY_TEXT"] == "Unsubscribed in Informz [ref WB-TEST000001]"
        assert simulator.activities("000000000102") == []

    def test_operator_defaults_to_the_user(self, simulator: Simulator, http: requests.Session) -> None:
        save(http, simulator, activity())
        assert simulator.activities()[0]["ADDOPER"] == USER

    def test_date_with_offset_and_without_date(self, simulator: Simulator, http: requests.Session) -> None:
        assert save(http, simulator, activity(ActivityDate="/Date(1795000000000+0100)/")).status_code == 200
        assert save(http, simulator, activity(ActivityDate=None)).status_code == 200
        first, second = simulator.activities()
        assert first["ACTIVITY_DATE"] == "2026-11-18T11:06:40.000"
        assert str(second["ACTIVITY_DATE"]).startswith("20")

    def test_code_case_follows_the_code_table(self, simulator: Simulator, http: requests.Session) -> None:
        saved = save(http, simulator, activity(ActivityCode="informz_ipm", ActivitySubcode="optin")).json()[
            "d"
        ]
        assert (saved["ActivityCode"], saved["ActivitySubcode"]) == ("INFORMZ_IPM", "OPTIN")

    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            (
                {"ActivityCode": "NO_SUCH_CODE"},
                "Activity Code 'NO_SUCH_CODE' is not a valid CUS ACTIVITY code.",
            ),
            ({"ActivityCode": ""}, "Activity Code is required."),
            ({"ActivityCode": None}, "Activity Code is required."),
            (
                {"ActivitySubcode": "OPEN"},
                "Activity Subcode 'OPEN' is not valid for Activity Code 'INFORMZ_UNSUB'.",
            ),
            (
                {"ActivityCode": "INFORMZ_IPM", "ActivitySubcode": "CLICK"},
                "'CLICK' is not valid for Activity Code 'INFORMZ_IPM'",
            ),
            ({"MasterCustomerId": None}, "Master Customer Id is required."),
            ({"MasterCustomerId": "  "}, "Master Customer Id is required."),
            ({"MasterCustomerId": "000000009999"}, "Customer 000000009999-0 does not exist."),
            ({"SubCustomerId": 7}, "Customer 000000000101-7 does not exist."),
            ({"Subsystem": "ORD"}, "Subsystem 'ORD' is not valid"),
        ],
    )
    @pytest.mark.parametrize("error_format", ["xml", "json"])
    def test_validation_issues(
        self,
        make_simulator: MakeSimulator,
        http: requests.Session,
        changes: dict[str, Any],
        reason: str,
        error_format: str,
    ) -> None:
        sim = make_simulator(error_format=error_format)
        body = activity(**changes)
        response = save(http, sim, body)
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith(f"application/{error_format}")
        assert reason in deepest_message(response)
        assert sim.activities() == []

    def test_missing_master_customer_id_property(self, simulator: Simulator, http: requests.Session) -> None:
        body = activity()
        del body["MasterCustomerId"]
        assert "Master Customer Id is required." in deepest_message(save(http, simulator, body))

    def test_inactive_code_and_subcode(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.set_activity_code_active("INFORMZ_UNSUB", False)
        response = save(http, simulator, activity())
        assert response.status_code == 400 and "'INFORMZ_UNSUB' is inactive" in deepest_message(response)
        simulator.set_activity_code_active("INFORMZ_MAILING", False, subcode="OPEN")
        response = save(http, simulator, activity(ActivityCode="INFORMZ_MAILING", ActivitySubcode="OPEN"))
        assert response.status_code == 400 and "Subcode 'OPEN'" in deepest_message(response)
        ok = save(http, simulator, activity(ActivityCode="INFORMZ_MAILING", ActivitySubcode="SENT"))
        assert ok.status_code == 200

    def test_several_issues_are_reported_together(self, simulator: Simulator, http: requests.Session) -> None:
        message = deepest_message(save(http, simulator, activity(MasterCustomerId="X", ActivityCode="Y")))
        assert "Customer X-0 does not exist." in message and "Activity Code 'Y'" in message

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            (activity(Unknown=1), 400),
            (activity(ActivityDate="2026-11-18T05:46:40"), 400),
            (activity(ActivityDate=1795000000000), 400),
            (activity(SubCustomerId="0"), 400),
            (activity(SubCustomerId=True), 400),
            (activity(MasterCustomerId=101), 400),
            ({"d": activity()}, 400),
            ([activity()], 400),
            ("text", 400),
        ],
    )
    def test_malformed_bodies(
        self, simulator: Simulator, http: requests.Session, body: Any, status: int
    ) -> None:
        response = save(http, simulator, body)
        assert response.status_code == status
        assert deepest_message(response)
        assert simulator.activities() == []

    def test_body_that_is_not_json(self, simulator: Simulator, http: requests.Session) -> None:
        response = http.post(
            simulator.url + SAVE, data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        response = http.post(
            simulator.url + SAVE, data=json.dumps(activity()), headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 415

    def test_body_too_large(self, simulator: Simulator, http: requests.Session) -> None:
        response = save(http, simulator, activity(ActivityText="x" * (2 << 20)))
        assert response.status_code == 413

    @pytest.mark.parametrize("entity_name", [None, "CusActivity", "'Customer'", "'CusActivity"])
    def test_entity_name_is_checked(
        self, simulator: Simulator, http: requests.Session, entity_name: str | None
    ) -> None:
        params = {} if entity_name is None else {"EntityName": entity_name}
        assert http.get(simulator.url + "/Create", params=params).status_code == 400
        assert http.post(simulator.url + "/Save", params=params, json=activity()).status_code == 400

    def test_parallel_saves_all_arrive_once(self, simulator: Simulator) -> None:
        def work(worker: int) -> None:
            with requests.Session() as session:
                session.auth = (USER, PASSWORD)
                session.headers["Accept"] = "application/json"
                for i in range(15):
                    body = activity(ActivityText=f"[ref WB-{worker}-{i}]")
                    assert session.post(simulator.url + SAVE, json=body, timeout=10).status_code == 200

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rows = simulator.activities()
        assert len(rows) == 120
        assert len({r["ACTIVITY_TEXT"] for r in rows}) == 120
        assert len({r["ACTIVITY_ID"] for r in rows}) == 120


# -- error formats and faults -------------------------------------------------------------------------


class TestErrorFormats:
    def test_xml_error_document(self, simulator: Simulator, http: requests.Session) -> None:
        response = get(http, simulator, "/CusCommunications", **{"$filter": "Nope eq 1"})
        assert response.headers["Content-Type"].startswith("application/xml")
        root = ET.fromstring(response.content)
        assert root.findtext("m:code", namespaces=NS) == ""
        assert "No property 'Nope'" in (root.findtext("m:message", namespaces=NS) or "")

    def test_json_error_document_and_switching(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.error_format = "json"
        response = get(http, simulator, "/CusCommunications", **{"$filter": "Nope eq 1"})
        error = response.json()["error"]
        assert error["code"] == "" and error["message"]["lang"] == "en-US"
        assert "No property 'Nope'" in error["message"]["value"]
        simulator.error_format = "xml"
        assert get(http, simulator, "/Nope").headers["Content-Type"].startswith("application/xml")


class TestFaults:
    def test_unauthorized(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.faults.unauthorized = True
        assert get(http, simulator, "/CustomerInfos").status_code == 401
        simulator.faults.unauthorized = False
        assert get(http, simulator, "/CustomerInfos").status_code == 200

    def test_latency(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.faults.latency_ms = 200
        started = time.monotonic()
        assert get(http, simulator, "/CustomerInfos").status_code == 200
        assert time.monotonic() - started >= 0.2

    @pytest.mark.parametrize("error_format", ["xml", "json"])
    def test_server_error(
        self, make_simulator: MakeSimulator, http: requests.Session, error_format: str
    ) -> None:
        sim = make_simulator(error_format=error_format, faults=Faults(fail_rate=1.0, fail_kinds=["500"]))
        response = get(http, sim, "/CustomerInfos")
        assert response.status_code == 500
        assert "deadlock" in deepest_message(response)
        response = save(http, sim, activity())
        assert response.status_code == 500
        assert sim.activities() == []

    def test_validation_fault_strikes_only_save(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["validation"])
        assert get(http, simulator, "/CustomerInfos").status_code == 200
        response = save(http, simulator, activity())
        assert response.status_code == 400 and "Simulated validation issue" in deepest_message(response)
        assert simulator.activities() == []

    def test_malformed_json(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["malformed"])
        response = get(http, simulator, "/CustomerInfos")
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        # On Save the answer is broken but the activity was stored: the caller cannot tell.
        response = save(http, simulator, activity())
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        assert len(simulator.activities()) == 1

    @pytest.mark.parametrize(("share", "stored"), [(0.0, 0), (1.0, 1)])
    def test_dropped_connection(
        self, simulator: Simulator, http: requests.Session, share: float, stored: int
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["drop"], after_write_share=share)
        with pytest.raises(requests.ConnectionError):
            get(http, simulator, "/CustomerInfos")
        with pytest.raises(requests.ConnectionError):
            save(http, simulator, activity())
        assert len(simulator.activities()) == stored

    @pytest.mark.parametrize(("share", "stored"), [(0.0, 0), (1.0, 1)])
    def test_timeout(self, simulator: Simulator, http: requests.Session, share: float, stored: int) -> None:
        simulator.faults.update(
            fail_rate=1.0, fail_kinds=["timeout"], hold_seconds=5, after_write_share=share
        )
        with pytest.raises(requests.ReadTimeout):
            http.get(simulator.url + "/CustomerInfos", timeout=0.2)
        with pytest.raises(requests.ReadTimeout):
            save(http, simulator, activity(), timeout=0.2)
        assert len(simulator.activities()) == stored

    def test_timeout_ends_in_a_closed_connection(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["timeout"], hold_seconds=0.2)
        with pytest.raises(requests.ConnectionError):
            get(http, simulator, "/CustomerInfos")

    def test_mixed_faults_leave_the_service_usable(self, simulator: Simulator) -> None:
        simulator.faults.update(fail_rate=0.5, hold_seconds=0.05)
        statuses: list[int | str] = []
        for _ in range(60):
            with requests.Session() as session:
                session.auth = (USER, PASSWORD)
                session.headers["Accept"] = "application/json"
                try:
                    statuses.append(
                        session.post(simulator.url + SAVE, json=activity(), timeout=2).status_code
                    )
                except requests.RequestException as error:
                    statuses.append(type(error).__name__)
        assert 200 in statuses and len(set(statuses)) >= 3
        simulator.faults.fail_rate = 0.0
        with requests.Session() as session:
            session.auth = (USER, PASSWORD)
            assert session.get(simulator.url + "/CustomerInfos?$format=json").status_code == 200

    def test_failing_emails(self, simulator: Simulator, http: requests.Session) -> None:
        simulator.faults.fail_emails = ["Shared@Example.org"]
        response = get(
            http, simulator, "/CusCommunications", **{"$filter": EMAIL_LOOKUP.format("shared@example.org")}
        )
        assert response.status_code == 500
        ok = get(http, simulator, "/CusCommunications", **{"$filter": EMAIL_LOOKUP.format("ann@example.org")})
        assert ok.status_code == 200
        response = save(http, simulator, activity(MasterCustomerId="000000000102"))
        assert response.status_code == 400
        assert "shared@example.org is rejected" in deepest_message(response)
        assert save(http, simulator, activity()).status_code == 200


# -- life cycle ---------------------------------------------------------------------------------------


class TestLifeCycle:
    def test_stop_is_quick_with_open_and_held_connections(self) -> None:
        sim = Simulator(constituents=SAMPLE_CONSTITUENTS).start()
        idle = socket.create_connection(("127.0.0.1", sim.port))
        sim.faults.update(fail_rate=1.0, fail_kinds=["timeout"], hold_seconds=60)
        outcome: list[str] = []

        def wait_for_answer() -> None:
            try:
                requests.get(sim.url, auth=(USER, PASSWORD), timeout=30)
                outcome.append("answered")
            except requests.RequestException as error:
                outcome.append(type(error).__name__)

        held = threading.Thread(target=wait_for_answer)
        held.start()
        time.sleep(0.2)
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 2
        held.join(5)
        assert outcome == ["ConnectionError"]
        idle.close()
        sim.stop()  # stopping twice is harmless

    def test_temporary_database_is_removed(self) -> None:
        with Simulator() as sim:
            path = sim.db.path
            assert path.exists()
        assert not path.exists()

    def test_database_file_is_kept_and_reused(self, tmp_path: Path, http: requests.Session) -> None:
        db = tmp_path / "sim.sqlite3"
        with Simulator(db_path=db, constituents=SAMPLE_CONSTITUENTS) as sim:
            assert save(http, sim, activity()).status_code == 200
        with Simulator(db_path=db, constituents=SAMPLE_CONSTITUENTS) as sim:
            assert len(sim.activities()) == 1
            assert len(results(get(http, sim, "/ApplicationCodes"))) == len(DEFAULT_ACTIVITY_CODES)
            assert len(results(get(http, sim, "/CustomerInfos"))) == len(SAMPLE_CONSTITUENTS)

    def test_add_constituents_while_serving(self, simulator: Simulator, http: requests.Session) -> None:
        added = simulator.add_constituents(
            [{"master_customer_id": "000000000200", "email": "new@example.org"}]
        )
        assert added == 1
        found = results(
            get(http, simulator, "/CusCommunications", **{"$filter": EMAIL_LOOKUP.format("new@example.org")})
        )
        assert [(r["MasterCustomerId"], r["SubCustomerId"]) for r in found] == [("000000000200", 0)]

    @pytest.mark.parametrize(
        ("record", "message"),
        [
            ({"email": "a@b.c"}, "master_customer_id"),
            ({"master_customer_id": "1", "email": "nope"}, "email"),
            ({"master_customer_id": "1", "email": "a@b.c", "sub_customer_id": "0"}, "sub_customer_id"),
            ({"master_customer_id": "1", "email": "a@b.c", "primary": "yes"}, "primary"),
            ({"master_customer_id": "1", "email": "a@b.c", "nickname": "x"}, "nickname"),
        ],
    )
    def test_bad_constituents_are_refused(
        self, simulator: Simulator, record: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            simulator.add_constituents([SAMPLE_CONSTITUENTS[0], record])

    def test_settings_are_validated(self) -> None:
        with pytest.raises(ValueError):
            Simulator(error_format="html")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Simulator(users={"a:b": "c"})
        with pytest.raises(ValueError, match="constituent 2: email"):
            Simulator(constituents=[SAMPLE_CONSTITUENTS[0], {"master_customer_id": "1"}])
