"""Requests for the local mesh's tests: a bounded burst, or steady traffic at a rate."""

import asyncio
import threading
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Result:
    status: int
    latency_s: float
    instance: str


def burst(url, count, *, concurrency=20, headers=None, timeout_s=30.0):
    """``count`` GETs to ``url``, at most ``concurrency`` in flight, within ``timeout_s``."""
    return asyncio.run(_burst(url, count, concurrency, headers or {}, timeout_s))


async def _burst(url, count, concurrency, headers, timeout_s):
    results = []
    remaining = iter(range(count))
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker():
            for _ in remaining:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as answer:
                    await answer.read()
                    results.append(
                        Result(
                            answer.status,
                            time.perf_counter() - started,
                            answer.headers.get("x-httpbin-instance", ""),
                        )
                    )

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout_s)
    return results


class Traffic:
    """GETs to ``url`` at ``rate_per_s`` from a background thread, whatever their latency;
    ``answers`` holds (finished at, status, seconds) for each."""

    def __init__(self, url, headers, rate_per_s, concurrency=20):
        self.url, self.headers = url, headers
        self.rate_per_s, self.concurrency = rate_per_s, concurrency
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(10)

    def between(self, start, end):
        return [(status, seconds) for at, status, seconds in self.answers if start < at <= end]

    async def _run(self):
        period_s = self.concurrency / self.rate_per_s  # each worker's pace
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker(offset_s):
                next_at = time.monotonic() + offset_s
                while not self._stop.is_set():
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += period_s
                    started = time.monotonic()
                    async with session.get(self.url, headers=self.headers) as answer:
                        await answer.read()
                    self.answers.append((time.time(), answer.status, time.monotonic() - started))

            await asyncio.gather(
                *(worker(i * period_s / self.concurrency) for i in range(self.concurrency))
            )
