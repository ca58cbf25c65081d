"""The entity sets the simulator serves: OData property names, their Personify columns, keys and $metadata,
and their values in OData v2's JSON form."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import quoteattr

from writeback_console.sim.odata_filter import EdmType, FieldSpec

#: Namespace of the entity types in $metadata and in ``__metadata.type``.
NAMESPACE = "PersonifyDataServices"
CONTAINER = "PersonifyEntitiesBase"

_EPOCH = datetime(1970, 1, 1)


def storage_to_json_date(stored: str) -> str:
    """A stored Edm.DateTime as WCF's JSON ``/Date(ms)/`` form."""
    value = datetime.fromisoformat(stored)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return f"/Date({(value - _EPOCH) // _ONE_MS})/"


_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Property:
    name: str
    column: str
    type: EdmType
    nullable: bool = True


@dataclass(frozen=True)
class EntitySet:
    """One entity set: the OData names and how they map onto a Personify-like table."""

    set_name: str
    type_name: str
    table: str
    properties: tuple[Property, ...]
    keys: tuple[str, ...]
    #: Property name → (column, type), the map the $filter compiler resolves names through.
    fields: dict[str, FieldSpec] = field(init=False, repr=False)
    by_name: dict[str, Property] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", {p.name: FieldSpec(p.column, p.type) for p in self.properties})
        object.__setattr__(self, "by_name", {p.name: p for p in self.properties})

    @property
    def qualified_type(self) -> str:
        return f"{NAMESPACE}.{self.type_name}"

    def key_predicate(self, row: Mapping[str, object]) -> str:
        """The key segment of an entity's URI, e.g. ``(MasterCustomerId='0001',SubCustomerId=0)`` or
        ``(12345L)``."""
        if len(self.keys) == 1:
            return f"({self.key_literal(self.keys[0], row[self.keys[0]])})"
        return "(" + ",".join(f"{k}={self.key_literal(k, row[k])}" for k in self.keys) + ")"

    def key_literal(self, name: str, value: object) -> str:
        """One key value as the URI literal of its property's type."""
        return format_literal(value, self.by_name[name].type)


def format_literal(value: object, edm_type: EdmType | None = None) -> str:
    """A value as an OData v2 URI literal; an Edm.Int64 carries its ``L`` suffix."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if edm_type is EdmType.INT64:
        return f"{value}L"
    return str(value)


S, I32, I64, B, DT = EdmType.STRING, EdmType.INT32, EdmType.INT64, EdmType.BOOLEAN, EdmType.DATETIME

CUS_COMMUNICATIONS = EntitySet(
    "CusCommunications",
    "CusCommunication",
    "CUS_COMMUNICATION",
    (
        Property("CusCommunicationId", "CUS_COMMUNICATION_ID", I64, nullable=False),
        Property("MasterCustomerId", "MASTER_CUSTOMER_ID", S, nullable=False),
        Property("SubCustomerId", "SUB_CUSTOMER_ID", I32, nullable=False),
        Property("CommTypeCodeString", "COMM_TYPE_CODE", S, nullable=False),
        Property("CommLocationCodeString", "COMM_LOCATION_CODE", S),
        Property("FormattedPhoneAddress", "FORMATTED_PHONE_ADDRESS", S),
        Property("PrimaryFlag", "PRIMARY_FLAG", B, nullable=False),
    ),
    ("CusCommunicationId",),
)

CUSTOMER_INFOS = EntitySet(
    "CustomerInfos",
    "CustomerInfo",
    "CUSTOMER",
    (
        Property("MasterCustomerId", "MASTER_CUSTOMER_ID", S, nullable=False),
        Property("SubCustomerId", "SUB_CUSTOMER_ID", I32, nullable=False),
        Property("LabelName", "LABEL_NAME", S),
        Property("FirstName", "FIRST_NAME", S),
        Property("LastName", "LAST_NAME", S),
        Property("RecordType", "RECORD_TYPE", S, nullable=False),
        Property("CustomerStatusCodeString", "CUSTOMER_STATUS_CODE", S),
    ),
    ("MasterCustomerId", "SubCustomerId"),
)

CUS_ACTIVITIES = EntitySet(
    "CusActivities",
    "CusActivity",
    "CUS_ACTIVITY",
    (
        Property("ActivityId", "ACTIVITY_ID", I64, nullable=False),
        Property("MasterCustomerId", "MASTER_CUSTOMER_ID", S, nullable=False),
        Property("SubCustomerId", "SUB_CUSTOMER_ID", I32, nullable=False),
        Property("Subsystem", "SUBSYSTEM", S, nullable=False),
        Property("ActivityCode", "ACTIVITY_CODE", S, nullable=False),
        Property("ActivitySubcode", "ACTIVITY_SUBCODE", S),
        Property("ActivityDate", "ACTIVITY_DATE", DT),
        Property("ActivityText", "ACTIVITY_TEXT", S),
        Property("AddOper", "ADDOPER", S),
        Property("AddDate", "ADDDATE", DT),
        Property("ModOper", "MODOPER", S),
        Property("ModDate", "MODDATE", DT),
    ),
    ("ActivityId",),
)

APPLICATION_CODES = EntitySet(
    "ApplicationCodes",
    "ApplicationCode",
    "APP_CODE",
    (
        Property("SubsystemString", "SUBSYSTEM", S, nullable=False),
        Property("Type", "TYPE", S, nullable=False),
        Property("Code", "CODE", S, nullable=False),
        Property("Description", "DESCR", S),
        Property("ActiveFlag", "ACTIVE_FLAG", B, nullable=False),
        Property("Option1", "OPTION_1", S),
    ),
    ("SubsystemString", "Type", "Code"),
)

APPLICATION_SUBCODES = EntitySet(
    "ApplicationSubcodes",
    "ApplicationSubcode",
    "APP_SUBCODE",
    (
        Property("SubsystemString", "SUBSYSTEM", S, nullable=False),
        Property("Type", "TYPE", S, nullable=False),
        Property("Code", "CODE", S, nullable=False),
        Property("Subcode", "SUBCODE", S, nullable=False),
        Property("Description", "DESCR", S),
        Property("ActiveFlag", "ACTIVE_FLAG", B, nullable=False),
    ),
    ("SubsystemString", "Type", "Code", "Subcode"),
)

ENTITY_SETS: dict[str, EntitySet] = {
    e.set_name: e
    for e in (CUS_COMMUNICATIONS, CUSTOMER_INFOS, CUS_ACTIVITIES, APPLICATION_CODES, APPLICATION_SUBCODES)
}
#: Entities that Create/Save accept, by the ``EntityName`` parameter.
WRITABLE = {CUS_ACTIVITIES.type_name: CUS_ACTIVITIES}


def _flag(stored: object) -> bool:
    return stored == "Y"


def _date(stored: object) -> str:
    return storage_to_json_date(str(stored))


def json_converter(edm_type: EdmType, *, int64_as_numbers: bool = False) -> Callable[[object], object] | None:
    """How a stored value of ``edm_type`` becomes its OData v2 JSON form (None: as it is).

    OData v2's JSON format ("Representing Primitive Types") writes Edm.Int64 and Edm.Decimal as strings,
    since a JSON number loses digits past 2**53 in JavaScript; WCF Data Services does so. Edm.DateTime is
    ``/Date(ms)/``, Edm.Boolean a JSON boolean (Personify stores 'Y'/'N'). ``int64_as_numbers`` writes
    Int64 as a JSON number instead, as some sites' front ends do, for clients that must read both.
    """
    if edm_type is B:
        return _flag
    if edm_type is DT:
        return _date
    if edm_type is I64 and not int64_as_numbers:
        return str
    return None


@dataclass(frozen=True)
class Projection:
    """Which properties a query returns and how each stored value becomes JSON; built once per request."""

    entity: EntitySet
    properties: tuple[Property, ...]
    converters: tuple[Callable[[object], object] | None, ...]
    #: Positions of the key properties among the selected columns, for ``__metadata.uri``.
    key_columns: tuple[str, ...]

    @property
    def columns_sql(self) -> str:
        # Keys are selected after the projected columns so that the URI can always be built.
        return ", ".join([p.column for p in self.properties] + list(self.key_columns))


def projection(
    entity: EntitySet, selected: Sequence[str] | None, *, int64_as_numbers: bool = False
) -> Projection:
    """The projection for a ``$select`` list (None: every property); names must already be valid."""
    props = entity.properties if selected is None else tuple(entity.by_name[n] for n in selected)
    converters = tuple(json_converter(p.type, int64_as_numbers=int64_as_numbers) for p in props)
    return Projection(entity, props, converters, tuple(entity.by_name[k].column for k in entity.keys))


def rows_to_json(
    proj: Projection, rows: Sequence[Sequence[object]], service_root: str
) -> list[dict[str, object]]:
    """Stored rows as OData JSON entities with ``__metadata``."""
    entity = proj.entity
    names = [p.name for p in proj.properties]
    converters = proj.converters
    n = len(names)
    type_name = entity.qualified_type
    prefix = f"{service_root}/{entity.set_name}"
    key_names = entity.keys
    out: list[dict[str, object]] = []
    for row in rows:
        keys = dict(zip(key_names, row[n:], strict=True))
        item: dict[str, object] = {
            "__metadata": {"uri": prefix + entity.key_predicate(keys), "type": type_name}
        }
        for i in range(n):
            value = row[i]
            conv = converters[i]
            item[names[i]] = conv(value) if conv is not None and value is not None else value
        out.append(item)
    return out


def template(entity: EntitySet, service_root: str, *, int64_as_numbers: bool = False) -> dict[str, object]:
    """What ``Create`` returns: a blank record with Personify's defaults, ready to be filled and saved.

    A property that $metadata declares not nullable is never null, not even here: empty text, zero, false.
    """
    stored: dict[str, object] = {}
    for p in entity.properties:
        if p.type in (I32, I64):
            stored[p.name] = 0
        elif p.type is B:
            stored[p.name] = "N"
        elif p.type is S and not p.nullable:
            stored[p.name] = ""
        else:
            stored[p.name] = None
    if "Subsystem" in stored:
        stored["Subsystem"] = "CUS"
    uri = f"{service_root}/{entity.set_name}" + entity.key_predicate({k: stored[k] for k in entity.keys})
    record: dict[str, object] = {"__metadata": {"uri": uri, "type": entity.qualified_type}}
    for p in entity.properties:
        value = stored[p.name]
        convert = json_converter(p.type, int64_as_numbers=int64_as_numbers)
        record[p.name] = convert(value) if convert is not None and value is not None else value
    return record


def metadata_document() -> str:
    """The EDMX ``$metadata`` document naming every entity type, set and service operation."""
    lines = [
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>',
        '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">',
        '  <edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
        ' m:DataServiceVersion="1.0">',
        f'    <Schema Namespace="{NAMESPACE}" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">',
    ]
    for entity in ENTITY_SETS.values():
        lines.append(f"      <EntityType Name={quoteattr(entity.type_name)}>")
        lines.append("        <Key>")
        lines.extend(f"          <PropertyRef Name={quoteattr(k)} />" for k in entity.keys)
        lines.append("        </Key>")
        for p in entity.properties:
            nullable = "true" if p.nullable else "false"
            lines.append(
                f"        <Property Name={quoteattr(p.name)} Type={quoteattr(str(p.type))}"
                f' Nullable="{nullable}" />'
            )
        lines.append("      </EntityType>")
    lines.append(f'      <EntityContainer Name="{CONTAINER}" m:IsDefaultEntityContainer="true">')
    for entity in ENTITY_SETS.values():
        lines.append(
            f"        <EntitySet Name={quoteattr(entity.set_name)}"
            f" EntityType={quoteattr(entity.qualified_type)} />"
        )
    lines.append(
        '        <FunctionImport Name="Create" EntitySet="CusActivities"'
        f' ReturnType="{NAMESPACE}.CusActivity" m:HttpMethod="GET">'
    )
    lines.append('          <Parameter Name="EntityName" Type="Edm.String" Mode="In" />')
    lines.append("        </FunctionImport>")
    lines.append(
        '        <FunctionImport Name="Save" EntitySet="CusActivities"'
        f' ReturnType="{NAMESPACE}.CusActivity" m:HttpMethod="POST">'
    )
    lines.append('          <Parameter Name="EntityName" Type="Edm.String" Mode="In" />')
    lines.append("        </FunctionImport>")
    lines.append("      </EntityContainer>")
    lines.append("    </Schema>")
    lines.append("  </edmx:DataServices>")
    lines.append("</edmx:Edmx>")
    return "\n".join(lines) + "\n"


def service_document() -> str:
    """The JSON service document: the names of the entity sets."""
    return json.dumps({"d": {"EntitySets": list(ENTITY_SETS)}})
