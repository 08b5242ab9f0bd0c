"""Injectable API faults: what a flaky or contended apiserver does to a client.

An `ApiFault` matches HTTP requests by method and a path regex and applies to the next `times`
of them, then is used up. The first pending fault that matches a request applies to it (one per
request). Direct calls on `ApiServer` (create/patch/...) are never faulted.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from chaosmesh_py.localmesh.apiserver.errors import REASON_BY_CODE, ApiError

_DEFAULT_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted,"
    " but may still be processing the request",
}


@dataclass(frozen=True)
class ApiFault:
    """One fault to inject into the next `times` matching HTTP requests.

    method: HTTP method to match ("PATCH"); None matches any method.
    path: regex searched (`re.search`) in the URL path without the query; "" matches every path.
    times: how many matching requests it applies to before it is used up.
    status: answer this HTTP status with a Kubernetes Status body, without touching the state
        (e.g. 503, 429, 500, 504, or 403/404/409 to imitate those answers).
    retry_after_s: with `status`, send `Retry-After: <n>` and `details.retryAfterSeconds`.
    delay_s: wait this long before handling the request (combines with every other kind).
    drop: "before" closes the connection without an answer and without applying the request;
        "after" applies the request, then closes the connection without an answer.
    concurrent_write: called with the ApiServer just before the request is handled, as another
        writer would (e.g. it patches the object, so this request's resourceVersion is stale).
    message: the Status message for `status` (a default per code otherwise).
    """

    method: str | None = None
    path: str = ""
    times: int = 1
    status: int | None = None
    retry_after_s: float | None = None
    delay_s: float = 0.0
    drop: Literal["before", "after"] | None = None
    concurrent_write: Callable[[Any], None] | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.method is not None:
            object.__setattr__(self, "method", self.method.upper())
        try:
            re.compile(self.path)  # fail at injection, not at the first request
        except re.error as error:
            raise ValueError(f"path is not a regular expression: {error}") from error
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.drop not in (None, "before", "after"):
            raise ValueError('drop must be "before", "after" or None')
        if self.status is not None and self.drop is not None:
            raise ValueError("a fault answers a status or drops the connection, not both")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.retry_after_s is not None and self.status is None:
            raise ValueError("retry_after_s needs a status")
        if self.delay_s < 0:
            raise ValueError("delay_s must not be negative")

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(
            self.path, path
        ) is not None

    def error(self) -> ApiError:
        """The Status error this fault answers (only meaningful when `status` is set)."""
        status = self.status or 500
        message = self.message or _DEFAULT_MESSAGES.get(status, f"injected fault: HTTP {status}")
        # Retry-After carries whole seconds; round up so a client never retries too early.
        seconds = math.ceil(self.retry_after_s) if self.retry_after_s is not None else None
        details = {"retryAfterSeconds": seconds} if seconds is not None else None
        reason = REASON_BY_CODE.get(status, "InternalError")
        return ApiError(status, reason, message, details, seconds)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiFault:
        """Build a fault from JSON (the HTTP control endpoint); no `concurrent_write` there."""
        allowed = {
            "method",
            "path",
            "times",
            "status",
            "retry_after_s",
            "delay_s",
            "drop",
            "message",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["concurrent_write"] = self.concurrent_write is not None
        return data


class FaultPlan:
    """The pending faults, each with the number of requests it still applies to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = []  # [fault, remaining]

    def inject(self, fault: ApiFault) -> None:
        with self._lock:
            self._pending.append([fault, fault.times])

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[ApiFault]:
        with self._lock:
            return [fault for fault, _ in self._pending]

    def take(self, method: str, path: str) -> ApiFault | None:
        """The fault that applies to this request, if any, counting it as used once."""
        with self._lock:
            for entry in self._pending:
                fault: ApiFault = entry[0]
                if fault.matches(method, path):
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._pending.remove(entry)
                    return fault
        return None
