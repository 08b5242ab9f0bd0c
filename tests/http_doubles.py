"""Real HTTP servers on 127.0.0.1 that stand in for what a game day announces to: a webhook or
Slack receiver, Grafana's annotations API, a server that hangs and one that trickles.

Each is a context manager serving from a thread of its own; leaving it stops the server and
closes every connection it still holds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text when it is not JSON
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Records every request; answers 200 ``{}`` unless ``answer`` says otherwise:
    ``answer(request) -> (status, body)``."""

    def __init__(self, answer: Any = None, tls: Any = None) -> None:
        """``tls``: ``chaosmesh_py.localmesh.credentials.Credentials`` to serve https with."""
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        self._answer = answer or (lambda request: (200, {}))
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                request = Received(self.command, self.path, dict(self.headers), body)
                # Recorded before answering: the client's next request cannot overtake it.
                with receiver.arrived:
                    receiver.received.append(request)
                    receiver.arrived.notify_all()
                status, answer = receiver._answer(request)
                out = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:
                self._handle()

            def do_PATCH(self) -> None:
                self._handle()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout_s)
            return list(self.received)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class GrafanaDouble(Receiver):
    """Grafana's annotations API as far as a game day uses it: ``POST /api/annotations`` and
    ``PATCH /api/annotations/<id>``, answering 401 without ``Authorization: Bearer <token>``
    and 400 to a body of the wrong shape, as Grafana does. ``annotations`` by id."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.annotations: dict[int, dict[str, Any]] = {}
        self.refusals: list[str] = []
        super().__init__(self._annotate)

    def _refuse(self, status: int, message: str) -> tuple[int, Any]:
        self.refusals.append(message)
        return status, {"message": message}

    def _annotate(self, request: Received) -> tuple[int, Any]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._refuse(401, "invalid API key")
        body = request.body
        if not isinstance(body, dict):
            return self._refuse(400, "bad request data")
        problem = _shape_problem(body, creating=request.method == "POST")
        if problem:
            return self._refuse(400, problem)
        if request.method == "POST" and request.path == "/api/annotations":
            number = len(self.annotations) + 1
            self.annotations[number] = dict(body)
            return 200, {"message": "Annotation added", "id": number}
        if request.method == "PATCH" and request.path.startswith("/api/annotations/"):
            number = int(request.path.rsplit("/", 1)[1])
            if number not in self.annotations:
                return self._refuse(404, "Annotation not found")
            self.annotations[number].update(body)
            return 200, {"message": "Annotation patched"}
        return self._refuse(404, "Not found")


_FIELDS = {"time": int, "timeEnd": int, "text": str, "tags": list, "dashboardUID": str}


def _shape_problem(body: dict[str, Any], creating: bool) -> str | None:
    unknown = set(body) - set(_FIELDS) - {"panelId"}
    if unknown:
        return f"unknown fields {sorted(unknown)}"
    for key, kind in _FIELDS.items():
        if key in body and (not isinstance(body[key], kind) or isinstance(body[key], bool)):
            return f"{key} must be {kind.__name__}"
    if "panelId" in body and not isinstance(body["panelId"], int):
        return "panelId must be int"
    if creating and ("text" not in body or "time" not in body):
        return "text and time are required"
    if not all(isinstance(tag, str) for tag in body.get("tags", [])):
        return "tags must be strings"
    if "timeEnd" in body and "time" in body and body["timeEnd"] < body["time"]:
        return "timeEnd before time"
    return None


class SilentServer:
    """Accepts connections and then does nothing: it reads nothing and answers nothing until
    it is stopped (``trickle`` sends a status line and then one header byte at a time)."""

    def __init__(self, trickle_interval_s: float | None = None, max_s: float = 60.0) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self._trickle_s = trickle_interval_s
        self._max_s = max_s
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        for connection in _connections(self._listener, self._stop):
            self.accepted += 1
            self._connections.append(connection)
            if self._trickle_s is not None:
                thread = threading.Thread(target=self._drip, args=(connection,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _drip(self, connection: socket.socket) -> None:
        """A valid status line, then a header that never ends, one byte per interval: each read
        gets a byte well within any per-read timeout. Bounded by ``max_s``."""
        ends = time.monotonic() + self._max_s
        try:
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self._stop.wait(self._trickle_s) and time.monotonic() < ends:
                connection.sendall(b"a")
        except OSError:
            return  # the client gave up, as it should

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for thread in self._threads:
            thread.join(5)
        for connection in self._connections:
            connection.close()
        self._listener.close()


class Proxy:
    """An HTTP proxy: ``CONNECT host:port`` tunnels (for https), and absolute-form requests
    forwarded as they are (for http). ``seen``: each request line with its Proxy-Authorization.
    With ``password``, a request without ``Basic user:password`` gets 407."""

    def __init__(self, password: str | None = None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self._password = password
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def _accept(self) -> None:
        for client in _connections(self._listener, self._stop):
            self._sockets.append(client)
            self._spawn(self._serve, client)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self, client: socket.socket) -> None:
        # A client that gives up mid-way (its deadline passed) is no error of the proxy's.
        with contextlib.suppress(OSError):
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        client.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        authorization = next(
            (
                line.split(":", 1)[1].strip()
                for line in lines[1:]
                if line.lower().startswith("proxy-authorization:")
            ),
            None,
        )
        self.seen.append((lines[0], authorization))
        if self._password is not None:
            expected = "Basic " + base64.b64encode(f"user:{self._password}".encode()).decode()
            if authorization != expected:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                client.close()
                return
        method, target = lines[0].split(" ")[:2]
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
        else:
            netloc = urlsplit(target).netloc
            host, port = netloc.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            rest = head
        self._sockets.append(upstream)
        if rest:
            upstream.sendall(rest)
        self._spawn(self._pipe, upstream, client)
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def __enter__(self) -> Self:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for sock in self._sockets:
            sock.close()
        self._listener.close()


def _connections(listener: socket.socket, stop: threading.Event) -> Iterator[socket.socket]:
    """Each connection ``listener`` accepts, until ``stop`` is set or it is closed."""
    listener.settimeout(0.1)
    while not stop.is_set():
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        yield connection


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
