"""Guardrails: steady-state probes watched continuously while faults are live.

A guardrail is a Chaos Toolkit probe with a ``tolerance`` (the same shape as a steady-state
hypothesis probe), e.g. the error ratio of requests from users *outside* the targeted group.
While the method runs, every guardrail is run every ``interval_s``; the first one out of
tolerance (or failing to run: a guardrail that cannot see is treated as breached) calls
``on_breach`` once and the watch stops. The control wires ``on_breach`` to: remove every fault
of the run, then stop the experiment (see ``chaosmesh_py.control``).

``Watch`` is the machinery under it, for any checks: each a function saying whether its value
is out of bounds, with a hold duration (``hold_s``): a check breaches only once it has been out
for that long without a break, as a Prometheus alert's ``for`` does. A game day's abort
conditions (``chaosmesh_py.gameday.runner``) are PromQL checks on the same machinery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chaosmesh_py.errors import InvalidInput

logger = logging.getLogger("chaostoolkit")

MIN_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Breach:
    probe: str
    reason: str
    at: str  # ISO 8601, UTC
    value: Any = None  # what the check saw last, when it could see

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "reason": self.reason, "at": self.at}


@dataclass(frozen=True)
class Observation:
    """One look by a check: ``out`` of bounds or not, what it saw, and why it is out."""

    out: bool
    value: Any = None
    reason: str = ""


@dataclass(frozen=True)
class Check:
    """A named check run by a ``Watch``; out for ``hold_s`` in a row is a breach."""

    name: str
    observe: Callable[[], Observation]
    hold_s: float = 0.0


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


class Watch:
    """Runs checks on an interval in a daemon thread until stopped or breached.

    A check that raises is out of bounds (a watch that cannot see must not let chaos go on),
    held like any other: one failed scrape does not breach a check held for 30 s.
    """

    def __init__(
        self,
        checks: Sequence[Check],
        interval_s: float,
        on_breach: Callable[[Breach], None],
        what: str = "check",
    ) -> None:
        self.interval_s = interval_s
        self.what = what  # how the log names a check: "guardrail", "abort condition"
        self._checks = list(checks)
        self._on_breach = on_breach
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name=f"chaosmesh-{what.replace(' ', '-')}", daemon=True
        )
        self._out_since: dict[str, float] = {}
        self.checks = 0
        self.breach: Breach | None = None

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval_s + 30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            breach = self._look(started)
            self.checks += 1
            if breach is not None:
                self.breach = breach
                logger.critical(
                    f"chaosmesh: {self.what} {breach.probe!r} breached: {breach.reason}"
                )
                self._on_breach(breach)
                return
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _look(self, now: float) -> Breach | None:
        for check in self._checks:
            try:
                seen = check.observe()
            except Exception as error:  # a check that cannot see must not let chaos go on
                seen = Observation(True, None, f"the check failed: {error}")
            if not seen.out:
                self._out_since.pop(check.name, None)
                continue
            since = self._out_since.setdefault(check.name, now)
            if now - since >= check.hold_s:
                held = f" for {now - since:.1f} s" if check.hold_s else ""
                return Breach(
                    check.name,
                    seen.reason + held,
                    datetime.now(UTC).isoformat(timespec="milliseconds"),
                    seen.value,
                )
        return None


class Guardrail(Watch):
    """Chaos Toolkit probes with tolerances, watched while the method runs."""

    def __init__(
        self,
        probes: list[dict[str, Any]],
        interval_s: float,
        configuration: Mapping[str, Any] | None,
        secrets: Mapping[str, Any] | None,
        on_breach: Callable[[Breach], None],
    ) -> None:
        self.probes = probes
        self._configuration = dict(configuration or {})
        self._secrets = dict(secrets or {})
        checks = [Check(_probe_name(probe), self._observer(probe)) for probe in probes]
        super().__init__(checks, interval_s, on_breach, what="guardrail")

    def _observer(self, probe: dict[str, Any]) -> Callable[[], Observation]:
        def observe() -> Observation:
            from chaoslib.activity import run_activity
            from chaoslib.hypothesis import within_tolerance

            try:
                value = run_activity(probe, self._configuration, self._secrets)
                held = within_tolerance(
                    probe["tolerance"], value, self._configuration, self._secrets
                )
            except Exception as error:
                return Observation(True, None, f"the probe failed: {error}")
            if held:
                return Observation(False, value)
            return Observation(
                True, value, f"{_short(value)} is outside {_short(probe['tolerance'])}"
            )

        return observe


def _probe_name(probe: dict[str, Any]) -> str:
    return str(probe.get("name", probe["provider"].get("func", "guardrail")))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"
