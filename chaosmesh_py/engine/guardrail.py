"""Guardrails: steady-state probes watched continuously while faults are live.

A guardrail is a Chaos Toolkit probe with a ``tolerance`` (the same shape as a steady-state
hypothesis probe), e.g. the error ratio of requests from users *outside* the targeted group.
While the method runs, every guardrail is run every ``interval_s``; the first one out of
tolerance (or failing to run: a guardrail that cannot see is treated as breached) calls
``on_breach`` once and the watch stops. The control wires ``on_breach`` to: remove every fault
of the run, then stop the experiment (see ``chaosmesh_py.control``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chaosmesh_py.errors import InvalidInput

logger = logging.getLogger("chaostoolkit")

MIN_INTERVAL_S = 0.1
MAX_CHECK_TIMES = 1000


@dataclass(frozen=True)
class Breach:
    probe: str
    reason: str
    at: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "reason": self.reason, "at": self.at}


def parse_guardrails(guardrails: object, interval_s: object) -> tuple[list[dict[str, Any]], float]:
    """Check the control's arguments before the run starts."""
    if not isinstance(guardrails, list) or not guardrails:
        raise InvalidInput("guardrails", "must be a non-empty list of probes with a tolerance")
    for index, probe in enumerate(guardrails):
        if not isinstance(probe, dict) or probe.get("type") != "probe" or "provider" not in probe:
            raise InvalidInput(f"guardrails[{index}]", "must be a Chaos Toolkit probe")
        if "tolerance" not in probe:
            raise InvalidInput(
                f"guardrails[{index}].tolerance",
                "is missing",
                "a guardrail is breached when its probe leaves its tolerance",
            )
    if isinstance(interval_s, bool) or not isinstance(interval_s, int | float):
        raise InvalidInput("guardrail_interval_s", f"must be a number, got {interval_s!r}")
    if interval_s < MIN_INTERVAL_S:
        raise InvalidInput("guardrail_interval_s", f"must be at least {MIN_INTERVAL_S} s")
    return guardrails, float(interval_s)


class Guardrail:
    """Runs the probes on an interval in a daemon thread until stopped or breached."""

    def __init__(
        self,
        probes: list[dict[str, Any]],
        interval_s: float,
        configuration: Mapping[str, Any] | None,
        secrets: Mapping[str, Any] | None,
        on_breach: Callable[[Breach], None],
    ) -> None:
        self.probes = probes
        self.interval_s = interval_s
        self._configuration = dict(configuration or {})
        self._secrets = dict(secrets or {})
        self._on_breach = on_breach
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="chaosmesh-guardrail", daemon=True)
        self.checks = 0
        # When each check ended (UTC, ISO 8601), for the report's timeline; bounded.
        self.checked_at: list[str] = []
        self.breach: Breach | None = None

    def start(self) -> Guardrail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval_s + 30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            breach = self._check()
            self.checks += 1
            if len(self.checked_at) < MAX_CHECK_TIMES:
                self.checked_at.append(datetime.now(UTC).isoformat(timespec="milliseconds"))
            if breach is not None:
                self.breach = breach
                logger.critical(f"chaosmesh: guardrail {breach.probe!r} breached: {breach.reason}")
                self._on_breach(breach)
                return
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _check(self) -> Breach | None:
        from chaoslib.activity import run_activity
        from chaoslib.hypothesis import within_tolerance

        for probe in self.probes:
            name = str(probe.get("name", probe["provider"].get("func", "guardrail")))
            try:
                value = run_activity(probe, self._configuration, self._secrets)
                held = within_tolerance(
                    probe["tolerance"], value, self._configuration, self._secrets
                )
            except Exception as error:  # a guardrail that cannot see must not let chaos go on
                return _breach(name, f"the probe failed: {error}")
            if not held:
                return _breach(name, f"{_short(value)} is outside {_short(probe['tolerance'])}")
        return None


def _breach(probe: str, reason: str) -> Breach:
    return Breach(probe, reason, datetime.now(UTC).isoformat(timespec="milliseconds"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"
