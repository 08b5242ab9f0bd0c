"""One HTTP call that ends by its deadline, whatever the server does.

``requests`` (and ``http.client`` alone) bound each socket operation, not the call: a server
that accepts and trickles one byte a second keeps the caller waiting for as long as it likes.
Here a watchdog shuts the socket down when the deadline passes, waking whatever the call was
blocked on (connecting, the TLS handshake, the status line, a trickled body). Used for the game
day's notifications and Grafana annotations, which must never hold up an experiment.

Redirects are not followed and no proxy is used: a notification goes where the file says.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# An answer's body is read for an id or an error's first words, nothing more.
MAX_BODY_BYTES = 64 * 1024
_MAX_ERROR_TEXT = 200
_USER_AGENT = "chaosmesh-py-gameday"


class DeliveryFailed(Exception):
    """One call did not get a 2xx answer; the message says why, with nothing secret in it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def exchange(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout_s: float,
    verify_tls: bool = True,
) -> Answer:
    """One HTTP call that ends within ``timeout_s``, whatever the server does. Raises
    ``DeliveryFailed`` for anything but a 2xx answer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryFailed("the URL is not http(s)://host/...")
    try:
        port = parts.port
    except ValueError as error:
        raise DeliveryFailed(f"the URL's port is not a number: {error}") from None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if not verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout_s, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout_s)
    sent = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
    if body is not None:
        sent["Content-Type"] = "application/json"
    if parts.username is not None:
        pair = f"{parts.username}:{parts.password or ''}".encode()
        sent["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    for name, value in headers.items():
        for default in [key for key in sent if key.lower() == name.lower()]:
            del sent[default]
        sent[name] = value
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    watchdog = _Watchdog(connection, timeout_s)
    try:
        connection.connect()
        watchdog.check()
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read(MAX_BODY_BYTES)
        watchdog.check()
    except (OSError, http.client.HTTPException, ValueError) as error:
        if watchdog.fired:
            raise DeliveryFailed(f"no complete answer within {timeout_s:g} s") from None
        raise DeliveryFailed(_describe(error, timeout_s)) from None
    finally:
        watchdog.cancel()
        connection.close()
    if not 200 <= response.status < 300:
        text = data.decode("utf-8", "replace").strip()
        if len(text) > _MAX_ERROR_TEXT:
            text = text[:_MAX_ERROR_TEXT] + "..."
        redirect = " (redirects are not followed)" if 300 <= response.status < 400 else ""
        detail = f": {text}" if text else ""
        raise DeliveryFailed(
            f"HTTP {response.status} {response.reason}{redirect}{detail}", response.status
        )
    return Answer(response.status, data)


class _Watchdog:
    """Shuts a connection's socket down when its deadline passes, waking whatever read or
    write is blocked on it; per-operation socket timeouts alone let a trickling server hold a
    call forever."""

    def __init__(self, connection: http.client.HTTPConnection, timeout_s: float) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.fired = False
        self._done = False
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sock = self._connection.sock
            if sock is not None:
                # The plain socket's shutdown, also under TLS: SSLSocket's own would drop its
                # TLS state under the reader's feet. Already closed: the call is ending anyway.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def check(self) -> None:
        """Raise when the deadline passed (e.g. while connecting, before there was a socket)."""
        if self.fired:
            raise TimeoutError("deadline passed")

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


def _describe(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"the host name does not resolve ({error.strerror})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate failed verification ({error.verify_message})"
    if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError):
        return "the server closed the connection without answering"
    return f"{type(error).__name__}: {error}"
