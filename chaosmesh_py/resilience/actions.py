"""Chaos Toolkit actions for resilience policies (``chaosmesh_py.resilience.actions``).

Each action checks its arguments before any request, writes through the engine's ownership
path (owner record, ledger before the write, expiry), verifies its effect in the data plane
and is removed exactly by the control, ``rollback``, ``reap`` and ``halt``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_py.engine import redaction
from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.kube import Kube
from chaosmesh_py.resilience import upstream

# Per action: what refuses its arguments (bound, defaults applied) before any request.
# The control and `chaos validate` call check_arguments on an experiment's arguments.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    action: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``action`` would refuse ``arguments``; sends nothing."""
    bound = inspect.signature(globals()[action]).bind(**arguments)
    bound.apply_defaults()
    check = _ARGUMENT_CHECKS.get(action)
    if check is not None:
        check({**bound.arguments, "configuration": configuration})


__all__: list[str] = []

# ------------------------------------------------------- policy edits (timeouts, retries, DR)

__all__ += []  # this section's Chaos Toolkit functions, by name


# ------------------------------------------------------- upstream faults (inbound EnvoyFilter)

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
