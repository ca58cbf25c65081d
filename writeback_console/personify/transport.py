"""The HTTP transport under the Personify360 client: it knows whether a request left, and ends it on time.

Two facts decide whether a failed Save may have been written, and whether a dispatcher may still send:

- **Did any byte of the request leave?** A failure before that (DNS, refused, TLS handshake) is "not
  sent", whatever exception it surfaces as; any failure after it may have reached Personify360. The
  connection classes here record the moment the first byte is handed to the socket.
- **Is there still time?** Every request has a total deadline (a server dripping its answer one byte
  at a time defeats per-read timeouts), enforced by one watchdog thread that shuts the socket down.
  A caller may also pass a :class:`RequestGuard`, asked just before the first byte goes out — a
  dispatcher's lease check, so that a holder that lost its lease never sends.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class NotSent(Exception):
    """A guard refused the request before any byte of it left; the message says why."""


class RequestGuard(Protocol):
    """What a caller checks and learns around one request (a dispatcher's lease on the row)."""

    def check(self) -> None:
        """Raise :class:`NotSent` if the request must not go out now."""

    def deadline(self) -> float | None:
        """The ``time.monotonic()`` by which the request must be over, or None."""

    def wrote(self) -> None:
        """The first byte of a write request is about to leave: from now on it may arrive."""


class Exchange:
    """One request as the transport sees it, for the thread that makes it."""

    def __init__(self, *, write: bool, guard: RequestGuard | None, deadline: float) -> None:
        self.write = write
        self.guard = guard
        self.deadline = deadline
        #: Some byte of the request was handed to the socket.
        self.sent = False
        #: The watchdog ended the request at its deadline.
        self.timed_out = False
        #: Inside connect(): bytes sent now (a proxy's CONNECT) are not the request.
        self.connecting = False
        self.connection: HTTPConnection | None = None
        self.done = False
        self.lock = threading.Lock()

    def cut(self) -> None:
        """End the request now: shut its socket down, which wakes any read or write blocked on it."""
        with self.lock:
            if self.done:
                return
            self.timed_out = True
            connection = self.connection
        sock = getattr(connection, "sock", None)
        if sock is not None:
            # The plain socket underneath, also for TLS: the SSL object is left to its owner thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def finish(self) -> bool:
        """Mark the exchange over; False if the watchdog had already cut it."""
        with self.lock:
            self.done = True
            return not self.timed_out


_local = threading.local()


def current() -> Exchange | None:
    exchange: Exchange | None = getattr(_local, "exchange", None)
    return exchange


class _Watchdog:
    """One thread that cuts every request still running at its deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._finished = 0

    def forget(self) -> None:
        """An exchange ended; once most of the heap is over, it is compacted (thousands a second)."""
        with self._wake:
            self._finished += 1
            if self._finished > 256 and 2 * self._finished > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._finished = 0

    def watch(self, exchange: Exchange) -> None:
        with self._wake:
            heapq.heappush(self._heap, (exchange.deadline, next(self._order), exchange))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="personify-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait(30.0)
                    continue
                due, _, exchange = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
            exchange.cut()


_watchdog = _Watchdog()


@contextmanager
def exchange(*, write: bool, guard: RequestGuard | None, deadline: float) -> Iterator[Exchange]:
    """Make one request inside this block: its bytes are tracked and its deadline enforced."""
    current_exchange = Exchange(write=write, guard=guard, deadline=deadline)
    previous = current()
    _local.exchange = current_exchange
    _watchdog.watch(current_exchange)
    try:
        yield current_exchange
    finally:
        current_exchange.finish()
        _watchdog.forget()
        _local.exchange = previous


class _Tracked:
    """Mixed into urllib3's connections: records the first byte sent, asks the guard before it."""

    sock: Any

    def connect(self) -> None:
        ex = current()
        if ex is None:
            super().connect()  # type: ignore[misc]
            return
        ex.connection = self  # type: ignore[assignment]
        ex.connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            ex.connecting = False
        if ex.timed_out:
            # Cut while connecting, when there was no socket yet to shut down.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def send(self, data: Any) -> None:
        ex = current()
        if ex is not None and not ex.connecting:
            if self.sock is None:
                self.connect()
            ex.connection = self  # type: ignore[assignment]
            if not ex.sent:
                if ex.timed_out:
                    raise NotSent("the request's deadline passed before it could be sent")
                if ex.guard is not None:
                    ex.guard.check()
                ex.sent = True
                if ex.write and ex.guard is not None:
                    ex.guard.wrote()
        super().send(data)  # type: ignore[misc]


class TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection


_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


class TrackedAdapter(HTTPAdapter):
    """requests' adapter with the tracked connections, direct or through a proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class Utf8BasicAuth(requests.auth.AuthBase):
    """HTTP Basic with the user and password in UTF-8 (RFC 7617), so any password can be sent.

    requests encodes them as Latin-1, which fails outright for a password with, say, a euro sign.
    """

    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._header = f"Basic {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "Utf8BasicAuth(***)"
