"""The entity sets the simulator serves: OData property names, their Personify columns, keys and $metadata."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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

    def key_predicate(self, row: dict[str, object]) -> str:
        """The key segment of an entity's URI, e.g. ``(MasterCustomerId='0001',SubCustomerId=0)``."""
        if len(self.keys) == 1:
            return f"({format_literal(row[self.keys[0]])})"
        return "(" + ",".join(f"{k}={format_literal(row[k])}" for k in self.keys) + ")"


def format_literal(value: object) -> str:
    """A value as an OData URI literal."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
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


def _date(stored: object) -> str | None:
    return None if stored is None else storage_to_json_date(str(stored))


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


def projection(entity: EntitySet, selected: Sequence[str] | None) -> Projection:
    """The projection for a ``$select`` list (None: every property); names must already be valid."""
    props = entity.properties if selected is None else tuple(entity.by_name[n] for n in selected)
    converters: list[Callable[[object], object] | None] = []
    for p in props:
        converters.append(_flag if p.type is B else _date if p.type is DT else None)
    return Projection(entity, props, tuple(converters), tuple(entity.by_name[k].column for k in entity.keys))


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


def template(entity: EntitySet, service_root: str) -> dict[str, object]:
    """What ``Create`` returns: a blank record with Personify's defaults, ready to be filled and saved."""
    defaults: dict[str, object] = {}
    for p in entity.properties:
        if p.type in (I32, I64):
            defaults[p.name] = 0
        elif p.type is B:
            defaults[p.name] = False
        else:
            defaults[p.name] = None
    if "Subsystem" in defaults:
        defaults["Subsystem"] = "CUS"
    if "MasterCustomerId" in defaults:
        defaults["MasterCustomerId"] = ""
    uri = f"{service_root}/{entity.set_name}" + entity.key_predicate({k: defaults[k] for k in entity.keys})
    return {"__metadata": {"uri": uri, "type": entity.qualified_type}, **defaults}


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
