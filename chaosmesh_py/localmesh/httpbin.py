"""A small httpbin: the target of Istio's circuit-breaking and retry tasks, on the local mesh.

Endpoints as httpbin.org names them: ``/status/<code>`` answers that status, and
``/status/<code>:<weight>,<code>:<weight>,...`` one of them drawn at random by weight (no weights:
equally likely), as httpbin.org does (``/status/200:0.5,503:0.5`` fails half the requests);
``/delay/<s>`` answers after ``s`` seconds (at most 10), ``/get`` and ``/headers`` echo the
request headers. Every answer names the instance (``x-httpbin-instance``), so tests can tell
which endpoint served a request, and (not in httpbin.org) repeats the ``x-envoy-attempt-count``
the caller's sidecar sent as ``x-httpbin-attempt-count``: on which attempt this answer came.
A threaded stdlib server with TCP_NODELAY: requests held by ``/delay`` must not block others,
and a 40 ms Nagle stall would distort every latency measured through it.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_DELAY_S = 10.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        try:
            if parts[0] == "status" and len(parts) == 2:
                status = weighted_status(parts[1])
                self._answer(status, {"status": status})
            elif parts[0] == "delay" and len(parts) == 2:
                delay_s = min(float(parts[1]), MAX_DELAY_S)
                time.sleep(delay_s)
                self._answer(200, {"delay_s": delay_s})
            elif parts[0] in ("get", "headers", "anything", ""):
                self._answer(200, {"headers": dict(self.headers.items()), "url": self.path})
            else:
                self._answer(404, {"error": f"no such endpoint: {self.path}"})
        except ValueError:
            self._answer(400, {"error": f"bad number in {self.path}"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps({**body, "instance": self.server.instance}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-httpbin-instance", self.server.instance)
        attempt = self.headers.get("x-envoy-attempt-count")
        if attempt is not None:
            self.send_header("x-httpbin-attempt-count", attempt)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sidecar's access log is the one that matters."""


def weighted_status(codes: str) -> int:
    """One status of httpbin's ``200:0.5,503:0.5`` (or ``200,503``), drawn by weight; a bad
    number raises ValueError (answered 400)."""
    choices = [choice.partition(":") for choice in codes.split(",")]
    statuses = [int(code) for code, _, _ in choices]
    weights = [float(weight) if weight else 1.0 for _, _, weight in choices]
    if len(statuses) == 1:
        return statuses[0]
    if any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise ValueError(codes)
    return random.choices(statuses, weights)[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, instance: str) -> None:
        self.instance = instance
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (load generators do at the end of a run)."""

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.connections_lock:
            self.connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Reset every open connection, as a killed process's connections are."""
        with self.connections_lock:
            open_now = list(self.connections)
            self.connections.clear()
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Httpbin:
    """One httpbin instance on 127.0.0.1:``port``, served from a daemon thread."""

    def __init__(self, port: int, instance: str) -> None:
        self._server = _Server(port, instance)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"httpbin-{instance}", daemon=True
        )

    def start(self) -> Httpbin:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop as a killed pod stops: the port closes and open connections are cut."""
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
