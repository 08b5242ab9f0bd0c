"""PromQL around a game day: preflight checks before it starts, abort conditions while it runs.

A preflight check passes when its query returns no series (e.g. ``ALERTS{alertstate="firing"}``),
or, with ``below``, when every value is below it. A check that cannot ask Prometheus fails: a
game day does not start blind.

An abort condition is a ``chaosmesh_py.engine.guardrail.Check``: out of bounds when any value is
above ``above`` (or below ``below``), breached once out for ``for_s`` in a row; all of a game
day's conditions are watched by one ``Watch`` across its experiments. A query that fails counts
as out of bounds (held like any other value), and an empty answer as within.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.engine.guardrail import Breach, Check, Observation, Watch
from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.gameday.suite import (
    AbortCondition,
    GameDay,
    MissingVariable,
    Preflight,
    resolve,
)
from chaosmesh_py.observe import prometheus

QUERY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PreflightResult:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def prometheus_url_for(gameday: GameDay, own: str | None, field: str) -> str:
    """The check's Prometheus, else the game day's; InvalidInput naming ``field`` when neither."""
    url = own or gameday.prometheus_url
    if not url:
        raise InvalidInput(
            field,
            "has no Prometheus to ask",
            "set its prometheus_url, or the game day's prometheus_url",
        )
    try:
        return resolve(url, os.environ)
    except MissingVariable as missing:
        raise InvalidInput(
            field,
            f"${{{missing.name}}} is not set in the environment",
            f"export {missing.name}, e.g. http://prometheus.istio-system:9090",
        ) from None


def check_urls(gameday: GameDay) -> None:
    """Every check and condition has a Prometheus: refused before anything runs."""
    for index, check in enumerate(gameday.preflight):
        prometheus_url_for(gameday, check.prometheus_url, f"preflight[{index}].prometheus_url")
    for index, condition in enumerate(gameday.abort):
        prometheus_url_for(gameday, condition.prometheus_url, f"abort[{index}].prometheus_url")


def run_preflight(gameday: GameDay) -> list[PreflightResult]:
    return [_preflight(gameday, check) for check in gameday.preflight]


def _preflight(gameday: GameDay, check: Preflight) -> PreflightResult:
    url = prometheus_url_for(gameday, check.prometheus_url, "preflight.prometheus_url")
    try:
        series = prometheus.query(url, check.query, timeout_s=QUERY_TIMEOUT_S)
    except ChaosMeshError as error:
        return PreflightResult(check.name, False, f"cannot ask Prometheus at {url}: {error}")
    if check.below is None:
        if not series:
            return PreflightResult(check.name, True, "returned nothing")
        return PreflightResult(
            check.name, False, f"returned {len(series)} series: {_series_text(series)}"
        )
    high = [s for s in series if not s["value"] < check.below]
    if high:
        return PreflightResult(
            check.name, False, f"not below {check.below:g}: {_series_text(high)}"
        )
    return PreflightResult(check.name, True, f"{len(series)} value(s), all below {check.below:g}")


def _series_text(series: Sequence[dict[str, Any]], most: int = 3) -> str:
    shown = []
    for item in series[:most]:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(item["metric"].items()))
        shown.append(f"{{{labels}}} {item['value']:g}")
    more = f" and {len(series) - most} more" if len(series) > most else ""
    return "; ".join(shown) + more


def abort_check(gameday: GameDay, condition: AbortCondition) -> Check:
    url = prometheus_url_for(gameday, condition.prometheus_url, "abort.prometheus_url")

    def observe() -> Observation:
        try:
            series = prometheus.query(url, condition.query, timeout_s=QUERY_TIMEOUT_S)
        except ChaosMeshError as error:
            return Observation(True, None, f"cannot ask Prometheus at {url}: {error}")
        values = [s["value"] for s in series]
        if condition.above is not None:
            beyond = [v for v in values if v > condition.above]
            if beyond:
                return Observation(True, max(beyond), f"{max(beyond):g} > {condition.above:g}")
        if condition.below is not None:
            beyond = [v for v in values if v < condition.below]
            if beyond:
                return Observation(True, min(beyond), f"{min(beyond):g} < {condition.below:g}")
        return Observation(False, max(values, default=None))

    return Check(condition.name, observe, hold_s=condition.for_s)


def abort_watch(gameday: GameDay, on_breach: Callable[[Breach], None]) -> Watch | None:
    """One watch over every abort condition, checked at the shortest of their intervals."""
    if not gameday.abort:
        return None
    checks = [abort_check(gameday, condition) for condition in gameday.abort]
    interval_s = min(condition.interval_s for condition in gameday.abort)
    return Watch(checks, interval_s, on_breach, what="abort condition")
