"""Bookinfo's product page as a user gets it, over many page loads.

One load is not a steady state: under a 50 % fault it renders whole or not by a coin flip. So
the page is loaded ``pages`` times (``concurrency`` at a time, each load its own session, logged
in as ``user`` when one is given: the page then sends ``end-user: <user>`` downstream, which is
what header-narrowed faults match) and the report says how many rendered whole: HTTP 200 and
none of the messages Bookinfo prints when a dependency fails.

Used by the Chaos Toolkit probe ``chaosmesh_py.observe.probes.bookinfo_page`` (a ``range``
tolerance on ``whole_share``), by ``probes/bookinfo_page.py`` from a shell, and by the demo.
"""

from __future__ import annotations

import contextvars
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py import checks
from chaosmesh_py.errors import ChaosMeshError, InvalidInput

# What Bookinfo's productpage prints when a call behind it fails.
PAGE_ERRORS = {
    "reviews": "Error fetching product reviews",
    "ratings": "Ratings service is currently unavailable",
    "details": "Error fetching product details",
}
PAGE_PATH = "/productpage"
UNREACHABLE = "error"  # the status recorded for a load that got no answer
MAX_PAGES = 1000
MAX_CONCURRENCY = 100


class PageUnreachable(ChaosMeshError):
    """No load of the page got an answer: nothing about the steady state was measured."""


@dataclass(frozen=True)
class PageLoad:
    status: int | str
    errors: tuple[str, ...]  # the dependencies the page said failed
    seconds: float
    problem: str = ""  # why there was no answer

    @property
    def whole(self) -> bool:
        return self.status == 200 and not self.errors


@dataclass(frozen=True)
class PageReport:
    url: str
    user: str | None
    loads: tuple[PageLoad, ...]

    @property
    def whole_share(self) -> float:
        return sum(load.whole for load in self.loads) / len(self.loads)

    def to_json(self) -> dict[str, Any]:
        seconds = [load.seconds for load in self.loads]
        problems = [load.problem for load in self.loads if load.problem]
        report: dict[str, Any] = {
            "url": self.url,
            "user": self.user or "(anonymous)",
            "pages": len(self.loads),
            "whole": sum(load.whole for load in self.loads),
            "whole_share": round(self.whole_share, 4),
            "errors": dict(Counter(error for load in self.loads for error in load.errors)),
            "statuses": dict(Counter(str(load.status) for load in self.loads)),
            "seconds": {
                "median": round(statistics.median(seconds), 3),
                "max": round(max(seconds), 3),
            },
        }
        if problems:
            report["unreachable"] = f"{len(problems)} loads got no answer, e.g. {problems[0]}"
        # What a verdict quotes when the probe is out of tolerance (verdict.rules).
        report["summary"] = summary(report)
        return report


def check_page(
    base_url: str,
    user: str | None = None,
    pages: int = 20,
    concurrency: int = 20,
    timeout_s: float = 15.0,
) -> PageReport:
    """Load ``base_url``/productpage ``pages`` times; ``PageUnreachable`` when none answered."""
    base_url = _check_base_url(base_url)
    checks.whole("pages", pages, 1, MAX_PAGES)
    checks.whole("concurrency", concurrency, 1, MAX_CONCURRENCY)
    if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise InvalidInput("timeout_s", f"{timeout_s!r} is not a positive number of seconds")
    if user is not None and (not isinstance(user, str) or not user):
        raise InvalidInput("user", f"{user!r} is not a user name", "omit it for anonymous pages")
    with ThreadPoolExecutor(min(concurrency, pages)) as workers:
        # Each load in a copy of this thread's context: a tracing control's current span (Chaos
        # Toolkit's OpenTelemetry control) is then the parent of the load's, not lost at the
        # thread boundary.
        running = [
            workers.submit(contextvars.copy_context().run, _load, base_url, user, timeout_s)
            for _ in range(pages)
        ]
        loads = tuple(load.result() for load in running)
    if all(load.status == UNREACHABLE for load in loads):
        raise PageUnreachable(
            f"{base_url}{PAGE_PATH}: no answer to any of {pages} loads "
            f"({loads[0].problem}); is PRODUCTPAGE_URL right, and is Bookinfo's ingress up?"
        )
    return PageReport(base_url, user, loads)


def _load(base_url: str, user: str | None, timeout_s: float) -> PageLoad:
    import requests

    started = time.monotonic()
    try:
        with requests.Session() as session:
            if user:
                session.post(
                    f"{base_url}/login",
                    data={"username": user, "passwd": "x"},
                    timeout=timeout_s,
                )
            answer = session.get(f"{base_url}{PAGE_PATH}", timeout=timeout_s)
    except requests.RequestException as error:
        return PageLoad(UNREACHABLE, (), _since(started), f"{type(error).__name__}: {error}")
    errors = tuple(name for name, text in PAGE_ERRORS.items() if text in answer.text)
    return PageLoad(answer.status_code, errors, _since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


def _check_base_url(url: object) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise InvalidInput("url", f"{url!r} is not an http(s) URL", "e.g. http://localhost:9080")
    url = url.rstrip("/")
    if url.endswith(PAGE_PATH):
        raise InvalidInput(
            "url",
            f"{url} ends with {PAGE_PATH}",
            f"give Bookinfo's base URL, {url.removesuffix(PAGE_PATH)}: the probe adds {PAGE_PATH}",
        )
    return url


def summary(report: dict[str, Any]) -> str:
    """One line for people, from a report's JSON (as the journal holds it)."""
    line = f"{report['whole']} of {report['pages']} page loads whole for {report['user']}"
    failed = ", ".join(f"{name} on {count}" for name, count in report["errors"].items())
    if failed:
        line += f"; failed: {failed}"
    if "unreachable" in report:
        line += f"; {report['unreachable']}"
    return line + f" (median {report['seconds']['median']:.2f} s)"
