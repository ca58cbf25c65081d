"""Transport: whether any byte of a request left, the guard asked before the first, and deadlines kept."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from writeback_console.dispatch.lease import RowLease
from writeback_console.personify.transport import (
    NotSent,
    TrackedAdapter,
    TrackedHTTPConnection,
    Utf8BasicAuth,
    _Tracked,
    current,
    exchange,
)


class Wire:
    """The part of a urllib3 connection under the tracking: a socket, connect and send, and no server."""

    def __init__(self, sock: socket.socket, *, proxy_connect: bool = False) -> None:
        self.sock: socket.socket | None = sock
        self.proxy_connect = proxy_connect

    def connect(self) -> None:
        if self.proxy_connect:
            self.send(b"CONNECT pds.example.org:443 HTTP/1.1\r\n\r\n")

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)


class Connection(_Tracked, Wire):
    pass


@pytest.fixture
def ends() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Our end of a local socket pair, and the far end that shows what arrived."""
    near, far = socket.socketpair()
    far.setblocking(False)
    yield near, far
    near.close()
    far.close()


def arrived(far: socket.socket) -> bytes:
    try:
        return far.recv(65536)
    except BlockingIOError:
        return b""


def lease() -> RowLease:
    return RowLease(7, 3, 60.0, RowLease.now())


def soon(seconds: float = 60.0) -> float:
    return time.monotonic() + seconds


def test_a_dispatcher_that_lost_its_lease_sends_not_one_byte(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, far = ends
    guard = lease()
    guard.lost = True
    with (
        exchange(write=True, guard=guard, deadline=soon()) as ex,
        pytest.raises(NotSent, match="another dispatcher holds this writeback now"),
    ):
        Connection(near).send(b"POST /CusActivitys HTTP/1.1\r\n")
    assert arrived(far) == b""
    assert not ex.sent and not guard.write_sent


def test_the_first_byte_of_a_write_marks_it_sent_and_as_possibly_arrived(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, far = ends
    guard = lease()
    with exchange(write=True, guard=guard, deadline=soon()) as ex:
        Connection(near).send(b"POST /Save HTTP/1.1\r\n")
    assert arrived(far) == b"POST /Save HTTP/1.1\r\n"
    assert ex.sent and guard.write_sent


def test_a_read_is_marked_sent_but_does_not_make_a_write_possibly_arrived(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, _ = ends
    guard = lease()
    with exchange(write=False, guard=guard, deadline=soon()) as ex:
        Connection(near).send(b"GET /CustomerInfos HTTP/1.1\r\n")
    assert ex.sent and not guard.write_sent


def test_a_request_under_way_is_not_stopped_half_sent_by_a_later_refusal(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, far = ends
    guard = lease()
    with exchange(write=True, guard=guard, deadline=soon()):
        connection = Connection(near)
        connection.send(b"POST /Save HTTP/1.1\r\n")
        guard.lost = True
        connection.send(b'{"ActivityText": "x"}')
    assert arrived(far) == b'POST /Save HTTP/1.1\r\n{"ActivityText": "x"}'


def test_what_a_proxy_is_told_while_connecting_is_not_the_request(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, far = ends
    guard = lease()
    guard.lost = True
    with exchange(write=True, guard=guard, deadline=soon()) as ex:
        connection = Connection(near, proxy_connect=True)
        connection.connect()
        assert not ex.sent
        with pytest.raises(NotSent):
            connection.send(b"POST /Save HTTP/1.1\r\n")
    assert arrived(far).startswith(b"CONNECT ") and not ex.sent


def test_a_request_whose_deadline_passed_before_its_first_byte_is_not_sent(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, far = ends
    with exchange(write=True, guard=None, deadline=soon()) as ex:
        ex.cut()
        with pytest.raises(NotSent, match=r"^the request's deadline passed before it could be sent$"):
            Connection(near).send(b"POST /Save HTTP/1.1\r\n")
    assert arrived(far) == b"" and not ex.sent


def test_a_request_still_waiting_at_its_deadline_is_cut_and_says_so(
    ends: tuple[socket.socket, socket.socket],
) -> None:
    near, _ = ends
    near.settimeout(20)  # only if the watchdog never came
    with exchange(write=False, guard=None, deadline=soon(0.2)) as ex:
        Connection(near).send(b"GET /CustomerInfos HTTP/1.1\r\n")
        started = time.monotonic()
        answer = near.recv(1)  # the server never answers; the cut wakes the read
        waited = time.monotonic() - started
    assert answer == b"" and waited < 10
    assert ex.timed_out


def test_a_request_that_ended_is_not_cut_afterwards(ends: tuple[socket.socket, socket.socket]) -> None:
    near, far = ends
    with exchange(write=False, guard=None, deadline=soon()) as ex:
        Connection(near).send(b"GET / HTTP/1.1\r\n")
    ex.cut()
    assert not ex.timed_out
    near.sendall(b"the connection still works")
    assert arrived(far).endswith(b"the connection still works")


def test_each_thread_sees_its_innermost_exchange_and_the_outer_one_again_after_it() -> None:
    assert current() is None
    with exchange(write=False, guard=None, deadline=soon()) as outer:
        with exchange(write=True, guard=None, deadline=soon()) as inner:
            assert current() is inner
        assert current() is outer
    assert current() is None


def test_through_requests_a_refused_connection_is_known_not_to_have_sent_anything() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
    port = closed.getsockname()[1]
    session = requests.Session()
    session.mount("http://", TrackedAdapter(max_retries=0))
    guard = lease()
    try:
        with (
            exchange(write=True, guard=guard, deadline=soon()) as ex,
            pytest.raises(requests.ConnectionError),
        ):
            session.post(f"http://127.0.0.1:{port}/Save", data=b"{}", timeout=5)
    finally:
        session.close()
        closed.close()
    assert isinstance(ex.connection, TrackedHTTPConnection)
    assert not ex.sent and not guard.write_sent


def test_basic_auth_sends_any_password_in_utf8_and_never_shows_it() -> None:
    auth = Utf8BasicAuth("svc", "p\u20acss w\u00f6rd")
    request = requests.Request("GET", "https://pds.example.org/x.svc", auth=auth).prepare()
    scheme, token = request.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token) == "svc:p\u20acss w\u00f6rd".encode()
    assert repr(auth) == "Utf8BasicAuth(***)"
