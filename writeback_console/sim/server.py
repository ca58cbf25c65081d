"""The Personify360 simulator: an HTTP server speaking Personify Data Services as the client uses it.

What that is: docs/architecture.md, "Personify360, as the client and the simulator speak it".

Decisions where the real service is unknown or the simulator is stricter on purpose, so that a client
bug shows up here rather than at a customer's site:

- Collections answer ``{"d": [...]}`` or ``{"d": {"results": [...]}}`` (``json_shape``); a single entity
  (key access, Create, Save) is always ``{"d": {...}}``. Save answers 200 with the stored entity.
- Values take OData v2's JSON form, as WCF writes them: Edm.Int64 as a string (``"ActivityId": "12345"``),
  Edm.DateTime as ``/Date(ms)/``, Edm.Boolean as a JSON boolean, null as null; an Int64 key in a URI
  (``__metadata.uri``, ``$skiptoken``) carries its ``L``. ``int64_as_numbers`` writes Int64 as JSON
  numbers instead, the form some sites send, so the client is tried against both.
- JSON must be asked for (``Accept: …json…`` or ``$format=json``); otherwise 415, where the real
  service would answer in Atom. ``$metadata`` is XML regardless.
- ``$top``, ``$skip``, ``$orderby``, ``$expand`` and ``$inlinecount`` are refused with 400 (the service
  does not document them, so the client must not rely on them); collections come in insertion order.
- With ``page_size`` set (WCF's ``SetEntitySetPageSize``; off by default, as at most sites) a collection
  comes in key order, at most that many rows an answer, in the verbose shape with a ``__next`` link
  carrying ``$skiptoken`` (the key of the page's last row). ``$metadata`` does not say so, as WCF's does
  not; ``$skiptoken`` is refused while paging is off. ``next_link_root`` makes the links name another
  service root, as a site behind a proxy that advertises its inner address does.
- Text compares case-insensitively, like Personify's SQL Server collation.
- Save refuses unknown properties and wrongly typed values (400, as WCF's deserialiser does) and reports
  Personify validation issues (400, the reason two ``internalexception`` levels deep). ``ActivityId`` and
  the Add/Mod columns in the body are ignored; ADDOPER is the ``AddModOper`` header or else the user.
- Any unexpected exception answers 500 with an error document and a traceback on stderr: a simulator
  bug, never a reaction to input.
- With ``tls`` it serves HTTPS (TLS 1.2 or later); a client that gives up on the handshake, for instance
  because it does not trust the certificate, is a closed connection and nothing more.
- The front-end faults (503, 429, 502, 504, html) answer with HTML pages and none of the service's
  headers, because in production they come from IIS or a gateway in front of it, not from WCF.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import ssl
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, quote, unquote

from writeback_console.sim import entities, wcf
from writeback_console.sim.entities import ENTITY_SETS, WRITABLE, EntitySet
from writeback_console.sim.faults import AFTER_WRITE_KINDS, ANSWER_FAULT_KINDS, FaultKind, Faults
from writeback_console.sim.front_end import FRONT_END_PAGES, RETRY_AFTER_KINDS, UNAUTHORIZED_PAGE
from writeback_console.sim.keys import parse_key, parse_skiptoken, skiptoken, unquote_string
from writeback_console.sim.odata_filter import (
    FilterError,
    compile_filter,
    datetime_to_storage,
    parse_filter,
    string_literals,
)
from writeback_console.sim.store import NewActivity, save_activity
from writeback_console.sim.wcf import ODataError

if TYPE_CHECKING:
    from writeback_console.sim.simulator import Simulator

__all__ = ["ROOT_PATH", "FaultKind", "Faults", "SaveEvent", "TlsFiles"]

ROOT_PATH = "/PersonifyDataServices/PersonifyData.svc"
REALM = "PersonifyDataServices"
MAX_BODY_BYTES = 1 << 20
#: Idle keep-alive connections are closed after this many seconds, as IIS does.
KEEP_ALIVE_SECONDS = 60.0
#: A client gets this long to finish the TLS handshake; it happens in the connection's own thread.
HANDSHAKE_SECONDS = 10.0


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
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


#: A TLS application-data record header claiming 32 bytes, which follow as random noise: a TLS client
#: fails to decrypt it; a plain-HTTP client finds no status line in it.
_TLS_RECORD_HEADER = b"\x17\x03\x03\x00\x20"

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


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate (chain) and its private key, for serving HTTPS."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class SaveEvent:
    """What one Save request came to, as ``Simulator.on_save`` sees it before the answer goes out.

    ``text``, ``master_customer_id`` and ``sub_customer_id`` come from the body (None where it has no
    such value of the right type); ``stored`` says whether this request stored an activity; ``fault``
    is the fault injected into it, if any.
    """

    at: float
    text: str | None
    master_customer_id: str | None
    sub_customer_id: int | None
    stored: bool
    fault: FaultKind | None


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except OSError as error:  # ssl.SSLError included: not PEM, or a key that does not match
        raise ValueError(
            f"cannot load the TLS certificate {tls.cert_file} with key {tls.key_file}: {error}"
        ) from None
    return context


def shutdown(conn: socket.socket) -> None:
    """Shut down the TCP connection under any TLS layer, waking a thread blocked on it.

    ``SSLSocket.shutdown`` would also drop its TLS state, which the thread using it may be in the
    middle of; the plain socket's method only acts on the file descriptor.
    """
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


def reuse_address_is_safe(platform: str | None = None) -> bool:
    """SO_REUSEADDR lets a restarted simulator take its port again at once; on Windows it would let a
    second server take a port that is in use, so there it stays off."""
    return not (platform or sys.platform).startswith("win")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = reuse_address_is_safe()
    # The simulator joins its handler threads itself, with a time limit, after waking them up.
    block_on_close = False
    sim: Simulator
    tls_context: ssl.SSLContext | None = None

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # Runs in the connection's own thread, so a slow TLS handshake holds up nobody else.
        assert isinstance(request, socket.socket)
        conn = request
        try:
            if self.tls_context is not None:
                conn = self.tls_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except OSError:
            return  # the client is gone already
        try:
            if not self.sim._track(conn):
                return
            if self.tls_context is not None:
                assert isinstance(conn, ssl.SSLSocket)
                try:
                    conn.settimeout(HANDSHAKE_SECONDS)
                    conn.do_handshake()
                except (OSError, ValueError):
                    # An untrusted certificate, a plain-HTTP client, a timeout or a stop(): just closed.
                    return
            super().finish_request(conn, client_address)
        finally:
            self.sim._untrack(conn)
            if conn is not request:
                # wrap_socket took over the file descriptor; shutdown_request closes only the husk.
                conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, but a client's next request must not wait on Nagle.
    disable_nagle_algorithm = True
    timeout = KEEP_ALIVE_SECONDS
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    # Per request, set by _dispatch: whether the answer is dripped, and whether Save stored a row.
    _drip_interval: float | None = None
    _stored = False

    @property
    def sim(self) -> Simulator:
        return cast(Server, self.server).sim

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

    def _send(
        self, status: int, body: bytes, content_type: str, extra: str = "", *, from_service: bool = True
    ) -> None:
        # A front end in front of the service does not add the service's own headers.
        version = "DataServiceVersion: 1.0;\r\n" if from_service else ""
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"{version}"
            f"Date: {_http_date.now()}\r\n"
            f"{extra}"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        self._write((head + "\r\n").encode("latin-1") + body)

    def _write(self, answer: bytes) -> None:
        interval = self._drip_interval
        if interval is None:
            self.wfile.write(answer)
            return
        stopping = self.sim._stopping
        for i in range(len(answer)):
            if stopping.wait(interval):
                break
            try:
                self.wfile.write(answer[i : i + 1])
            except OSError:
                break  # the client gave up
        else:
            return
        self.close_connection = True
        shutdown(self.connection)

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
        self._send(401, UNAUTHORIZED_PAGE, "text/html", f'WWW-Authenticate: Basic realm="{REALM}"\r\n')

    def _fail_connection(self, kind: FaultKind) -> None:
        """Leave the request unanswered: at once for a drop, after the hold time for a timeout, and with
        bytes that are no TLS record for a TLS reset."""
        if kind is FaultKind.TIMEOUT:
            self.sim._stopping.wait(self.sim.faults.hold_seconds)
        self.close_connection = True
        if kind is FaultKind.TLS_RESET:
            with contextlib.suppress(OSError):
                # The plain socket's sendall writes past the TLS layer, straight onto TCP.
                socket.socket.sendall(self.connection, _TLS_RECORD_HEADER + os.urandom(32))
        shutdown(self.connection)

    def _send_front_end_page(self, kind: FaultKind) -> None:
        status, page = FRONT_END_PAGES[kind]
        extra = ""
        retry_after = self.sim.faults.retry_after_seconds
        if kind in RETRY_AFTER_KINDS and retry_after is not None:
            extra = f"Retry-After: {math.ceil(retry_after)}\r\n"
        self._send(status, page, "text/html; charset=utf-8", extra, from_service=False)

    def _report_save(self, body: bytes, kind: FaultKind | None) -> None:
        hook = self.sim.on_save
        if hook is None:
            return
        try:
            record = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict):
            record = {}
        text, master, sub = (record.get(n) for n in ("ActivityText", "MasterCustomerId", "SubCustomerId"))
        event = SaveEvent(
            at=time.time(),
            text=text if isinstance(text, str) else None,
            master_customer_id=master if isinstance(master, str) else None,
            sub_customer_id=sub if isinstance(sub, int) and not isinstance(sub, bool) else None,
            stored=self._stored,
            fault=kind,
        )
        try:
            hook(event)
        except Exception:
            # The hook belongs to a test harness; its bugs must not change what the client sees.
            traceback.print_exc(file=sys.stderr)

    # ------------------------------------------------------------------------------------- dispatch

    def _dispatch(self, method: str) -> None:
        sim = self.sim
        sim._count_request()
        self._drip_interval = None
        self._stored = False
        faults = sim.faults
        if faults.latency_ms > 0 and sim._stopping.wait(faults.latency_ms / 1000.0):
            self._fail_connection(FaultKind.DROP)
            return
        body = self._read_body()
        if body is None:
            return
        path, _, query = self.path.partition("?")
        path = unquote(path)
        segment = path[len(ROOT_PATH) :] if path.startswith(ROOT_PATH) else None
        is_save = method == "POST" and segment == "/Save"
        user = None if faults.unauthorized else sim._user_for(self.headers.get("Authorization"))
        if user is None:
            if is_save:
                self._report_save(body, None)
            self._unauthorized()
            return
        if segment is None:
            self._send_error(_not_found(path.lstrip("/").split("/", 1)[0]))
            return
        kind, after_write = faults.draw(is_save)
        if kind is not None and not after_write and kind not in ANSWER_FAULT_KINDS:
            if is_save:
                self._report_save(body, kind)
            self._fail_before_the_service(kind)
            return
        if kind is FaultKind.LATE_WRITE and sim._stopping.wait(faults.hold_seconds):
            self._fail_connection(FaultKind.DROP)
            return
        error: ODataError | None = None
        try:
            status, payload, content_type = self._route(method, segment, query, body, user)
        except ODataError as raised:
            error = raised
        except Exception:
            # A bug in the simulator: answer like a server that hit one, and say what it was on stderr.
            traceback.print_exc(file=sys.stderr)
            error, kind = ODataError(500, wcf.GENERIC_MESSAGE), None
        if error is not None and (kind in AFTER_WRITE_KINDS or kind is FaultKind.LATE_WRITE):
            kind = None  # nothing was written for the fault to follow: the refusal is answered as it is
        if is_save:
            self._report_save(body, kind)
        if kind is FaultKind.DRIP:
            self._drip_interval = faults.drip_interval
        if kind is FaultKind.MALFORMED:
            if error is not None:
                status, payload, content_type = 200, wcf.render_json(error), _JSON
            self._send(200, payload[: len(payload) // 2], _JSON)
        elif error is not None:
            self._send_error(error)
        elif kind is not None and kind is not FaultKind.DRIP:
            self._fail_connection(kind)
        else:
            self._send(status, payload, content_type)

    def _fail_before_the_service(self, kind: FaultKind) -> None:
        """A fault that strikes before the service sees the request, so nothing is stored."""
        if kind in FRONT_END_PAGES:
            self._send_front_end_page(kind)
        elif kind is FaultKind.SERVER_ERROR:
            self._send_error(wcf.server_fault())
        elif kind is FaultKind.VALIDATION:
            self._send_error(wcf.validation_issue("Simulated validation issue (fault injection)."))
        else:
            self._fail_connection(kind)

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
            record = entities.template(entity, self.sim.url, int64_as_numbers=self.sim.int64_as_numbers)
            return 200, json.dumps({"d": record}).encode(), _JSON
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
        name = unquote_string(raw, "EntityName")
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
        page_size = self.sim.page_size if key is None else None
        after: list[object] | None = None
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
            elif option == "$skiptoken" and page_size is not None:
                after = parse_skiptoken(entity, value)
            elif option in _REFUSED_OPTIONS:
                raise _bad_request(f"Query option '{option}' is not supported by this service.")
            else:
                raise _bad_request(
                    f"The query parameter '{option}' begins with a system-reserved '$' character but is not "
                    "recognized."
                )
        proj = entities.projection(entity, selected, int64_as_numbers=self.sim.int64_as_numbers)
        sql = f"SELECT {proj.columns_sql} FROM {entity.table}"
        sql_params: list[object] = []
        if key is not None:
            if filter_text is not None:
                raise _bad_request("Query option '$filter' cannot be applied to a single entity.")
            sql += " WHERE " + " AND ".join(f"{entity.by_name[k].column} = ?" for k in entity.keys)
            sql_params = [key[k] for k in entity.keys]
        key_columns = ", ".join(entity.by_name[k].column for k in entity.keys)
        if key is None:
            conditions = []
            if filter_text is not None:
                where, sql_params = self._compile_filter(entity, filter_text)
                conditions.append(f"({where})")
            if after is not None:
                # Row values compare left to right, with each key column's own collation.
                conditions.append(f"({key_columns}) > ({', '.join('?' * len(after))})")
                sql_params = [*sql_params, *after]
            if conditions:
                sql += " WHERE " + " AND ".join(conditions)
        if page_size is not None:
            # WCF pages in key order, and asks for one row more than a page to know whether one follows.
            sql += f" ORDER BY {key_columns} LIMIT {page_size + 1}"
        else:
            sql += " ORDER BY rowid"
        try:
            rows = self.sim.db.query(sql, sql_params)
        except (sqlite3.OperationalError, RecursionError) as error:
            # Only a filter SQLite finds too deep or too big gets here; the compiler checked the rest.
            raise _bad_request(f"The filter is too complex to evaluate ({error}).") from None
        next_link: str | None = None
        if page_size is not None and len(rows) > page_size:
            rows = rows[:page_size]
            last = dict(zip(entity.keys, rows[-1][len(proj.properties) :], strict=True))
            next_link = self._next_link(entity, params, skiptoken(entity, last))
        items = entities.rows_to_json(proj, rows, self.sim.url)
        if key is not None:
            if not items:
                raise _not_found(entity.set_name)
            return 200, json.dumps({"d": items[0]}).encode(), _JSON
        if next_link is not None:
            # Only the verbose shape has room for the link, so a paged answer always takes it.
            return 200, json.dumps({"d": {"results": items, "__next": next_link}}).encode(), _JSON
        if self.sim.json_shape == "results":
            return 200, json.dumps({"d": {"results": items}}).encode(), _JSON
        return 200, json.dumps({"d": items}).encode(), _JSON

    def _next_link(self, entity: EntitySet, params: Mapping[str, str], token: str) -> str:
        """The ``__next`` address: the same query with the skip token of the page's last row."""
        options = {name: value for name, value in params.items() if name != "$skiptoken"}
        options["$skiptoken"] = token
        query = "&".join(f"{quote(n, safe='$')}={quote(v, safe='')}" for n, v in options.items())
        root = self.sim.next_link_root or self.sim.url
        return f"{root}/{entity.set_name}?{query}"

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
        self._stored = True
        proj = entities.projection(entity, None, int64_as_numbers=self.sim.int64_as_numbers)
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
