"""One HTTP call that ends by its deadline, whatever the server does.

``requests`` (and ``http.client`` alone) bound each socket operation, not the call: a server
that accepts and trickles one byte a second keeps the caller waiting for as long as it likes.
Here a watchdog shuts the socket down when the deadline passes, waking whatever the call was
blocked on (connecting, the TLS handshake, the status line, a trickled body). Used for the game
day's notifications and Grafana annotations, which must never hold up an experiment.

Redirects are not followed: a notification goes where the file says, through the proxy the
environment names for it (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), as ``requests`` would.
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
from urllib.parse import SplitResult, urlsplit

# An answer's body is read for an id or an error's words, nothing more. An error keeps the
# whole of what was read: the caller hides secrets in it before shortening it (shortened first,
# a secret cut in two would no longer be recognised).
MAX_BODY_BYTES = 64 * 1024
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


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # Proxy-Authorization, from credentials in the proxy's URL


def exchange(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout_s: float,
    verify_tls: bool = True,
    ca_file: str | None = None,
    proxy: str | None = None,
) -> Answer:
    """One HTTP call that ends within ``timeout_s``, whatever the server does. Raises
    ``DeliveryFailed`` for anything but a 2xx answer. ``ca_file``: the CAs to trust instead of
    the system's; ``proxy``: an ``http://[user:password@]host:port`` proxy to go through (a
    CONNECT tunnel for https)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryFailed("the URL is not http(s)://host/...")
    try:
        port = parts.port
    except ValueError as error:
        raise DeliveryFailed(f"the URL's port is not a number: {error}") from None
    via = _proxy(proxy) if proxy else None
    sent = _headers(parts, headers, json_body=body is not None)
    try:
        context = _tls(verify_tls, ca_file) if parts.scheme == "https" else None
    except (OSError, ValueError) as error:
        raise DeliveryFailed(f"the CA file {ca_file} cannot be used: {error}") from None
    connection, path = _connection(parts, port, via, timeout_s, context)
    if via is not None and via.authorization and parts.scheme == "http":
        sent["Proxy-Authorization"] = via.authorization
    watchdog = _Watchdog(connection, timeout_s)
    connected = False
    try:
        connection.connect()  # TCP, then the proxy's tunnel and TLS when there are
        watchdog.check()
        connected = True
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read(MAX_BODY_BYTES)
        watchdog.check()
    except (OSError, http.client.HTTPException, ValueError) as error:
        through = f" (through the proxy {via.host}:{via.port})" if via else ""
        # Each socket operation's own timeout is the call's: either way the deadline passed.
        if watchdog.fired or isinstance(error, TimeoutError):
            seconds = f"{round(timeout_s, 1):g} s"
            if connected:
                raise DeliveryFailed(f"no complete answer within {seconds}{through}") from None
            raise DeliveryFailed(f"could not connect within {seconds}{through}") from None
        raise DeliveryFailed(_describe(error) + through) from None
    finally:
        watchdog.cancel()
        connection.close()
    if not 200 <= response.status < 300:
        text = data.decode("utf-8", "replace").strip()
        redirect = " (redirects are not followed)" if 300 <= response.status < 400 else ""
        detail = f": {text}" if text else ""
        raise DeliveryFailed(
            f"HTTP {response.status} {response.reason}{redirect}{detail}", response.status
        )
    return Answer(response.status, data)


def _headers(parts: SplitResult, given: Mapping[str, str], json_body: bool) -> dict[str, str]:
    """Ours, then the file's (which win, names compared as HTTP does, without case)."""
    sent = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
    if json_body:
        sent["Content-Type"] = "application/json"
    if parts.username is not None:
        sent["Authorization"] = _basic(parts.username, parts.password)
    for name, value in given.items():
        for default in [key for key in sent if key.lower() == name.lower()]:
            del sent[default]
        sent[name] = value
    return sent


def _tls(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _connection(
    parts: SplitResult,
    port: int | None,
    via: _Proxy | None,
    timeout_s: float,
    context: ssl.SSLContext | None,
) -> tuple[http.client.HTTPConnection, str]:
    """The connection to open for ``parts``, directly or through ``via``, and the path to ask."""
    assert parts.hostname is not None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        if via is None:
            connection = http.client.HTTPSConnection(
                parts.hostname, port, timeout=timeout_s, context=context
            )
        else:
            connection = http.client.HTTPSConnection(
                via.host, via.port, timeout=timeout_s, context=context
            )
            tunnel = {"Proxy-Authorization": via.authorization} if via.authorization else None
            connection.set_tunnel(parts.hostname, port, headers=tunnel)
    elif via is None:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout_s)
    else:
        connection = http.client.HTTPConnection(via.host, via.port, timeout=timeout_s)
        # A forward proxy is asked for the whole URL (credentials left out of it).
        path = f"http://{parts.netloc.rpartition('@')[2]}{path}"
    return connection, path


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy ``environ`` names for ``url`` (``https_proxy`` / ``http_proxy``, either case,
    lower first, as curl and requests read them), or None where ``no_proxy`` exempts its host
    (``*``, a host, a domain suffix such as ``.corp`` or ``corp``, optionally ``:port``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    proxy = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
    if not proxy or not parts.hostname:
        return None
    exempt = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return proxy  # exchange() says what is wrong with the port
    for entry in (item.strip().lower() for item in exempt.split(",")):
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        suffix = name.lstrip(".")
        if name == "*" or (suffix and (host == suffix or host.endswith("." + suffix))):
            return None
    return proxy


def _proxy(proxy: str) -> _Proxy:
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        port = parts.port or 80
    except ValueError:
        port = 0
    if parts.scheme != "http" or not parts.hostname or not port:
        raise DeliveryFailed("the proxy is not http://host:port (HTTPS_PROXY / HTTP_PROXY)")
    credentials = _basic(parts.username, parts.password) if parts.username else None
    return _Proxy(parts.hostname, port, credentials)


def _basic(user: str | None, password: str | None) -> str:
    pair = f"{user or ''}:{password or ''}".encode()
    return "Basic " + base64.b64encode(pair).decode()


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


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"the host name does not resolve ({error.strerror})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate failed verification ({error.verify_message})"
    if isinstance(error, ValueError) and str(error).startswith("Invalid header"):
        # Never the value itself: it may be a token.
        return "a header name or value holds a line break or another control character"
    if str(error).startswith("Tunnel connection failed"):
        return f"the proxy refused the tunnel: {str(error).partition(': ')[2]}"
    if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError):
        return "the server closed the connection without answering"
    return f"{type(error).__name__}: {error}"
