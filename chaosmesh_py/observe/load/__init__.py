"""The load probe: drive an HTTP target at a fixed rate or concurrency, report errors and latency.

    spec = LoadSpec("http://127.0.0.1:21500/get", duration_s=10, rate_per_s=200)
    result = run_load(spec)               # synchronous, as Chaos Toolkit calls probes
    result.to_json()["error_ratio"]       # checkable by a `range` tolerance (target: error_ratio)
    slo_met(result, max_error_ratio=0.01, max_p99_ms=250)

Two ways to drive the target:
- closed loop (``rate_per_s`` None): ``concurrency`` connections, each sending its next request
  as soon as the previous answer arrives; latency is measured from the moment it is sent.
- open loop (``rate_per_s``): request *i* is due at ``start + i / rate_per_s`` and its latency is
  measured from that due time, not from when it went out, so a stall that holds requests back
  shows in the latency instead of being hidden ("coordinated omission"). At most ``concurrency``
  are in flight; size it above rate x expected latency.

What counts as an error: a connection error or a timeout (status ``"error"``), and any answer
with a status of at least ``error_if_status_at_least`` (500 by default, so 4xx are answers the
target meant to give). Every request is in the latency histogram, up to when it ended: its
answer, its connection error, or its timeout.

Bounded always: at most 1,000,000 requests and 3,600 s of starting them, plus ``timeout_s`` for
the last ones in flight; Ctrl-C cancels at once. Memory does not grow with the number of
requests: latencies go into a fixed-size histogram (``LatencyHistogram``), never a list.

Speed: a minimal HTTP/1.1 client on event-loop callbacks (``client.py``), on uvloop's loop when
uvloop is installed. Through the local mesh on 2 cores, against ``wrk -t1 -c10``: this client
0.85-0.9x of wrk's requests/s on uvloop and 0.4-0.8x on the stdlib loop; aiohttp 0.4-0.6x
(``bench/load_probe.py`` measures all three in one run).

Layout: ``spec.py`` (LoadSpec, LoadResult, slo_met), ``histogram.py``, ``client.py`` (the
engine and the HTTP/1.1 connection); this module runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.load.client import Engine
from chaosmesh_py.observe.load.histogram import LatencyHistogram
from chaosmesh_py.observe.load.spec import (
    ERROR,
    MAX_CONCURRENCY,
    MAX_DURATION_S,
    MAX_RATE_PER_S,
    MAX_REQUESTS,
    MAX_TIMEOUT_S,
    LoadResult,
    LoadSpec,
    parse_url,
    slo_met,
)

__all__ = [
    "ERROR",
    "MAX_CONCURRENCY",
    "MAX_DURATION_S",
    "MAX_RATE_PER_S",
    "MAX_REQUESTS",
    "MAX_TIMEOUT_S",
    "LatencyHistogram",
    "LoadResult",
    "LoadSpec",
    "measure_load",
    "run_load",
    "slo_met",
]


def run_load(spec: LoadSpec) -> LoadResult:
    """Run the load and wait for it, in this thread's own event loop.

    When this thread already runs an event loop (which a synchronous call cannot share), the
    load runs in a worker thread with a loop of its own and this call waits for it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(measure_load(spec))
    return _run_in_thread(spec)


async def measure_load(spec: LoadSpec) -> LoadResult:
    """The load run as a coroutine, for callers that have an event loop already."""
    target = parse_url(spec.url)
    loop = asyncio.get_running_loop()
    try:
        resolved = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise InvalidInput("url", f"cannot resolve {target.host}: {error}") from error
    # Once, not per connection; every address, since "localhost" may list ::1 before 127.0.0.1.
    addresses = list(dict.fromkeys(str(found[4][0]) for found in resolved))
    engine = Engine(spec, target, addresses, loop)
    try:
        engine.start()
        await engine.done
    finally:
        engine.close()
    return engine.result()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed: it doubles the requests/s of the stdlib loop here."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run_in_thread(spec: LoadSpec) -> LoadResult:
    factory = _loop_factory() or asyncio.new_event_loop
    loop = factory()
    task = loop.create_task(measure_load(spec))
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = loop.run_until_complete(task)
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error
        finally:
            loop.close()

    # Under asyncio.run, Ctrl-C only cancels the caller's task: watch for that too.
    caller = asyncio.current_task()
    worker = threading.Thread(target=work, name="load-probe", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
            if caller is not None and caller.cancelling():
                raise asyncio.CancelledError
    except BaseException:
        # Ctrl-C in the caller: stop the load now, not when it would have ended.
        with contextlib.suppress(RuntimeError):  # the loop may have closed meanwhile
            loop.call_soon_threadsafe(task.cancel)
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    result: LoadResult = outcome["result"]
    return result
