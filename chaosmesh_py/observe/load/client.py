"""The load generator: a minimal HTTP/1.1 client driven by event-loop callbacks.

``Engine`` decides when each request starts (closed or open loop) and collects what each saw;
``_Connection`` is one keep-alive connection reading answers: Content-Length, chunked and
read-to-close bodies, interim 1xx answers, no pipelining. Per request there is no task, future
or timer, only the protocol callbacks: that is what makes it fast enough to compare with wrk.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import cast

from chaosmesh_py.observe.load.histogram import LatencyHistogram
from chaosmesh_py.observe.load.spec import (
    ERROR,
    MAX_DURATION_S,
    MAX_REQUESTS,
    LoadResult,
    LoadSpec,
    Target,
)

_MAX_HEAD_BYTES = 64 * 1024

# How much earlier than due an open-loop request may go out: the event loop wakes in whole
# milliseconds, so waiting for the exact due time would add up to 1 ms of timer lag to each.
_EARLY_S = 0.001


class Engine:
    """Runs one load: starts requests on connections, collects what they saw.

    Everything happens in callbacks of the event loop, with no task, future or timer per
    request: a connection that completes an answer hands it here and gets its next request at
    once. Timeouts are found by one sweep over the connections every few milliseconds.
    """

    def __init__(
        self,
        spec: LoadSpec,
        target: Target,
        addresses: list[str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.spec = spec
        self.target = target
        self.addresses = addresses  # the one that last connected first
        self.loop = loop
        self.request = request_bytes(spec, target)
        self.head_only = spec.method == "HEAD"
        self.tls = ssl.create_default_context() if target.tls else None
        self.limit = spec.requests if spec.requests is not None else MAX_REQUESTS
        self.rate_per_s = spec.rate_per_s
        self.histogram = LatencyHistogram()
        self.statuses: dict[int | str, int] = {}
        self.errors = 0
        self.sent = 0  # requests started, those that never connected included
        self.in_flight = 0
        self.connections: set[_Connection] = set()
        self.idle: list[_Connection] = []  # open loop: connected, waiting for a due request
        self.done: asyncio.Future[None] = loop.create_future()
        self.started_at = 0.0
        self.ended_at = 0.0
        self.deadline = 0.0
        self.pump_timer: asyncio.TimerHandle | None = None
        self.sweep_timer: asyncio.TimerHandle | None = None

    # -- starting requests -------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.perf_counter()
        self.deadline = self.started_at + (self.spec.duration_s or MAX_DURATION_S)
        self._sweep()
        if self.rate_per_s is None:
            for _ in range(min(self.spec.concurrency, self.limit)):
                self._begin(None, self.started_at)
        else:
            self._pump()

    def _may_start(self, now: float) -> bool:
        return self.sent < self.limit and now < self.deadline

    def _begin(self, connection: _Connection | None, started: float) -> None:
        """Start one request, timed from ``started``: on ``connection``, or on a new one."""
        self.sent += 1
        self.in_flight += 1
        if connection is not None:
            connection.send(started)
            return
        connection = _Connection(self)
        connection.started = started
        self.connections.add(connection)
        connection.connecting = self.loop.create_task(self._connect(connection))

    async def _connect(self, connection: _Connection) -> None:
        for address in list(self.addresses):
            try:
                await self.loop.create_connection(
                    lambda: connection,
                    address,
                    self.target.port,
                    ssl=self.tls,
                    server_hostname=self.target.host if self.tls else None,
                )
            except OSError:  # ssl.SSLError included
                continue
            if address != self.addresses[0]:
                self.addresses.remove(address)
                self.addresses.insert(0, address)
            connection.connecting = None
            connection.send(connection.started)
            return
        connection.connecting = None
        self.failed(connection)

    def _pump(self) -> None:
        """Open loop: start every request that is due, then sleep until the next one is."""
        assert self.rate_per_s is not None
        self.pump_timer = None
        now = time.perf_counter()
        while self._may_start(now):
            due = self.started_at + self.sent / self.rate_per_s
            if due >= self.deadline:
                break
            if due > now + _EARLY_S:
                self.pump_timer = self.loop.call_later(due - now - _EARLY_S, self._pump)
                return
            if self.idle:
                self._begin(self.idle.pop(), min(due, now))
            elif len(self.connections) < self.spec.concurrency:
                self._begin(None, min(due, now))
            else:
                return  # all busy: the next request to end calls the pump again
        self._check_done()

    # -- what connections report -------------------------------------------------------------

    def answered(self, connection: _Connection, status: int, keep_alive: bool) -> None:
        now = time.perf_counter()
        self.histogram.record(now - connection.started)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= self.spec.error_if_status_at_least:
            self.errors += 1
        connection.started = 0.0
        if keep_alive:
            self._next(connection, now)
        else:
            self._retire(connection)
            self._next(None, now)

    def failed(self, connection: _Connection) -> None:
        """The request on ``connection`` ended in a connection error, a timeout or bad HTTP."""
        now = time.perf_counter()
        self.histogram.record(now - connection.started)
        self.statuses[ERROR] = self.statuses.get(ERROR, 0) + 1
        self.errors += 1
        connection.started = 0.0
        self._retire(connection)
        self._next(None, now)

    def lost(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)

    def _retire(self, connection: _Connection) -> None:
        # Forgotten at once, not when the loop reports it closed: the pump counts connections.
        self.lost(connection)
        connection.close()

    def _next(self, connection: _Connection | None, now: float) -> None:
        """A request ended; ``connection`` is free for another (None: it cannot be reused)."""
        self.in_flight -= 1
        if self.rate_per_s is None:
            if self._may_start(now):
                self._begin(connection, now)
                return
        elif connection is not None and self._may_start(now):
            self.idle.append(connection)
            connection = None
            if self.pump_timer is None:  # the pump may be waiting for a free connection
                self._pump()
            return
        elif self.pump_timer is None and self._may_start(now):
            self._pump()
            return
        if connection is not None:
            self._retire(connection)
        self._check_done()

    def _check_done(self) -> None:
        if self.in_flight == 0 and self.pump_timer is None and not self.done.done():
            self.ended_at = time.perf_counter()
            self.done.set_result(None)

    def _sweep(self) -> None:
        """Fail every request past its timeout: one timer for them all."""
        now = time.perf_counter()
        for connection in list(self.connections):
            if connection.started and now - connection.started >= self.spec.timeout_s:
                self.failed(connection)
        interval = min(0.05, max(0.001, self.spec.timeout_s / 20))
        self.sweep_timer = self.loop.call_later(interval, self._sweep)

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        for timer in (self.pump_timer, self.sweep_timer):
            if timer is not None:
                timer.cancel()
        for connection in list(self.connections):
            connection.started = 0.0
            connection.close()
        self.connections.clear()
        self.idle.clear()

    def result(self) -> LoadResult:
        count = self.histogram.count
        duration_s = max(self.ended_at - self.started_at, 1e-9)
        latency_s = {
            "p50": self.histogram.percentile(0.50),
            "p90": self.histogram.percentile(0.90),
            "p99": self.histogram.percentile(0.99),
            "max": self.histogram.max_s,
            "mean": self.histogram.mean(),
        }
        return LoadResult(
            requests=count,
            errors=self.errors,
            error_ratio=self.errors / count if count else 0.0,
            statuses={str(status): n for status, n in sorted(self.statuses.items(), key=str)},
            latency_ms={name: round(1000 * value, 3) for name, value in latency_s.items()},
            duration_s=round(duration_s, 3),
            throughput_per_s=round(count / duration_s, 1),
        )


def request_bytes(spec: LoadSpec, target: Target) -> bytes:
    headers = {"Host": target.host_header, "User-Agent": "chaosmesh-load", "Accept": "*/*"}
    # The caller's own values win, Host included (a sidecar routes by it).
    given = {name.lower(): name for name in spec.headers}
    headers = {name: value for name, value in headers.items() if name.lower() not in given}
    headers.update(spec.headers)
    if spec.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = "0"
    lines = [f"{spec.method} {target.path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Where a connection is in reading an answer.
_HEAD, _LENGTH, _CHUNKED, _TO_CLOSE = range(4)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, reading answers as they arrive, one at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.started = 0.0  # when the request in flight started; 0.0 when there is none
        self.connecting: asyncio.Task[None] | None = None
        self._mode = _HEAD
        self._buffer = b""
        self._remaining = 0  # body bytes left (_LENGTH), or of the current chunk and its CRLF
        self._in_trailers = False
        self._status = 0
        self._keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, started: float) -> None:
        self.started = started
        self._mode = _HEAD
        self._buffer = b""
        assert self.transport is not None
        self.transport.write(self.engine.request)

    def close(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.transport is not None:
            self.transport.abort()  # nothing to flush: we only ever wait for answers
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.engine.lost(self)
        if self.started:
            if self._mode == _TO_CLOSE:  # the end of the body is the end of the connection
                self._answered()
            else:
                self.engine.failed(self)

    def data_received(self, data: bytes) -> None:
        if not self.started:  # nothing asked: a broken or hostile server
            self.close()
            return
        if self._mode == _LENGTH:
            self._remaining -= len(data)
            if self._remaining <= 0:
                self._answered()
            return
        if self._mode == _TO_CLOSE:
            return
        buffer = self._buffer + data if self._buffer else data
        if self._mode == _HEAD:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD_BYTES:
                    self.engine.failed(self)
                else:
                    self._buffer = buffer
                return
            if not self._read_head(buffer[:end]):
                self.engine.failed(self)
                return
            buffer = buffer[end + 4 :]
            if self._mode == _HEAD:  # an interim 1xx answer: the real one follows
                self._buffer = b""
                if buffer:
                    self.data_received(buffer)
                return
            if self._mode == _LENGTH:
                self._remaining -= len(buffer)
                if self._remaining <= 0:
                    self._answered()
                return
            if self._mode == _TO_CLOSE:
                return
        self._read_chunks(buffer)

    def _read_head(self, head: bytes) -> bool:
        """Parse the status line and headers; set how the body ends. False when malformed."""
        lines = head.lower().split(b"\r\n")
        if not lines[0].startswith(b"http/1.") or len(lines[0]) < 12:
            return False
        try:
            status = int(lines[0][9:12])
        except ValueError:
            return False
        if 100 <= status < 200 and status != 101:
            return True  # stay in _HEAD
        length = -1
        chunked = False
        keep_alive = lines[0][7:8] == b"1"  # HTTP/1.1 keeps alive by default, 1.0 does not
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return False
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                keep_alive = b"close" not in value and (keep_alive or b"keep-alive" in value)
        self._status = status
        self._keep_alive = keep_alive
        if self.engine.head_only or status in (204, 304):
            self._mode, self._remaining = _LENGTH, 0
        elif chunked:
            self._mode, self._remaining, self._in_trailers = _CHUNKED, 0, False
        elif length >= 0:
            self._mode, self._remaining = _LENGTH, length
        else:
            self._mode, self._keep_alive = _TO_CLOSE, False
        return True

    def _read_chunks(self, buffer: bytes) -> None:
        position = 0
        while True:
            if self._remaining:
                taken = min(self._remaining, len(buffer) - position)
                position += taken
                self._remaining -= taken
                if self._remaining:
                    break
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            line = buffer[position:line_end]
            position = line_end + 2
            if self._in_trailers:
                if not line:
                    self._answered()
                    return
                continue
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                self.engine.failed(self)
                return
            if size == 0:
                self._in_trailers = True
            else:
                self._remaining = size + 2  # the data and its CRLF
        self._buffer = buffer[position:]
        if len(self._buffer) > _MAX_HEAD_BYTES:
            self.engine.failed(self)

    def _answered(self) -> None:
        self._mode = _HEAD
        self._buffer = b""
        self.engine.answered(self, self._status, self._keep_alive)
