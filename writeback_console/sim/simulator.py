"""The Personify360 simulator as a program uses it: start it, point a client at its URL, change its
faults while it serves, read what was saved, stop it. The HTTP side is ``sim/server.py``."""

from __future__ import annotations

import base64
import binascii
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from writeback_console.sim.faults import Faults
from writeback_console.sim.server import (
    ROOT_PATH,
    Handler,
    SaveEvent,
    Server,
    TlsFiles,
    server_context,
    shutdown,
)
from writeback_console.sim.store import Constituent, Database
from writeback_console.sim.wcf import ERROR_FORMATS, JSON_SHAPES, ErrorFormat, JsonShape


class Simulator:
    """A running (or ready to run) Personify360 simulator; see docs/architecture.md and the module docstring.

    ``faults``, ``json_shape``, ``error_format``, ``users``, ``page_size``, ``next_link_root``,
    ``int64_as_numbers`` and ``on_save`` may be changed while it serves. ``page_size`` (None: off)
    pages every collection as WCF's ``SetEntitySetPageSize`` does; ``next_link_root`` is the service
    root its ``__next`` links name (None: its own URL). ``int64_as_numbers`` writes Edm.Int64 values as
    JSON numbers rather than the strings of OData v2's JSON format. ``on_save`` is called in the handler
    thread with a ``SaveEvent`` for every Save request whose body was read, once its outcome is decided
    (and the activity stored, if it is) and before the answer or the fault goes out; what it raises is
    printed on stderr and otherwise ignored.
    """

    on_save: Callable[[SaveEvent], None] | None = None
    next_link_root: str | None = None

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
        tls: TlsFiles | None = None,
        page_size: int | None = None,
        int64_as_numbers: bool = False,
    ) -> None:
        self._tls_context = server_context(tls) if tls is not None else None
        self.page_size = page_size
        self.int64_as_numbers = int64_as_numbers
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
        # The server listening now: None before start(), after stop_listening() and after stop().
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None
        self._listening_lock = threading.Lock()
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
    def page_size(self) -> int | None:
        return self._page_size

    @page_size.setter
    def page_size(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"page_size must be a positive whole number or None, not {value!r}")
        self._page_size = value

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
        if self._bound_port is None:
            raise RuntimeError("the simulator is not started")
        return self._bound_port

    @property
    def url(self) -> str:
        """The full service root URL, e.g. ``http://127.0.0.1:8123/PersonifyDataServices/PersonifyData.svc``."""
        scheme = "http" if self._tls_context is None else "https"
        return f"{scheme}://{self._host}:{self.port}{ROOT_PATH}"

    @property
    def request_count(self) -> int:
        return self._requests

    def _count_request(self) -> None:
        with self._requests_lock:
            self._requests += 1

    def start(self) -> Self:
        """Serve in a background thread; returns the simulator."""
        with self._listening_lock:
            if self._stopped:
                raise RuntimeError("a stopped simulator cannot be started again")
            if self._bound_port is None:
                self._listen(self._port)
        return self

    def stop_listening(self) -> None:
        """Close the listening socket, so new connections are refused, and shut down open connections.

        Personify360 is down, as far as clients can tell, until ``start_listening()``.
        """
        with self._listening_lock:
            if self._server is None:
                return
            self._close_listener()
            self._shutdown_connections()

    def start_listening(self) -> None:
        """Listen again on the same port (OSError if something else took it meanwhile)."""
        with self._listening_lock:
            if self._stopped or self._bound_port is None:
                raise RuntimeError("the simulator is not started")
            if self._server is None:
                self._listen(self._bound_port)

    def _listen(self, port: int) -> None:
        server = Server((self._host, port), Handler)
        server.sim = self
        server.tls_context = self._tls_context
        self._server = server
        self._bound_port = int(server.server_address[1])
        # A short poll interval makes stop() quick, which matters for a fixture started per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="personify-sim", daemon=True
        )
        self._thread.start()

    def _close_listener(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._thread.join(5.0)
        self._server.server_close()
        self._server = None

    def _shutdown_connections(self) -> dict[socket.socket, threading.Thread]:
        with self._live_lock:
            live = dict(self._live)
        for conn in live:
            shutdown(conn)
        return live

    def stop(self) -> None:
        """Stop serving, wake and close every connection, and remove a temporary database."""
        with self._listening_lock:
            if self._stopped:
                return
            self._stopped = True
            self._stopping.set()
            if self._server is not None:
                self._close_listener()
            live = self._shutdown_connections()
        deadline = time.monotonic() + 5.0
        for thread in live.values():
            thread.join(max(0.0, deadline - time.monotonic()))
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
        where = self.url if self._server is not None and not self._stopped else "not listening"
        paging = f" page_size={self.page_size}" if self.page_size is not None else ""
        return f"<Simulator {where} json_shape={self.json_shape} error_format={self.error_format}{paging}>"
