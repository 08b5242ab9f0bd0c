"""A bounded burst of requests for the local mesh's tests: status and latency of each."""

import asyncio
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
