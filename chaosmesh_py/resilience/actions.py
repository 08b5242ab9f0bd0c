"""Chaos Toolkit actions for resilience policies (``chaosmesh_py.resilience.actions``).

Each action checks its arguments before any request, writes through the engine's ownership
path (owner record, ledger before the write, expiry), verifies its effect in the data plane
and is removed exactly by the control, ``rollback``, ``reap`` and ``halt``.
"""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine.activity import check_action_arguments

# Per action: what refuses its arguments (bound, defaults applied) before any request.
# The control and `chaos validate` call check_arguments on an experiment's arguments.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    action: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``action`` would refuse ``arguments``; sends nothing."""
    check_action_arguments(
        globals()[action], _ARGUMENT_CHECKS.get(action), arguments, configuration
    )


__all__: list[str] = []

# ------------------------------------------------------- policy edits (timeouts, retries, DR)
# The logic is in chaosmesh_py.resilience.policy_edits (docs/resilience.md, "Policy edits").

from chaosmesh_py.engine.access import needs  # noqa: E402
from chaosmesh_py.engine.activity import boundary  # noqa: E402
from chaosmesh_py.istio import policy_target  # noqa: E402
from chaosmesh_py.resilience import policy_edits  # noqa: E402

__all__ += ["set_connection_pool", "set_outlier_detection", "set_retries", "set_route_timeout"]


@needs(policy_edits.route_needs)
def set_route_timeout(
    timeout: str,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    route_name: str = None,
    route_index: int = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Set the `timeout` ("0.5s", at least 1ms) of a VirtualService's HTTP routes for the run.

    Target the VirtualService by `virtual_service` name or by a `host` it serves, in
    `namespace`; every route that forwards traffic is set unless `route_name` or `route_index`
    (counting the routes as written, from 0) picks one. Route copies of runs are never set.
    The value replaced is recorded and put back at rollback, only where the route still holds
    ours (another writer's later value stays, reported as a conflict). Refuses an object that
    carries another run's edits unless `allow_other_runs`. Then waits until Envoy holds the
    timeout (on the local mesh; on a cluster the report says what was checked). Returns the
    run id, the resource, the fields (written, replaced), the routes and the effect.
    """
    with boundary():
        return policy_edits.set_route_policy(policy_target.TIMEOUT, dict(locals()))


@needs(policy_edits.route_needs)
def set_retries(
    attempts: int,
    per_try_timeout: str = None,
    retry_on: str = None,
    virtual_service: str = None,
    host: str = None,
    namespace: str = "default",
    route_name: str = None,
    route_index: int = None,
    allow_other_runs: bool = False,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Set the retry policy of a VirtualService's HTTP routes for the run: `attempts` retries
    (0 turns retries off, Istio's implicit 2 retries included), each try cut after
    `per_try_timeout`, on the conditions `retry_on` ("5xx,connect-failure", or a list; HTTP
    statuses allowed). The route's whole `retries` object is replaced by exactly this (without
    `retry_on`, Istio's default conditions apply). Targeting, restoring and the effect as for
    set_route_timeout.
    """
    with boundary():
        return policy_edits.set_route_policy(policy_target.RETRIES, dict(locals()))


@needs(policy_edits.rule_needs)
def set_connection_pool(
    connection_pool: dict,
    destination_rule: str = None,
    host: str = None,
    namespace: str = "default",
    subset: str = None,
    allow_other_runs: bool = False,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Set a DestinationRule's connection pool (circuit breaker) for the run: Istio's
    ConnectionPoolSettings, e.g. {"tcp": {"maxConnections": 1}, "http":
    {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1}}; every limit at least 1.

    Target the rule by `destination_rule` name or by the `host` it is for, in `namespace`; with
    `subset`, that subset's traffic policy. The field is replaced as a whole; the value replaced
    is put back at rollback where the field still holds ours (else their value stays, reported
    as a conflict). No DestinationRule is created for a host without one. Waits until Envoy's
    clusters hold the limits (local mesh). Returns as set_route_timeout.
    """
    with boundary():
        return policy_edits.set_rule_policy(policy_target.CONNECTION_POOL, dict(locals()))


@needs(policy_edits.rule_needs)
def set_outlier_detection(
    outlier_detection: dict,
    destination_rule: str = None,
    host: str = None,
    namespace: str = "default",
    subset: str = None,
    allow_other_runs: bool = False,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Set a DestinationRule's outlier detection for the run: Istio's OutlierDetection, e.g.
    {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "3m",
    "maxEjectionPercent": 100}. Targeting, restoring and the effect as for set_connection_pool.
    """
    with boundary():
        return policy_edits.set_rule_policy(policy_target.OUTLIER_DETECTION, dict(locals()))


_ARGUMENT_CHECKS["set_route_timeout"] = lambda a: policy_edits.prepare_route(
    policy_target.TIMEOUT, a
)
_ARGUMENT_CHECKS["set_retries"] = lambda a: policy_edits.prepare_route(policy_target.RETRIES, a)
_ARGUMENT_CHECKS["set_connection_pool"] = lambda a: policy_edits.prepare_rule(
    policy_target.CONNECTION_POOL, a
)
_ARGUMENT_CHECKS["set_outlier_detection"] = lambda a: policy_edits.prepare_rule(
    policy_target.OUTLIER_DETECTION, a
)


# ------------------------------------------------------- upstream faults (inbound EnvoyFilter)
# The logic is in chaosmesh_py.resilience.upstream (docs/resilience.md, "Upstream faults").

from chaosmesh_py.engine import redaction  # noqa: E402

# (needs and boundary: imported above, by the policy edits' section)
from chaosmesh_py.engine.run import run_for  # noqa: E402
from chaosmesh_py.kube import Kube  # noqa: E402
from chaosmesh_py.resilience import upstream  # noqa: E402

__all__ += ["inject_upstream_fault"]


# An owned EnvoyFilter in the namespace, after a list of its Pods; rollback deletes it.
@needs(upstream.needs)
def inject_upstream_fault(
    workload_labels: dict,
    namespace: str = "default",
    abort_http_status: int = None,
    abort_percentage: float = 100.0,
    delay: str = None,
    delay_percentage: float = 100.0,
    port: int = None,
    verify_url: str = None,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Fail requests on the server side: on the inbound sidecar of the pods `workload_labels`
    select in `namespace` (e.g. {"app": "ratings"}), so every caller meets a real upstream
    error that its retries retry and its outlier detection counts (a VirtualService fault is
    answered by the caller's own sidecar, which neither does).

    Give `abort_http_status` (200-599) and/or `delay` (e.g. "2s"), each applied to
    `abort_percentage` / `delay_percentage` (0.0001-100, default 100) of the requests; `port`
    (the pods' container port, e.g. 9080) limits it to that port, else every inbound port. The
    labels must select at least one Pod. Written as an EnvoyFilter the run owns (an
    HTTP_FILTER MERGE on istiod's inbound fault filter); rollback, the control, reap and halt
    delete it. Waits until the data plane shows the fault (the local mesh: Envoy's
    configuration and each pod's inbound fault counters; a cluster: requests to `verify_url`)
    and fails, removing it, if it never does. Returns the run id, the EnvoyFilter, the pods,
    the fault, the effect and the time to effect.
    """
    with boundary():
        redaction.remember(secrets)
        settings, checked_namespace, fault = upstream.prepare(dict(locals()))
        kube = Kube.connect(secrets)
        return upstream.inject(
            kube,
            run_for(configuration),
            settings=settings,
            namespace=checked_namespace,
            fault=fault,
            verify_url=verify_url,
        )


_ARGUMENT_CHECKS["inject_upstream_fault"] = upstream.prepare
