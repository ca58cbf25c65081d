"""The Personify Data Services client: the few reads and the one write the writeback console needs."""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Self
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
import urllib3.exceptions
from urllib3.util.retry import Retry

from writeback_console.personify import odata, transport
from writeback_console.personify.errors import (
    MAX_ERROR_BODY,
    ErrorKind,
    PersonifyError,
    Scrubber,
    body_text,
    deepest_message,
    exception_chain,
    kind_for_status,
)
from writeback_console.personify.mapping import ref_marker
from writeback_console.personify.values import (
    Activity,
    CodeCheck,
    Constituent,
    PersonifySettings,
)

log = logging.getLogger(__name__)

#: A success answer larger than this is refused rather than read: a constituent's activity list is
#: far smaller, and a broken or hostile server must not exhaust the console's memory.
MAX_RESPONSE_BODY = 32_000_000
MAX_MESSAGE_LENGTH = 1000
#: A collection that a site pages server-side is followed through its ``__next`` links up to this many
#: rows and pages in all; past either the read fails with a message rather than show part of the answer.
#: One constituent's activities, one email's communication rows and the activity codes are far fewer.
MAX_COLLECTION_ROWS = 10_000
MAX_COLLECTION_PAGES = 500
#: Constituents per CustomerInfos request: one `or` filter keeps round trips down, the cap keeps the
#: URL well under the 2,048 characters that IIS allows by default.
_NAMES_PER_REQUEST = 10
# Names the key of a CusActivity has had across Personify releases; the first one present is used.
_ACTIVITY_ID_FIELDS = ("ActivityId", "CusActivityId", "CustomerActivityId", "ActivityID")
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class PersonifyClient:
    """A pooled, thread-safe connection to one Personify Data Services root.

    Every failure surfaces as :class:`PersonifyError`; nothing is retried here, since whether to try
    again (and whether to look for the reference first) is the dispatcher's decision.
    """

    def __init__(self, settings: PersonifySettings, *, session: requests.Session | None = None) -> None:
        """``session`` brings its own transport (tests); by default a pooled one is made here."""
        self.settings = settings
        self._scrub = Scrubber(settings.user, settings.password)
        #: Whether the transport can tell if a request left (the default one can; a test's may not).
        self._tracked = session is None
        if session is None:
            session = requests.Session()
            # No retries at any level: a silently repeated Save is the double write §5 forbids.
            no_retries = Retry(
                total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False
            )
            adapter = transport.TrackedAdapter(
                pool_connections=1, pool_maxsize=settings.pool_size, max_retries=no_retries
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        self._session.auth = transport.Utf8BasicAuth(settings.user, settings.password)
        # Given with each request: REQUESTS_CA_BUNDLE would otherwise win over a session's own setting.
        self._verify: bool | str = settings.ca_bundle or settings.verify_tls
        self._session.verify = self._verify
        #: What each request is given as ``verify``: None lets requests take the environment's bundle.
        self._request_verify: bool | str | None = self._verify if self._verify is not True else None
        if self._tracked:
            self._read_environment_once()
        self._session.headers.update({"Accept": "application/json", "User-Agent": "writeback-console"})
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._template: Mapping[str, Any] | None = None
        self._template_lock = threading.Lock()
        self._guards = threading.local()

    def _read_environment_once(self) -> None:
        """Take the proxies and the CA bundle from the environment now, as requests would take them.

        requests reads the whole environment twice for every request (0.3 ms of Python, a quarter of
        what sending a writeback costs, while holding the GIL the console's window needs). Every
        request of this client goes to its one service root, so once is enough.
        """
        session = self._session
        session.proxies.update(requests.utils.get_environ_proxies(self.settings.root))
        if self._verify is True:
            self._request_verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        session.trust_env = False

    @contextmanager
    def guarded(self, guard: transport.RequestGuard | None) -> Iterator[None]:
        """Requests this thread makes inside the block ask ``guard`` before they go, and end by its
        deadline: a dispatcher's lease on the row being sent."""
        previous = getattr(self._guards, "guard", None)
        self._guards.guard = guard
        try:
            yield
        finally:
            self._guards.guard = previous

    def __repr__(self) -> str:
        return f"PersonifyClient(url={self.settings.service_root_url!r}, user={self.settings.user!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- operations -----------------------------------------------------------------------------

    def find_constituents_by_email(self, email: str) -> list[Constituent]:
        """Everyone whose email communication record is ``email``: none, one or several are normal."""
        email = email.strip()
        if not email:
            return []
        rows = self._get_entities(
            "CusCommunications",
            odata.and_(odata.eq("CommTypeCodeString", "EMAIL"), odata.eq("FormattedPhoneAddress", email)),
            select=("MasterCustomerId", "SubCustomerId", "PrimaryFlag"),
        )
        # One person may hold the address in several communication rows; they count once, and as
        # primary if any of those rows is primary.
        found: dict[tuple[str, int], bool] = {}
        with self._reading("CusCommunications"):
            for row in rows:
                master = _text(row.get("MasterCustomerId"))
                if not master:
                    continue
                key = (master, odata.read_int32(row.get("SubCustomerId"), "SubCustomerId"))
                found[key] = found.get(key, False) or _flag(row.get("PrimaryFlag"))
        names = self._customer_infos(list(found))
        constituents = []
        for (master, sub), primary in found.items():
            info = names.get((master, sub), {})
            constituents.append(
                Constituent(
                    master_customer_id=master,
                    sub_customer_id=sub,
                    label_name=_optional_text(info.get("LabelName")),
                    first_name=_optional_text(info.get("FirstName")),
                    last_name=_optional_text(info.get("LastName")),
                    record_type=_optional_text(info.get("RecordType")),
                    primary=primary,
                    email=email,
                )
            )
        constituents.sort(key=lambda c: (not c.primary, c.master_customer_id, c.sub_customer_id))
        return constituents

    def list_activities(self, master_customer_id: str, sub_customer_id: int) -> list[Activity]:
        """The constituent's activities, newest first (sorted here: the service has no $orderby)."""
        rows = self._get_entities("CusActivities", _constituent_filter(master_customer_id, sub_customer_id))
        with self._reading("CusActivities"):
            return _newest_first([_activity(row) for row in rows])

    def find_activity_by_ref(
        self, master_customer_id: str, sub_customer_id: int, ref: str
    ) -> Activity | None:
        """The constituent's activity that carries writeback ``ref``, if it reached Personify360."""
        found = self.find_activities_by_ref(master_customer_id, sub_customer_id, ref)
        return found[0] if found else None

    def find_activities_by_ref(
        self, master_customer_id: str, sub_customer_id: int, ref: str
    ) -> list[Activity]:
        """Every activity of the constituent that carries ``ref``, newest first."""
        marker = ref_marker(ref)
        rows = self._get_entities(
            "CusActivities",
            odata.and_(
                _constituent_filter(master_customer_id, sub_customer_id),
                odata.substringof(marker, "ActivityText"),
            ),
        )
        # Checked again here so that a server with a looser substringof cannot produce a false "arrived".
        # Case-insensitive like the SQL Server collation behind the service; the brackets still keep
        # WB-ABC from matching WB-ABCD.
        with self._reading("CusActivities"):
            activities = [_activity(row) for row in rows]
        matches = [a for a in activities if marker.lower() in a.text.lower()]
        return _newest_first(matches)

    def create_activity(self, fields: Mapping[str, Any]) -> Activity:
        """Write one CusActivity: fill the service's template and Save it; returns the saved row."""
        record = dict(self._activity_template())
        for name, value in fields.items():
            odata.field(name)
            record[name] = odata.format_date(value) if isinstance(value, datetime) else value
        body = json.dumps(record, ensure_ascii=False).encode("utf-8")
        saved = self._call(
            "POST",
            "Save",
            {"EntityName": odata.quote_literal("CusActivity")},
            body=body,
            headers={"Content-Type": "application/json", "AddModOper": self.settings.operator},
            write=True,
        )
        entities = self._unwrap(saved, "Save", write=True)
        if not entities:
            raise PersonifyError(
                ErrorKind.MALFORMED, "Save answered without the saved activity", status=200, write=True
            )
        with self._reading("Save", write=True):
            return _activity(entities[0])

    def probe(self) -> None:
        """One small authenticated read, to learn whether Personify360 can be used at all right now.

        It fetches the activity template anew (which Save needs anyway), so a dispatcher in doubt
        makes one request, never a write, before deciding whether to send anything.
        """
        template = self._fetch_template(sent=True)
        with self._template_lock:
            self._template = template

    def check_activity_codes(self, codes: Mapping[str, Sequence[str]]) -> CodeCheck:
        """Whether each code (and its expected subcodes) exists, is active and is not contact tracking."""
        rows = self._get_entities(
            "ApplicationCodes",
            odata.and_(odata.eq("SubsystemString", "CUS"), odata.eq("Type", "ACTIVITY")),
        )
        by_code = {_text(row.get("Code")): row for row in rows}
        missing, tracking, inactive = [], [], []
        for code in codes:
            row = by_code.get(code)
            if row is None:
                missing.append(code)
                continue
            if _text(row.get("Option1")).upper() == "Y":
                tracking.append(code)
            if "ActiveFlag" in row and not _flag(row.get("ActiveFlag")):
                inactive.append(code)

        wanted = [(code, sub) for code, subs in codes.items() if code not in missing for sub in subs]
        missing_subs: list[tuple[str, str]] = []
        inactive_subs: list[tuple[str, str]] = []
        checked = True
        if wanted:
            subcode_rows = self._subcode_rows()
            if subcode_rows is None:
                checked = False
            else:
                known = {(_text(r.get("Code")), _text(r.get("Subcode"))): r for r in subcode_rows}
                for pair in wanted:
                    sub_row = known.get(pair)
                    if sub_row is None:
                        missing_subs.append(pair)
                    elif "ActiveFlag" in sub_row and not _flag(sub_row.get("ActiveFlag")):
                        inactive_subs.append(pair)
        return CodeCheck(
            missing_codes=tuple(missing),
            contact_tracking_codes=tuple(tracking),
            inactive_codes=tuple(inactive),
            missing_subcodes=tuple(missing_subs),
            inactive_subcodes=tuple(inactive_subs),
            subcodes_checked=checked,
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _subcode_rows(self) -> list[dict[str, Any]] | None:
        """APP_SUBCODE rows for CUS activities, or None when the service does not expose them."""
        try:
            return self._get_entities(
                "ApplicationSubcodes",
                odata.and_(odata.eq("SubsystemString", "CUS"), odata.eq("Type", "ACTIVITY")),
            )
        except PersonifyError as exc:
            # 404: no such entity set at this site. 400: it exists with other property names. Either
            # way the codes themselves were checked, and the result says the subcodes were not.
            if exc.kind in (ErrorKind.NOT_FOUND, ErrorKind.VALIDATION):
                log.debug("subcodes not available from the service: %s", exc)
                return None
            raise

    def _customer_infos(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        infos: dict[tuple[str, int], dict[str, Any]] = {}
        for start in range(0, len(keys), _NAMES_PER_REQUEST):
            chunk = keys[start : start + _NAMES_PER_REQUEST]
            rows = self._get_entities(
                "CustomerInfos",
                odata.or_(*(_constituent_filter(master, sub) for master, sub in chunk)),
                select=(
                    "MasterCustomerId",
                    "SubCustomerId",
                    "LabelName",
                    "FirstName",
                    "LastName",
                    "RecordType",
                ),
            )
            with self._reading("CustomerInfos"):
                for row in rows:
                    sub = odata.read_int32(row.get("SubCustomerId"), "SubCustomerId")
                    infos[(_text(row.get("MasterCustomerId")), sub)] = row
        return infos

    def _activity_template(self) -> Mapping[str, Any]:
        """The Create template, fetched once per client and shared by all worker threads."""
        template = self._template
        if template is not None:
            return template
        with self._template_lock:
            if self._template is None:
                self._template = self._fetch_template(sent=None)
            return self._template

    def _fetch_template(self, *, sent: bool | None) -> Mapping[str, Any]:
        """Ask Create for the CusActivity template; exactly one must come back."""
        answer = self._call("GET", "Create", {"EntityName": odata.quote_literal("CusActivity")})
        entities = self._unwrap(answer, "Create")
        if len(entities) != 1:
            raise PersonifyError(
                ErrorKind.MALFORMED,
                f"Create answered with {len(entities)} templates instead of one",
                status=200,
                sent=sent,
            )
        return MappingProxyType(entities[0])

    def _get_entities(
        self, entity_set: str, filter_: str, select: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Every row of a collection, following the ``__next`` links of a site that pages its answers."""
        options = {"$filter": filter_}
        columns = [odata.field(name) for name in select]
        if columns:
            options["$select"] = ",".join(columns)
        rows, next_link = self._unwrap_page(self._call("GET", entity_set, options), entity_set)
        pages = 1
        followed: set[str] = set()
        while next_link is not None:
            if len(rows) >= MAX_COLLECTION_ROWS or pages >= MAX_COLLECTION_PAGES:
                raise PersonifyError(
                    ErrorKind.MALFORMED,
                    f"Personify360 answered {entity_set} with more than {len(rows):,} "
                    f"row{'' if len(rows) == 1 else 's'} in {pages:,} page{'' if pages == 1 else 's'}; "
                    f"the console reads at most {MAX_COLLECTION_ROWS:,} rows in "
                    f"{MAX_COLLECTION_PAGES:,} pages, so it stopped rather than show part of the answer",
                    status=200,
                )
            url = self._next_page_url(next_link, entity_set)
            if url in followed:
                raise PersonifyError(
                    ErrorKind.MALFORMED,
                    f"Personify360 answered {entity_set} with a next-page link it had already given; "
                    "the pages would never end",
                    status=200,
                )
            followed.add(url)
            page, next_link = self._unwrap_page(self._call("GET", entity_set, {}, url=url), entity_set)
            rows.extend(page)
            pages += 1
        return rows

    def _next_page_url(self, link: str, entity_set: str) -> str:
        """A ``__next`` link, if it stays on the service root's scheme, host and port.

        The link is the server's text: followed elsewhere, it would send the Personify360 password
        (Basic auth goes with every request) to whatever host a broken or hostile answer names.
        """
        # OData writes it absolute; one written relative to the service root stays on its host.
        link = urljoin(self.settings.root + "/", link)
        own, other = urlsplit(self.settings.service_root_url), urlsplit(link)
        same: bool | None
        try:
            same = (
                other.scheme.lower() == own.scheme.lower()
                and other.hostname == own.hostname
                and _port_of(other) == _port_of(own)
            )
        except ValueError:  # a port that is no number
            same = False
        if same and (other.username is not None or other.password is not None):
            same = None
        if same is None:
            # The host is the service root's; the user name in front of it (never shown) is what is wrong.
            raise PersonifyError(
                ErrorKind.MALFORMED,
                f"Personify360 answered {entity_set} with a link to its next page that carries a user "
                "name or password; the console does not follow it",
                status=200,
            )
        if not same:
            where = other.netloc.rpartition("@")[2][:100] or "an address without a host"
            raise PersonifyError(
                ErrorKind.MALFORMED,
                self._scrub(
                    f"Personify360 answered {entity_set} with a link to its next page on "
                    f"{other.scheme or '?'}://{where}, not on {own.scheme}://{_where(self.settings)} "
                    "(the service root URL in the settings); the console does not follow it"
                ),
                status=200,
            )
        return link

    @contextmanager
    def _reading(self, what: str, *, write: bool = False) -> Iterator[None]:
        """Values of an answer that are not of their type become one failure naming the property."""
        try:
            yield
        except odata.BadValue as exc:
            raise PersonifyError(
                ErrorKind.MALFORMED,
                self._scrub(f"Personify360 answered {what} with a value the console cannot read: {exc}"),
                status=200,
                write=write,
            ) from None

    def _unwrap_page(self, answer: Any, what: str) -> tuple[list[dict[str, Any]], str | None]:
        try:
            return odata.unwrap_page(answer)
        except odata.UnexpectedShape as exc:
            raise PersonifyError(
                ErrorKind.MALFORMED,
                f"Personify360 answered {what} with unexpected content: {exc}",
                status=200,
                excerpt=self._scrub.excerpt(json.dumps(answer, ensure_ascii=False, default=str)),
            ) from None

    def _unwrap(self, answer: Any, what: str, write: bool = False) -> list[dict[str, Any]]:
        try:
            return odata.unwrap_results(answer)
        except odata.UnexpectedShape as exc:
            raise PersonifyError(
                ErrorKind.MALFORMED,
                f"Personify360 answered {what} with unexpected content: {exc}",
                status=200,
                excerpt=self._scrub.excerpt(json.dumps(answer, ensure_ascii=False, default=str)),
                write=write,
            ) from None

    def _call(
        self,
        method: str,
        resource: str,
        options: Mapping[str, str],
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool = False,
        url: str | None = None,
    ) -> Any:
        """One HTTP exchange: the parsed JSON of a 2xx answer, or PersonifyError.

        ``url`` is a whole address already checked (a next page); ``resource`` then only names it.
        """
        if url is None:
            url = f"{self.settings.root}/{resource}?{odata.query_string(options)}"
        guard: transport.RequestGuard | None = getattr(self._guards, "guard", None)
        started = time.monotonic()
        deadline = started + self.settings.request_deadline
        limit = guard.deadline() if guard is not None else None
        if limit is not None:
            deadline = min(deadline, limit)
        left = deadline - started
        if left < _SHORTEST_REQUEST:
            raise PersonifyError(
                ErrorKind.NOT_SENT, "not sent: no time was left to make the request", sent=False, write=write
            )
        timeout = (min(self.settings.connect_timeout, left), min(self.settings.read_timeout, left))
        with transport.exchange(write=write, guard=guard, deadline=deadline) as exchange:
            try:
                if guard is not None:
                    guard.check()
                # Redirects are not followed: a service root that redirects is a wrong setting (often
                # http where https is meant), and a followed POST could turn into a GET or go elsewhere.
                response = self._session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    stream=True,
                    allow_redirects=False,
                    verify=self._request_verify,
                )
                try:
                    success = 200 <= response.status_code < 300
                    content, cut = _read_limited(response, MAX_RESPONSE_BODY if success else MAX_ERROR_BODY)
                finally:
                    response.close()
            except transport.NotSent as exc:
                raise PersonifyError(
                    ErrorKind.NOT_SENT, f"not sent: {exc}", sent=False, write=write
                ) from None
            except requests.RequestException as exc:
                error = self._network_error(
                    exc, write, exchange, by_guard=limit is not None and limit == deadline
                )
                log.debug("%s %s failed after %.0f ms: %s", method, resource, _ms(started), error)
                raise error from None
            except (ValueError, TypeError, OSError, http.client.HTTPException) as exc:
                # Raised before or while sending: a header that cannot be encoded, say.
                sent = exchange.sent if self._tracked else None
                raise PersonifyError(
                    ErrorKind.REQUEST,
                    self._scrub(f"the request could not be made: {type(exc).__name__}: {exc}")[
                        :MAX_MESSAGE_LENGTH
                    ],
                    write=write,
                    sent=sent,
                ) from None
        if exchange.timed_out:
            # Cut at its deadline while the answer was still coming: what arrived is not the answer.
            by_guard = limit is not None and limit == deadline
            raise PersonifyError(ErrorKind.TIMEOUT, self._cut_message(by_guard), write=write, sent=True)
        log.debug("%s %s -> %s in %.0f ms", method, resource, response.status_code, _ms(started))

        if not success or response.status_code in (204, 205):
            # A cut error body simply fails to parse, and the HTTP reason stands in for its message.
            try:
                error = self._http_error(response, content, write)
            except Exception as exc:  # an answer odd enough to break the reading of it
                log.debug("could not read the error answer: %r", exc)
                error = PersonifyError(
                    kind_for_status(response.status_code),
                    response.reason or f"HTTP status {response.status_code}",
                    status=response.status_code,
                    write=write,
                    sent=True,
                )
            raise error
        if cut:
            raise PersonifyError(
                ErrorKind.MALFORMED,
                f"the answer was larger than {MAX_RESPONSE_BODY // 1_000_000} MB and was not read",
                status=response.status_code,
                excerpt=self._scrub.excerpt(body_text(content)),
                write=write,
                sent=True,
            )
        try:
            return json.loads(content)
        except (ValueError, RecursionError):
            page = _is_page(response, content)
            what = "a web page instead of data" if page else "something that is not JSON"
            raise PersonifyError(
                ErrorKind.MALFORMED,
                f"Personify360 answered {resource} with {what}" + (f" ({_title(content)})" if page else ""),
                status=response.status_code,
                excerpt=self._scrub.excerpt(body_text(content)),
                write=write,
                sent=True,
                page=page,
            ) from None

    def _http_error(self, response: requests.Response, content: bytes, write: bool) -> PersonifyError:
        status = response.status_code
        if 200 <= status < 300:
            # 204/205: a success without the entity we asked for.
            return PersonifyError(ErrorKind.MALFORMED, "the answer was empty", status=status, write=write)
        if 300 <= status < 400:
            target = self._scrub(response.headers.get("Location", "")[:200])
            return PersonifyError(
                ErrorKind.MALFORMED,
                f"the service root redirects to {target or 'another address'}; "
                "check the service root URL in the settings",
                status=status,
                write=write,
            )
        message = deepest_message(content, response.headers.get("Content-Type", ""))
        page = message is None and _is_page(response, content)
        if not message:
            reason = response.reason or http.client.responses.get(status, "")
            message = reason or f"HTTP status {status}"
            if page and _title(content):
                message += f" ({_title(content)})"
        return PersonifyError(
            kind_for_status(status),
            # A message is for a dialog and the attempt history; a server can make it any length.
            self._scrub.excerpt(message, MAX_MESSAGE_LENGTH),
            status=status,
            excerpt=self._scrub.excerpt(body_text(content)),
            write=write,
            sent=True,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            page=page,
        )

    def _cut_message(self, by_guard: bool) -> str:
        where = _where(self.settings)
        if by_guard:
            return f"the request to {where} was ended before the dispatcher's hold on the row ran out"
        return (
            f"Personify360 at {where} gave no complete answer within the "
            f"{self.settings.request_deadline:g} s a request may take"
        )

    def _network_error(
        self, exc: requests.RequestException, write: bool, exchange: transport.Exchange, *, by_guard: bool
    ) -> PersonifyError:
        kind, message, during_connect = _classify(exc, self.settings)
        # Without the tracking transport only a failure known to come before sending is "not sent".
        sent: bool | None = False if during_connect else None
        if self._tracked:
            sent = exchange.sent
            where = _where(self.settings)
            if exchange.timed_out:
                kind = ErrorKind.TIMEOUT
                message = self._cut_message(by_guard)
            elif kind is ErrorKind.TLS and sent:
                detail = message.partition(": ")[2]
                message = f"the secure connection to {where} broke after the request was sent" + (
                    f": {detail}" if detail else ""
                )
        elif kind is ErrorKind.TLS:
            sent = None  # an untracked transport cannot tell a handshake from a broken answer
        return PersonifyError(kind, self._scrub(message), write=write, sent=sent)


#: Less time than this left before a deadline, and a request is not even started.
_SHORTEST_REQUEST = 0.05
#: Retry-After is honoured up to this many seconds; a longer one is taken as this.
MAX_RETRY_AFTER = 3600.0
_TITLE = re.compile(rb"<title[^>]*>(.{1,200}?)</title>", re.IGNORECASE | re.DOTALL)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), capped; None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    # A header is whatever a server sends: "²" is a digit to str.isdigit, not to float.
    try:
        if text.isascii() and text.isdigit():
            return min(float(text), MAX_RETRY_AFTER)
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delta = (when - (now or datetime.now(UTC))).total_seconds()
    except Exception:
        return None
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


def _is_page(response: requests.Response, content: bytes) -> bool:
    """A web page (HTML) rather than an OData answer or a WCF error document."""
    content_type = response.headers.get("Content-Type", "").lower()
    start = content.lstrip()[:64].lower()
    return "html" in content_type or start.startswith((b"<!doctype html", b"<html"))


def _title(content: bytes) -> str:
    match = _TITLE.search(content[:20_000])
    return " ".join(match.group(1).decode("utf-8", "replace").split()) if match else ""


def _where(settings: PersonifySettings) -> str:
    parts = urlsplit(settings.service_root_url)
    where = parts.hostname or "?"
    return f"{where}:{parts.port}" if parts.port else where


def _read_limited(response: requests.Response, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether there was more (which is then left unread)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _classify(exc: requests.RequestException, settings: PersonifySettings) -> tuple[ErrorKind, str, bool]:
    """(kind, plain-words message, whether it failed before the request went out) for a network error."""
    parts = urlsplit(settings.service_root_url)
    where = parts.hostname or "?"
    if parts.port:
        where = f"{where}:{parts.port}"
    if isinstance(exc, requests.ConnectTimeout):
        return ErrorKind.TIMEOUT, f"could not connect to {where} within {settings.connect_timeout:g} s", True
    if isinstance(exc, requests.ReadTimeout):
        return (
            ErrorKind.TIMEOUT,
            f"Personify360 at {where} did not answer within {settings.read_timeout:g} s",
            False,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        detail = next((str(e) for e in exception_chain(exc) if isinstance(e, ssl.SSLError)), "")
        return ErrorKind.TLS, f"secure connection to {where} failed" + (f": {detail}" if detail else ""), True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return ErrorKind.DROPPED, f"the connection to {where} was closed in the middle of the answer", False
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return ErrorKind.MALFORMED, f"the answer from {where} could not be decompressed", False
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return ErrorKind.MALFORMED, f"{where} redirected too many times", False

    chain = list(exception_chain(exc))
    if any(isinstance(e, urllib3.exceptions.NameResolutionError | socket.gaierror) for e in chain):
        return ErrorKind.CONNECTION, f"the host name {parts.hostname} could not be found (DNS)", True
    if any(isinstance(e, urllib3.exceptions.ProxyError) for e in chain):
        return ErrorKind.CONNECTION, f"the proxy in front of {where} refused the connection", True
    if any(isinstance(e, urllib3.exceptions.NewConnectionError | ConnectionRefusedError) for e in chain):
        refused = any(isinstance(e, ConnectionRefusedError) for e in chain)
        why = "the connection was refused" if refused else "no connection could be made"
        return ErrorKind.CONNECTION, f"could not connect to {where}: {why}", True
    if any(isinstance(e, urllib3.exceptions.ConnectTimeoutError) for e in chain):
        return ErrorKind.TIMEOUT, f"could not connect to {where} within {settings.connect_timeout:g} s", True
    # Checked after the connect cases: urllib3's connect timeout is also a TimeoutError.
    if any(isinstance(e, urllib3.exceptions.ReadTimeoutError | TimeoutError) for e in chain):
        return (
            ErrorKind.TIMEOUT,
            f"Personify360 at {where} did not answer within {settings.read_timeout:g} s",
            False,
        )
    dropped = (
        urllib3.exceptions.ProtocolError,
        http.client.RemoteDisconnected,
        http.client.IncompleteRead,
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
    )
    if any(isinstance(e, dropped) for e in chain):
        return (
            ErrorKind.DROPPED,
            f"the connection to {where} was closed before the answer was complete",
            False,
        )
    # Something unforeseen. Nothing says the request did not go out, so a write is treated as one that
    # may have arrived: checking the reference first is cheap, a double write is not.
    return ErrorKind.CONNECTION, f"could not talk to {where} ({type(exc).__name__})", False


def _port_of(parts: SplitResult) -> int | None:
    """The port an address names, or its scheme's default."""
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())


def _constituent_filter(master_customer_id: str, sub_customer_id: int) -> str:
    return odata.and_(
        odata.eq("MasterCustomerId", master_customer_id), odata.eq("SubCustomerId", int(sub_customer_id))
    )


def _activity(row: Mapping[str, Any]) -> Activity:
    """One CusActivity row; odata.BadValue when its key or constituent is not of its type."""
    activity_id: int | None = None
    name = next((n for n in _ACTIVITY_ID_FIELDS if row.get(n) is not None), None)
    if name is not None:
        # Edm.Int64: a string in OData v2's JSON format (WCF), a number at some sites.
        activity_id = odata.read_int64(row[name], name)
    return Activity(
        activity_id=activity_id,
        master_customer_id=_text(row.get("MasterCustomerId")),
        sub_customer_id=odata.read_int32(row.get("SubCustomerId"), "SubCustomerId"),
        code=_optional_text(row.get("ActivityCode")),
        subcode=_optional_text(row.get("ActivitySubcode")),
        date=odata.parse_optional_date(row.get("ActivityDate")),
        text=_text(row.get("ActivityText")),
        subsystem=_optional_text(row.get("Subsystem", row.get("SubsystemString"))),
        # The operator column is ADDOPER; sites' models expose it as AddOperator or AddOper.
        add_operator=_optional_text(row.get("AddOperator", row.get("AddOper"))),
        raw=MappingProxyType(dict(row)),
    )


def _newest_first(activities: Iterable[Activity]) -> list[Activity]:
    def key(activity: Activity) -> tuple[datetime, bool, int]:
        # Ids sort numerically, whichever JSON form they came in; rows without a date or id go last.
        ident = activity.activity_id
        return (activity.date or _EARLIEST, ident is not None, ident or 0)

    return sorted(activities, key=key, reverse=True)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _flag(value: Any) -> bool:
    """Personify writes flags as booleans in some entities and as 'Y'/'N' in others."""
    if isinstance(value, str):
        return value.strip().upper() in ("Y", "YES", "TRUE", "1")
    return bool(value)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
