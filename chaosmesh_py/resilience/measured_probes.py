"""The measurement probes' logic (``resilience.probes``, "measured" section): where the local
mesh's Envoy is, which service's counters to read, and what a cluster has instead.

On the local mesh the destination's Envoy counters come with every answer count. On a cluster
the answers alone are measured (error ratio, circuit-breaker refusals by their
``x-envoy-overloaded`` header, the try that answered where the upstream echoes it) and the
counters are ``null``: Istio's sidecars export ``upstream_rq_retry``, the overflow and outlier
counters only under ``proxyStatsMatcher``; the per-edge attempt ratio is in Istio's default
metrics (``istio_requests_total`` reported by the destination over the same edge reported by the
source) and ``prometheus_query`` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.kube import Kube
from chaosmesh_py.resilience.measure import (
    MAX_REQUESTS,
    Load,
    answers_only,
    check_load,
    ejection_of,
    measure,
    measure_ejection,
)

# Counter readings a cluster has not (see the module docstring): null in a cluster's answer.
_COUNTER_FIELDS = (
    "upstream_attempts",
    "attempts_per_request",
    "retries",
    "pending_overflows",
    "connection_overflows",
    "ejections",
    "ejected_now",
)
ON_A_CLUSTER = (
    "answers only: Envoy's retry, overflow and outlier counters are the local mesh's "
    "(on a cluster: proxyStatsMatcher, or istio_requests_total by reporter)"
)


class NotAsExpected(ChaosMeshError):
    """A measurement fell outside what the experiment's ``expect`` said: the probe fails, so the
    verdict fails the run (a method probe's tolerance is not judged by Chaos Toolkit)."""


def check_expect(expect: object) -> dict[str, tuple[float, float]]:
    """``expect`` as {field: (low, high)}: a number means exactly it, a pair a closed range."""
    if expect is None:
        return {}
    if not isinstance(expect, dict):
        raise InvalidInput(
            "expect", f"must map result fields to a number or [low, high], got {expect!r}"
        )
    ranges = {}
    for name, value in expect.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            ranges[name] = (float(value), float(value))
        elif (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and value[0] <= value[1]
        ):
            ranges[name] = (float(value[0]), float(value[1]))
        else:
            raise InvalidInput(
                f"expect.{name}", f"must be a number or [low, high] with low <= high, got {value!r}"
            )
    return ranges


def held(result: dict[str, Any], expect: object) -> dict[str, Any]:
    """``result`` when every expected field is in its range; NotAsExpected naming each miss."""
    misses = []
    for name, (low, high) in check_expect(expect).items():
        value = result.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            misses.append(f"{name} is {value!r}, expected a number in [{low:g}, {high:g}]")
        elif not low - 1e-9 <= value <= high + 1e-9:
            misses.append(f"{name} = {value:g}, expected [{low:g}, {high:g}]")
    if misses:
        summary = {k: result.get(k) for k in ("requests", "errors", "statuses", "counters")}
        raise NotAsExpected(f"{'; '.join(misses)} (measured: {summary})")
    return result


def check_common(arguments: Mapping[str, Any]) -> None:
    """The checks every measurement probe shares, before any request."""
    checks.text("service", arguments.get("service"))
    check_load(
        arguments.get("url"),
        arguments.get("requests", 1),
        arguments.get("concurrency", 1),
        arguments.get("timeout_s", 10.0),
    )
    if "waves" in arguments:
        waves = checks.whole("waves", arguments["waves"], 1)
        if waves * int(arguments.get("concurrency", 1)) > MAX_REQUESTS:
            raise InvalidInput("waves", f"waves x concurrency must be at most {MAX_REQUESTS}")
    if "pace_s" in arguments and arguments["pace_s"] != 0:
        checks.seconds("pace_s", arguments["pace_s"])
    check_expect(arguments.get("expect"))
    headers = arguments.get("headers")
    if headers is not None and not (
        isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    ):
        raise InvalidInput("headers", f"must map header names to strings, got {headers!r}")


def retries(
    url: str,
    *,
    service: str,
    requests: int,
    concurrency: int,
    headers: dict[str, str],
    timeout_s: float,
    secrets: dict[str, Any] | None,
) -> dict[str, Any]:
    check_common(locals())
    load = Load(url, headers, requests, concurrency, timeout_s)
    return _measured(service, load, secrets)


def overflow(
    url: str,
    *,
    service: str,
    concurrency: int,
    waves: int,
    headers: dict[str, str],
    timeout_s: float,
    secrets: dict[str, Any] | None,
) -> dict[str, Any]:
    check_common(locals())
    load = Load(url, headers, waves * concurrency, concurrency, timeout_s, waves=True)
    return _measured(service, load, secrets)


def ejection(
    url: str,
    *,
    service: str,
    requests: int,
    pace_s: float,
    headers: dict[str, str],
    timeout_s: float,
    secrets: dict[str, Any] | None,
) -> dict[str, Any]:
    check_common(locals())
    load = Load(url, headers, requests, 1, timeout_s, pace_s=pace_s)
    mesh, fqdn = _local_service(service, secrets)
    if mesh is None:
        result = ejection_of(answers_only(load)).to_json()
        return {**result, "ejections": None, "service": service, "counters": ON_A_CLUSTER}
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        result = measure_ejection(admin, fqdn, load).to_json()
    return {**result, "service": service, "counters": "local mesh Envoy"}


def _measured(service: str, load: Load, secrets: dict[str, Any] | None) -> dict[str, Any]:
    mesh, fqdn = _local_service(service, secrets)
    if mesh is None:
        answer = answers_only(load).to_json()
        return {
            **answer,
            **dict.fromkeys(_COUNTER_FIELDS),
            "service": service,
            "counters": ON_A_CLUSTER,
        }
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        seen = measure(admin, fqdn, load)
    return {**seen.to_json(), "service": service, "counters": "local mesh Envoy"}


def _local_service(
    service: str, secrets: dict[str, Any] | None
) -> tuple[Mapping[str, Any] | None, str]:
    """The local mesh's info and the service's FQDN; (None, "") on a cluster."""
    try:
        mesh = Kube.connect(secrets).local_mesh()
    except ChaosMeshError:
        mesh = None
    if mesh is None:
        return None, ""
    if service not in mesh["services"]:
        raise InvalidInput(
            "service", f"no service {service!r}", f"one of {sorted(mesh['services'])}"
        )
    return mesh, str(mesh["services"][service]["fqdn"])
