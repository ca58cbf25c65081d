"""An OData v2 client nobody here wrote (pyodata) reads the simulator over real HTTP.

Our own client is the simulator's only other reader, so a mistake the two share would pass every other
test. pyodata parses the simulator's answers here as they come, with nothing of it patched; where it and
the simulator disagreed, the OData v2 specification decided (docs/architecture.md, "Personify360, as the
client and the simulator speak it").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyodata
import pytest
import requests
from pyodata.v2.model import Config
from pyodata.v2.service import FunctionRequest

from tests.helpers.simulator import PASSWORD, USER, MakeSimulator
from writeback_console.sim.simulator import Simulator

WHEN = datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = (USER, PASSWORD)
        yield http


def connect(sim: Simulator, session: requests.Session) -> Any:
    """pyodata's service for the simulator: it reads ``$metadata`` first, as it always does. Nulls stay
    None rather than become each type's default, so a value the simulator left out cannot pass as one."""
    return pyodata.Client(sim.url, session, config=Config(retain_null=True))


@pytest.fixture
def service(simulator: Simulator, session: requests.Session) -> Any:
    return connect(simulator, session)


def save(service: Any, record: dict[str, Any]) -> Any:
    """Call the ``Save`` function import through pyodata and let it parse the answer.

    Personify's Save takes the record as its POST body, which OData v2 function imports have no room for
    (their parameters are in the URL), so no OData client has a way to say it. The request is pyodata's
    own ``FunctionRequest`` for the import the metadata declares, with its answer handler, given the
    body through the hook the class has for it.
    """
    declared = service.functions.Save.parameter("EntityName", "CusActivity")
    body = json.dumps(record).encode()

    class WithBody(FunctionRequest):  # type: ignore[misc]
        def get_body(self) -> bytes:
            return body

    request = WithBody(
        service.url, service.connection, declared.handler, service.schema.function_import("Save")
    )
    request.parameter("EntityName", "CusActivity")
    request.add_headers({"Content-Type": "application/json", "AddModOper": "WB_CONSOLE"})
    return request.execute()


def activity_record(service: Any, template: Any, text: str, **changes: Any) -> dict[str, Any]:
    """The template pyodata read, filled and written back in OData v2's JSON form, property by property."""
    properties = service.schema.entity_type("CusActivity").proprties()
    values = {p.name: getattr(template, p.name) for p in properties}
    values.update(
        MasterCustomerId="000000000101",
        ActivityCode="INFORMZ_UNSUB",
        ActivityDate=WHEN,
        ActivityText=text,
        **changes,
    )
    record: dict[str, Any] = {}
    for prop in properties:
        value = values[prop.name]
        if value is None:
            record[prop.name] = None
        elif prop.typ.name == "Edm.Int64":
            # pyodata writes an Int64 as a JSON number; the specification's form is a string.
            record[prop.name] = str(value)
        else:
            record[prop.name] = prop.to_json(value)
    return record


class TestMetadata:
    def test_every_entity_set_of_the_service_document_is_in_the_metadata(
        self, simulator: Simulator, session: requests.Session, service: Any
    ) -> None:
        document = session.get(simulator.url + "/", headers={"Accept": "application/json"}, timeout=5)
        assert document.status_code == 200 and document.headers["Content-Type"].startswith("application/json")
        listed = document.json()["d"]["EntitySets"]
        assert sorted(listed) == sorted(s.name for s in service.schema.entity_sets)
        assert set(listed) == {
            "CusCommunications",
            "CustomerInfos",
            "CusActivities",
            "ApplicationCodes",
            "ApplicationSubcodes",
        }

    def test_keys_and_types_are_as_personify_has_them(self, service: Any) -> None:
        activity = service.schema.entity_type("CusActivity")
        assert [p.name for p in activity.key_proprties] == ["ActivityId"]
        assert activity.proprty("ActivityId").typ.name == "Edm.Int64"
        assert activity.proprty("ActivityDate").typ.name == "Edm.DateTime"
        info = service.schema.entity_type("CustomerInfo")
        assert [(p.name, p.typ.name) for p in info.key_proprties] == [
            ("MasterCustomerId", "Edm.String"),
            ("SubCustomerId", "Edm.Int32"),
        ]

    def test_create_and_save_are_function_imports_with_their_http_methods(self, service: Any) -> None:
        create, save = (service.schema.function_import(name) for name in ("Create", "Save"))
        assert (create.http_method, save.http_method) == ("GET", "POST")
        for function in (create, save):
            assert [p.name for p in function.parameters] == ["EntityName"]
            assert function.return_type.name == "CusActivity"
            assert function.entity_set_name == "CusActivities"


class TestQueries:
    def test_email_lookup_on_cus_communications(self, service: Any) -> None:
        rows = (
            service.entity_sets.CusCommunications.get_entities()
            .filter("CommTypeCodeString eq 'EMAIL' and FormattedPhoneAddress eq 'shared@example.org'")
            .execute()
        )
        # The Int64 key comes as a string, which pyodata reads as a number.
        assert [(r.CusCommunicationId, r.MasterCustomerId, r.SubCustomerId, r.PrimaryFlag) for r in rows] == [
            (2, "000000000102", 0, True),
            (3, "000000000103", 1, False),
        ]

    def test_an_int64_filter_written_by_pyodata(self, service: Any) -> None:
        # pyodata writes the literal with its L: CusCommunicationId eq 3L
        (row,) = service.entity_sets.CusCommunications.get_entities().filter(CusCommunicationId=3).execute()
        assert row.MasterCustomerId == "000000000103"
        later = (
            service.entity_sets.CusCommunications.get_entities().filter(CusCommunicationId__gt=2).execute()
        )
        assert [r.CusCommunicationId for r in later] == [3, 4]

    def test_customer_infos_by_name_and_by_key(self, service: Any) -> None:
        infos = service.entity_sets.CustomerInfos
        (found,) = infos.get_entities().filter(LastName__startswith="O'").execute()
        assert (found.MasterCustomerId, found.SubCustomerId, found.FirstName) == ("000000000104", 0, "Pat")
        keyed = infos.get_entity(MasterCustomerId="000000000103", SubCustomerId=1).execute()
        assert (keyed.FirstName, keyed.LastName) == ("Cy", "Ng")

    def test_a_select_answers_the_properties_asked_for(self, service: Any) -> None:
        rows = (
            service.entity_sets.CustomerInfos.get_entities()
            .select("MasterCustomerId,LastName")
            .filter(SubCustomerId=0)
            .execute()
        )
        assert [(r.MasterCustomerId, r.LastName) for r in rows] == [
            ("000000000101", "Lee"),
            ("000000000102", "Ray"),
            ("000000000104", "O'Brien"),
        ]

    def test_activity_codes_and_subcodes(self, service: Any) -> None:
        codes = (
            service.entity_sets.ApplicationCodes.get_entities()
            .filter("SubsystemString eq 'CUS' and Type eq 'ACTIVITY'")
            .execute()
        )
        by_code = {c.Code: c for c in codes}
        assert {"INFORMZ_UNSUB", "INFORMZ_MAILING"} <= set(by_code)
        assert by_code["INFORMZ_UNSUB"].ActiveFlag is True and by_code["INFORMZ_UNSUB"].Option1 != "Y"
        subcodes = (
            service.entity_sets.ApplicationSubcodes.get_entities().filter(Code="INFORMZ_MAILING").execute()
        )
        assert {"SENT", "OPEN", "CLICK", "BOUNCE", "BLOCK"} <= {s.Subcode for s in subcodes}
        assert {type(s.ActiveFlag) for s in subcodes} == {bool}


class TestCreateAndSave:
    def test_create_gives_the_template(self, service: Any) -> None:
        template = service.functions.Create.parameter("EntityName", "CusActivity").execute()
        assert (template.ActivityId, template.SubCustomerId, template.Subsystem) == (0, 0, "CUS")
        # Read with retain_null: a null in a property $metadata declares not nullable would fail here.
        assert template.ActivityDate is None and template.ActivityCode == ""
        assert template.url.endswith("/CusActivities(0L)")

    def test_save_stores_the_filled_template_and_answers_it(self, simulator: Simulator, service: Any) -> None:
        template = service.functions.Create.parameter("EntityName", "CusActivity").execute()
        saved = save(service, activity_record(service, template, "Unsubscribed [ref WB-PYODATA001]"))
        (row,) = simulator.activities("000000000101")
        assert saved.ActivityId == row["ACTIVITY_ID"] and saved.ActivityId > 0
        assert saved.ActivityDate == WHEN and saved.AddOper == "WB_CONSOLE"
        assert saved.ActivityText == row["ACTIVITY_TEXT"] == "Unsubscribed [ref WB-PYODATA001]"

    def test_a_saved_activity_is_read_back_by_its_int64_key_and_by_filter(self, service: Any) -> None:
        template = service.functions.Create.parameter("EntityName", "CusActivity").execute()
        saved = save(service, activity_record(service, template, "Mailing [ref WB-PYODATA002]"))
        activities = service.entity_sets.CusActivities
        # pyodata asks for CusActivities(1L).
        keyed = activities.get_entity(saved.ActivityId).execute()
        assert (keyed.ActivityId, keyed.ActivityDate) == (saved.ActivityId, WHEN)
        (found,) = (
            activities.get_entities()
            .filter(
                MasterCustomerId="000000000101", SubCustomerId=0, ActivityText__contains="[ref WB-PYODATA002]"
            )
            .execute()
        )
        assert found.ActivityId == saved.ActivityId and found.AddDate.tzinfo is UTC


class TestServerDrivenPaging:
    """With ``page_size`` the simulator pages as WCF's SetEntitySetPageSize does, and pyodata follows."""

    def read_all(self, service: Any, request: Any) -> tuple[list[Any], int]:
        page = request.execute()
        rows, pages = list(page), 1
        while page.next_url is not None:
            page = service.entity_sets.CustomerInfos.get_entities().next_url(page.next_url).execute()
            rows.extend(page)
            pages += 1
        return rows, pages

    def test_every_page_is_read_through_its_next_link(
        self, make_simulator: MakeSimulator, session: requests.Session
    ) -> None:
        service = connect(make_simulator(page_size=1), session)
        rows, pages = self.read_all(service, service.entity_sets.CustomerInfos.get_entities())
        assert pages == 4
        assert [(r.MasterCustomerId, r.SubCustomerId) for r in rows] == [
            ("000000000101", 0),
            ("000000000102", 0),
            ("000000000103", 1),
            ("000000000104", 0),
        ]

    def test_the_filter_and_select_hold_on_every_page(
        self, make_simulator: MakeSimulator, session: requests.Session
    ) -> None:
        service = connect(make_simulator(page_size=1), session)
        request = service.entity_sets.CustomerInfos.get_entities().filter(SubCustomerId=0).select("LastName")
        rows, pages = self.read_all(service, request)
        assert (pages, [r.LastName for r in rows]) == (3, ["Lee", "Ray", "O'Brien"])

    def test_an_int64_key_pages_too(self, make_simulator: MakeSimulator, session: requests.Session) -> None:
        service = connect(make_simulator(page_size=3), session)
        first = service.entity_sets.CusCommunications.get_entities().execute()
        assert first.next_url.endswith("$skiptoken=3L")
        rest = service.entity_sets.CusCommunications.get_entities().next_url(first.next_url).execute()
        assert ([r.CusCommunicationId for r in first], [r.CusCommunicationId for r in rest]) == (
            [1, 2, 3],
            [4],
        )
        assert rest.next_url is None
