"""The Personify360 simulator: an HTTP server speaking Personify Data Services as DESIGN §3 describes it.

Decisions where the real service is unknown or the simulator is stricter on purpose, so that a client
bug shows up here rather than at a customer's site:

- Collections answer ``{"d": [...]}`` or ``{"d": {"results": [...]}}`` (``json_shape``); a single entity
  (key access, Create, Save) is always ``{"d": {...}}``. Save answers 200 with the stored entity.
- JSON must be asked for (``Accept: …json…`` or ``$format=json``); otherwise 415, where the real
  service would answer in Atom. ``$metadata`` is XML regardless.
- ``$top``, ``$skip``, ``$orderby``, ``$expand`` and ``$inlinecount`` are refused with 400 (DESIGN §3:
  not documented, do not rely on them); collections come in insertion order.
- Text compares case-insensitively, like Personify's SQL Server collation.
- Save refuses unknown properties and wrongly typed values (400, as WCF's deserialiser does) and reports
  Personify validation issues (400, the reason two ``internalexception`` levels deep). ``ActivityId`` and
  the Add/Mod columns in the body are ignored; ADDOPER is the ``AddModOper`` header or else the user.
- Any unexpected exception answers 500 with an error document and a traceback on stderr: a simulator
  bug, never a reaction to input.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, cast
from urllib.parse import parse_qsl, unquote

from writeback_console.sim import entities, wcf
from writeback_console.sim.entities import ENTITY_SETS, WRITABLE, EntitySet
from writeback_console.sim.faults import FaultKind, Faults
from writeback_console.sim.odata_filter import (
    EdmType,
    FilterError,
    TokenKind,
    compile_filter,
    datetime_to_storage,
    parse_filter,
    string_literals,
    tokenize,
)
from writeback_console.sim.store import Constituent, Database, NewActivity, save_activity
from writeback_console.sim.wcf import ODataError

__all__ = ["ROOT_PATH", "FaultKind", "Faults", "Simulator"]

ROOT_PATH = "/PersonifyDataServices/PersonifyData.svc"
REALM = "PersonifyDataServices"
MAX_BODY_BYTES = 1 << 20
#: Idle keep-alive connections are closed after this many seconds, as IIS does.
KEEP_ALIVE_SECONDS = 60.0

JsonShape = Literal["d", "results"]
ErrorFormat = Literal["xml", "json"]
JSON_SHAPES: tuple[JsonShape, ...] = ("d", "results")
ERROR_FORMATS: tuple[ErrorFormat, ...] = ("xml", "json")

_JSON = "application/json;charset=utf-8"
_XML = "application/xml;charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}
_UNAUTHORIZED_PAGE = (
    b"<!DOCTYPE html><html><head><title>401 - Unauthorized: Access is denied due to invalid credentials."
    b"</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2>"
    b"<p>You do not have permission to view this directory or page using the credentials that you "
    b"supplied.</p></body></html>"
)
#: System query options WCF knows but the Personify service is not documented to honour; refused so a
#: client that relies on them fails against the simulator rather than in production.
_REFUSED_OPTIONS = frozenset({"$top", "$skip", "$orderby", "$expand", "$inlinecount", "$skiptoken"})
#: Properties of a CusActivity that the server assigns; Save accepts them in the body and ignores them.
_SERVER_ASSIGNED = frozenset({"__metadata", "ActivityId", "AddOper", "AddDate", "ModOper", "ModDate"})


class _HttpDate:
    """The Date header, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            # Two threads may both format here; either result is right.
            self._text = formatdate(second, usegmt=True)
            self._second = second
        return self._text


_http_date = _HttpDate()


def _bad_request(message: str) -> ODataError:
    return ODataError(400, message)


def _not_found(segment: str) -> ODataError:
    return ODataError(404, f"Resource not found for the segment '{segment}'.")


def _method_not_allowed() -> ODataError:
    return ODataError(405, "The method is not allowed for this resource.")


def _unquote_string(raw: str, name: str) -> str:
    """The value of a quoted service-operation parameter such as ``EntityName='CusActivity'``."""
    if len(raw) < 2 or raw[0] != "'" or raw[-1] != "'" or "'" in raw[1:-1].replace("''", ""):
        raise _bad_request(
            f"Bad Request - Error in query syntax: parameter '{name}' must be a quoted string."
        )
    return raw[1:-1].replace("''", "'")


def parse_key(entity: EntitySet, text: str) -> dict[str, object]:
    """The key values in ``(…)`` after an entity set name; 400 if malformed or not the entity's keys."""
    values: dict[str, object] = {}
    parts = _split_key(text)
    if len(parts) == 1 and parts[0][0] is None and len(entity.keys) == 1:
        values[entity.keys[0]] = parts[0][1]
    else:
        for name, value in parts:
            if name is None or name not in entity.keys or name in values:
                raise _bad_request("Bad Request - Error in query syntax.")
            values[name] = value
    if set(values) != set(entity.keys):
        raise _bad_request(f"Bad Request - the key of '{entity.set_name}' is ({', '.join(entity.keys)}).")
    for name, value in values.items():
        want_string = entity.by_name[name].type is EdmType.STRING
        if want_string != isinstance(value, str):
            raise _bad_request(f"Bad Request - Error in query syntax: wrong type for key '{name}'.")
    return values


def _split_key(text: str) -> list[tuple[str | None, object]]:
    """``Name='v',Other=3`` or a lone literal, as (name or None, value) pairs."""
    # '=' is not part of the filter syntax, so split on it outside string literals before tokenizing.
    pieces: list[tuple[str | None, object]] = []
    for part in _split_outside_quotes(text, ","):
        halves = _split_outside_quotes(part, "=")
        if len(halves) > 2:
            raise _bad_request("Bad Request - Error in query syntax.")
        name: str | None = None
        if len(halves) == 2:
            name = halves[0].strip()
            if not name.isidentifier():
                raise _bad_request("Bad Request - Error in query syntax.")
        try:
            tokens = tokenize(halves[-1])
        except FilterError:
            raise _bad_request("Bad Request - Error in query syntax.") from None
        if len(tokens) != 2 or tokens[0].kind not in (TokenKind.STRING, TokenKind.INTEGER):
            raise _bad_request("Bad Request - Error in query syntax.")
        pieces.append((name, tokens[0].value))
    return pieces


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    for ch in text:
        if ch == "'":
            # A doubled quote toggles twice, which leaves the state as it was: exactly right.
            in_quotes = not in_quotes
        if ch == separator and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The simulator joins its handler threads itself, with a time limit, after waking them up.
    block_on_close = False
    sim: Simulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, but a client's next request must not wait on Nagle.
    disable_nagle_algorithm = True
    timeout = KEEP_ALIVE_SECONDS
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

    @property
    def sim(self) -> Simulator:
        return cast(_Server, self.server).sim

    def setup(self) -> None:
        super().setup()
        if not self.sim._track(self.connection):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.sim._untrack(self.connection)

    def handle_one_request(self) -> None:
        # A connection the simulator shut down while it waited for a request is not an error.
        try:
            super().handle_one_request()
        except (ConnectionError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        # One line per request would swamp test output and cost throughput.
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_MERGE(self) -> None:
        self._dispatch("MERGE")

    # ------------------------------------------------------------------------------------- plumbing

    def _send(self, status: int, body: bytes, content_type: str, extra: str = "") -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"DataServiceVersion: 1.0;\r\n"
            f"Date: {_http_date.now()}\r\n"
            f"{extra}"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write((head + "\r\n").encode("latin-1") + body)

    def _send_error(self, error: ODataError) -> None:
        if self.sim.error_format == "json":
            self._send(error.status, wcf.render_json(error), _JSON)
        else:
            self._send(error.status, wcf.render_xml(error), _XML)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a request whose body cannot be read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._send_error(
                ODataError(411, "Chunked request bodies are not supported; send Content-Length.")
            )
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error(ODataError(413, f"Request body larger than {MAX_BODY_BYTES} bytes."))
            return None
        return self.rfile.read(length) if length else b""

    def _unauthorized(self) -> None:
        self._send(401, _UNAUTHORIZED_PAGE, "text/html", f'WWW-Authenticate: Basic realm="{REALM}"\r\n')

    def _fail_connection(self, kind: FaultKind) -> None:
        """Leave the request unanswered: at once for a drop, after the hold time for a timeout."""
        if kind is FaultKind.TIMEOUT:
            self.sim._stopping.wait(self.sim.faults.hold_seconds)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------------------------- dispatch

    def _dispatch(self, method: str) -> None:
        sim = self.sim
        sim._count_request()
        faults = sim.faults
        if faults.latency_ms > 0 and sim._stopping.wait(faults.latency_ms / 1000.0):
            self._fail_connection(FaultKind.DROP)
            return
        body = self._read_body()
        if body is None:
            return
        user = None if faults.unauthorized else sim._user_for(self.headers.get("Authorization"))
        if user is None:
            self._unauthorized()
            return
        path, _, query = self.path.partition("?")
        path = unquote(path)
        if not path.startswith(ROOT_PATH):
            self._send_error(_not_found(path.lstrip("/").split("/", 1)[0]))
            return
        segment = path[len(ROOT_PATH) :]
        kind, after_write = faults.draw(method == "POST" and segment == "/Save")
        if kind is not None and not after_write:
            if kind in (FaultKind.TIMEOUT, FaultKind.DROP):
                self._fail_connection(kind)
                return
            if kind is FaultKind.SERVER_ERROR:
                self._send_error(wcf.server_fault())
                return
            if kind is FaultKind.VALIDATION:
                self._send_error(wcf.validation_issue("Simulated validation issue (fault injection)."))
                return
        try:
            status, payload, content_type = self._route(method, segment, query, body, user)
        except ODataError as error:
            if kind is not FaultKind.MALFORMED:
                self._send_error(error)
                return
            status, payload, content_type = 200, wcf.render_json(error), _JSON
        except Exception:
            # A bug in the simulator: answer like a server that hit one, and say what it was on stderr.
            traceback.print_exc(file=sys.stderr)
            self._send_error(ODataError(500, wcf.GENERIC_MESSAGE))
            return
        if kind is FaultKind.MALFORMED:
            self._send(200, payload[: len(payload) // 2], _JSON)
        elif kind is not None:
            self._fail_connection(kind)
        else:
            self._send(status, payload, content_type)

    def _wants_json(self, params: Mapping[str, str]) -> bool:
        accept = self.headers.get("Accept", "")
        return "json" in accept or params.get("$format") == "json"

    def _route(self, method: str, segment: str, query: str, body: bytes, user: str) -> tuple[int, bytes, str]:
        pairs = parse_qsl(query, keep_blank_values=True) if query else []
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise _bad_request(f"Query option '{name}' is specified more than once.")
            params[name] = value
        if segment == "/$metadata":
            if method != "GET":
                raise _method_not_allowed()
            return 200, entities.metadata_document().encode(), _XML
        if not self._wants_json(params):
            raise ODataError(
                415,
                "Unsupported media type requested. The simulator answers in JSON only (the real service "
                "would answer in Atom); send 'Accept: application/json'.",
            )
        if segment in ("", "/"):
            if method != "GET":
                raise _method_not_allowed()
            return 200, entities.service_document().encode(), _JSON
        if segment == "/Create":
            if method != "GET":
                raise _method_not_allowed()
            entity = self._writable_entity(params)
            return 200, json.dumps({"d": entities.template(entity, self.sim.url)}).encode(), _JSON
        if segment == "/Save":
            if method != "POST":
                raise _method_not_allowed()
            entity = self._writable_entity(params)
            return 200, self._save(entity, body, user), _JSON
        return self._read(method, segment[1:], params)

    def _writable_entity(self, params: Mapping[str, str]) -> EntitySet:
        raw = params.get("EntityName")
        if raw is None:
            raise _bad_request("Bad Request - the parameter 'EntityName' is missing.")
        name = _unquote_string(raw, "EntityName")
        entity = WRITABLE.get(name)
        if entity is None:
            raise ODataError(
                400,
                wcf.GENERIC_MESSAGE,
                (
                    wcf.Inner(
                        f"The simulator supports Create and Save only for EntityName 'CusActivity', not "
                        f"'{name}'.",
                        "System.ArgumentException",
                    ),
                ),
            )
        return entity

    # ----------------------------------------------------------------------------------------- reads

    def _read(self, method: str, segment: str, params: Mapping[str, str]) -> tuple[int, bytes, str]:
        name, paren, rest = segment.partition("(")
        entity = ENTITY_SETS.get(name)
        if entity is None or "/" in name:
            raise _not_found(name.split("/", 1)[0])
        if method != "GET":
            raise _method_not_allowed()
        key: dict[str, object] | None = None
        if paren:
            if not rest.endswith(")"):
                raise _not_found(segment)
            key = parse_key(entity, rest[:-1])
        selected: list[str] | None = None
        filter_text: str | None = None
        for option, value in params.items():
            if not option.startswith("$"):
                continue
            if option == "$filter":
                filter_text = value
            elif option == "$select":
                selected = self._parse_select(entity, value)
            elif option == "$format":
                if value != "json":
                    raise _bad_request(f"Unsupported $format '{value}'; only 'json' is available.")
            elif option in _REFUSED_OPTIONS:
                raise _bad_request(f"Query option '{option}' is not supported by this service.")
            else:
                raise _bad_request(
                    f"The query parameter '{option}' begins with a system-reserved '$' character but is not "
                    "recognized."
                )
        proj = entities.projection(entity, selected)
        sql = f"SELECT {proj.columns_sql} FROM {entity.table}"
        sql_params: list[object] = []
        if key is not None:
            if filter_text is not None:
                raise _bad_request("Query option '$filter' cannot be applied to a single entity.")
            sql += " WHERE " + " AND ".join(f"{entity.by_name[k].column} = ?" for k in entity.keys)
            sql_params = [key[k] for k in entity.keys]
        elif filter_text is not None:
            where, sql_params = self._compile_filter(entity, filter_text)
            sql += " WHERE " + where
        sql += " ORDER BY rowid"
        try:
            rows = self.sim.db.query(sql, sql_params)
        except (sqlite3.OperationalError, RecursionError) as error:
            # Only a filter SQLite finds too deep or too big gets here; the compiler checked the rest.
            raise _bad_request(f"The filter is too complex to evaluate ({error}).") from None
        items = entities.rows_to_json(proj, rows, self.sim.url)
        if key is not None:
            if not items:
                raise _not_found(entity.set_name)
            return 200, json.dumps({"d": items[0]}).encode(), _JSON
        if self.sim.json_shape == "results":
            return 200, json.dumps({"d": {"results": items}}).encode(), _JSON
        return 200, json.dumps({"d": items}).encode(), _JSON

    def _parse_select(self, entity: EntitySet, value: str) -> list[str] | None:
        names = [n.strip() for n in value.split(",")]
        if "*" in names:
            return None
        for n in names:
            if n not in entity.by_name:
                raise _bad_request(f"No property '{n}' exists in type '{entity.qualified_type}'.")
        return list(dict.fromkeys(names))

    def _compile_filter(self, entity: EntitySet, text: str) -> tuple[str, list[object]]:
        try:
            tree = parse_filter(text)
            where, params = compile_filter(tree, entity.fields, entity.qualified_type)
        except FilterError as error:
            raise _bad_request(str(error)) from None
        faults = self.sim.faults
        if faults.fail_emails and any(faults.is_failing_email(s) for s in string_literals(tree)):
            raise wcf.server_fault()
        return where, params

    # ----------------------------------------------------------------------------------------- Save

    def _save(self, entity: EntitySet, body: bytes, user: str) -> bytes:
        content_type = self.headers.get("Content-Type", "")
        if "json" not in content_type:
            raise ODataError(415, "Save takes a JSON body; send 'Content-Type: application/json'.")
        try:
            record = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _bad_request(
                "Error processing request stream. The request body is not valid JSON."
            ) from None
        if not isinstance(record, dict):
            raise _bad_request("Error processing request stream. A JSON object was expected.")
        activity, reasons = _activity_from_record(entity, record, self._operator(user))
        faults = self.sim.faults
        failing = faults.is_failing_email if faults.fail_emails else None
        reasons, row = save_activity(self.sim.db, activity, reasons, failing)
        if row is None:
            raise wcf.validation_issue(" ".join(reasons))
        proj = entities.projection(entity, None)
        stored = tuple(row[p.column] for p in proj.properties) + tuple(row[c] for c in proj.key_columns)
        return json.dumps({"d": entities.rows_to_json(proj, [stored], self.sim.url)[0]}).encode()

    def _operator(self, user: str) -> str:
        # Personify records the AddModOper header when given, otherwise the authenticated user.
        header = (self.headers.get("AddModOper") or "").strip()
        return header or user


def _activity_from_record(
    entity: EntitySet, record: Mapping[str, object], oper: str
) -> tuple[NewActivity, list[str]]:
    """The activity a Save body describes, and the validation issues found without the database."""
    for name in record:
        if name not in entity.by_name and name not in _SERVER_ASSIGNED:
            raise _bad_request(
                f"Error processing request stream. The property name '{name}' specified for type "
                f"'{entity.qualified_type}' is not valid."
            )
    reasons: list[str] = []

    def text(name: str) -> str | None:
        value = record.get(name)
        if value is None or isinstance(value, str):
            return value
        raise _bad_request(
            f"Error processing request stream. The value of property '{name}' must be a string or null."
        )

    master = (text("MasterCustomerId") or "").strip()
    if not master:
        reasons.append("Master Customer Id is required.")
    sub_raw = record.get("SubCustomerId", 0)
    if sub_raw is None:
        sub_raw = 0
    if not isinstance(sub_raw, int) or isinstance(sub_raw, bool):
        raise _bad_request(
            "Error processing request stream. The value of property 'SubCustomerId' must be an Edm.Int32."
        )
    code = (text("ActivityCode") or "").strip()
    if not code:
        reasons.append("Activity Code is required.")
    subcode = (text("ActivitySubcode") or "").strip() or None
    subsystem = (text("Subsystem") or "CUS").strip()
    if subsystem.upper() != "CUS":
        reasons.append(f"Subsystem '{subsystem}' is not valid for a CusActivity; it must be CUS.")
    date_raw = text("ActivityDate")
    if date_raw is None:
        when = datetime.now(UTC)
    else:
        try:
            when = wcf.parse_json_date(date_raw)
        except ValueError:
            raise _bad_request(
                f"Error processing request stream. The value '{date_raw[:40]}' of property 'ActivityDate' is "
                "not a valid /Date(ms)/ value."
            ) from None
    activity = NewActivity(
        master_customer_id=master,
        sub_customer_id=sub_raw,
        activity_code=code,
        activity_subcode=subcode,
        activity_date=datetime_to_storage(when),
        activity_text=text("ActivityText"),
        oper=oper,
    )
    return activity, reasons


# --------------------------------------------------------------------------------------------- facade


class Simulator:
    """A running (or ready to run) Personify360 simulator; see DESIGN §3 and the module docstring.

    ``faults``, ``json_shape``, ``error_format`` and ``users`` may be changed while it serves.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        users: Mapping[str, str] | None = None,
        constituents: Iterable[Mapping[str, object]] = (),
        faults: Faults | None = None,
        json_shape: JsonShape = "d",
        error_format: ErrorFormat = "xml",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.json_shape = json_shape
        self.error_format = error_format
        self.users = {"u": "p"} if users is None else users
        self.faults = faults if faults is not None else Faults()
        self._host = host
        self._port = port
        self._temp_dir: Path | None = None
        if db_path is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="personify-sim-"))
            db_path = self._temp_dir / "personify.sqlite3"
        self.db = Database(Path(db_path))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._requests = 0
        self._requests_lock = threading.Lock()
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()
        if constituents:
            try:
                self.add_constituents(constituents)
            except BaseException:
                self.stop()  # closes the database and removes a temporary one
                raise

    # ---------------------------------------------------------------------------------- settings

    @property
    def json_shape(self) -> JsonShape:
        return self._json_shape

    @json_shape.setter
    def json_shape(self, value: JsonShape) -> None:
        if value not in JSON_SHAPES:
            raise ValueError(f"json_shape must be one of {JSON_SHAPES}, not {value!r}")
        self._json_shape = value

    @property
    def error_format(self) -> ErrorFormat:
        return self._error_format

    @error_format.setter
    def error_format(self, value: ErrorFormat) -> None:
        if value not in ERROR_FORMATS:
            raise ValueError(f"error_format must be one of {ERROR_FORMATS}, not {value!r}")
        self._error_format = value

    @property
    def users(self) -> dict[str, str]:
        return dict(self._users)

    @users.setter
    def users(self, value: Mapping[str, str]) -> None:
        users = dict(value)
        for name in users:
            if not name or ":" in name:
                raise ValueError("a user name must be non-empty and must not contain ':'")
        # Precomputed header values make the common case one dictionary lookup per request.
        self._auth_headers = {
            "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode("ascii"): u for u, p in users.items()
        }
        self._users = users

    def _user_for(self, header: str | None) -> str | None:
        if header is None:
            return None
        user = self._auth_headers.get(header)
        if user is not None:
            return user
        # Slow path for spellings the fast path misses, such as a lower-case scheme or extra spaces.
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, _, password = decoded.partition(":")
        return name if self._users.get(name) == password and name in self._users else None

    # ----------------------------------------------------------------------------------- running

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The full service root URL, e.g. ``http://127.0.0.1:8123/PersonifyDataServices/PersonifyData.svc``."""
        return f"http://{self._host}:{self.port}{ROOT_PATH}"

    @property
    def request_count(self) -> int:
        return self._requests

    def _count_request(self) -> None:
        with self._requests_lock:
            self._requests += 1

    def start(self) -> Self:
        """Serve in a background thread; returns the simulator."""
        if self._stopped:
            raise RuntimeError("a stopped simulator cannot be started again")
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.sim = self
        self._server = server
        # A short poll interval makes stop() quick, which matters for a fixture started per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="personify-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake and close every connection, and remove a temporary database."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            with self._live_lock:
                live = dict(self._live)
            for conn in live:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            deadline = time.monotonic() + 5.0
            for thread in live.values():
                thread.join(max(0.0, deadline - time.monotonic()))
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self.db.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def _track(self, conn: socket.socket) -> bool:
        with self._live_lock:
            if self._stopping.is_set():
                return False
            self._live[conn] = threading.current_thread()
            return True

    def _untrack(self, conn: socket.socket) -> None:
        with self._live_lock:
            self._live.pop(conn, None)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------- data

    def add_constituents(self, constituents: Iterable[Mapping[str, object]]) -> int:
        """Add (or update) constituents given as dicts like a constituents file's lines; returns how many.

        Raises ValueError naming the record (counted from 1) and the field that is wrong.
        """
        records: list[Constituent] = []
        for number, data in enumerate(constituents, start=1):
            try:
                records.append(Constituent.from_dict(data))
            except ValueError as error:
                raise ValueError(f"constituent {number}: {error}") from None
        return self.db.add_constituents(records)

    def activities(self, master_customer_id: str | None = None) -> list[dict[str, object]]:
        """The stored CUS_ACTIVITY rows (all, or one constituent's), oldest first, keyed by column name."""
        return self.db.activities(master_customer_id)

    def set_activity_code_active(self, code: str, active: bool, subcode: str | None = None) -> None:
        """Switch an activity code (or one of its subcodes) on or off, as a Personify admin could."""
        self.db.set_code_active(code, active, subcode)

    def __repr__(self) -> str:
        where = self.url if self._server is not None and not self._stopped else "not serving"
        return f"<Simulator {where} json_shape={self.json_shape} error_format={self.error_format}>"
