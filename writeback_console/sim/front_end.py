"""What answers instead of the service when something before it fails: the pages IIS or a gateway in
front of Personify360 sends (503 maintenance, 429, 502, 504, a maintenance page with 200, the 401 page).
They carry none of the service's headers, as in production."""

from __future__ import annotations

from writeback_console.sim.faults import FaultKind

UNAUTHORIZED_PAGE = (
    b"<!DOCTYPE html><html><head><title>401 - Unauthorized: Access is denied due to invalid credentials."
    b"</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2>"
    b"<p>You do not have permission to view this directory or page using the credentials that you "
    b"supplied.</p></body></html>"
)


def _html_page(title: str, text: str) -> bytes:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{text}</p></body></html>"
    ).encode()


#: What the front end answers instead of the service, by fault: status and HTML page.
FRONT_END_PAGES: dict[FaultKind, tuple[int, bytes]] = {
    FaultKind.UNAVAILABLE: (
        503,
        _html_page(
            "Service Unavailable",
            "Personify360 is down for scheduled maintenance. Please try again later.",
        ),
    ),
    FaultKind.THROTTLED: (
        429,
        _html_page("Too Many Requests", "The request rate limit was exceeded. Slow down and retry later."),
    ),
    FaultKind.BAD_GATEWAY: (
        502,
        _html_page(
            "502 - Web server received an invalid response while acting as a gateway or proxy server.",
            "There is a problem with the page you are looking for, and it cannot be displayed.",
        ),
    ),
    FaultKind.GATEWAY_TIMEOUT: (
        504,
        _html_page(
            "504 - Gateway Timeout",
            "The server, while acting as a gateway or proxy, did not receive a timely response.",
        ),
    ),
    FaultKind.HTML_PAGE: (
        200,
        _html_page(
            "Personify360 - Site Maintenance",
            "We are upgrading Personify360. The site will be back shortly; thank you for your patience.",
        ),
    ),
}


RETRY_AFTER_KINDS = frozenset({FaultKind.UNAVAILABLE, FaultKind.THROTTLED})
