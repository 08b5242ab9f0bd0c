"""Upstream faults: an owned EnvoyFilter that fails requests on the target pods' inbound side.

The fault is a real upstream error for every caller (``chaosmesh_py.istio.inbound_fault``): the
caller's retries retry it, its outlier detection counts it. Written as an owned object (form c,
``chaosmesh_py.engine.ownership.create_object``): ledger before the write, owner record, expiry;
removed whole by ``remove_upstream_faults``, the control, ``rollback``, ``reap`` and ``halt``.

Before any write: every argument (``inbound_fault.parse``), the namespace (protected ones need
configuration), and the pods: the labels must select at least one Pod in the namespace (an
EnvoyFilter selecting nothing would be accepted by Istio and test nothing).

Effect verification
    local mesh   each selected pod's inbound listener shows the fault in Envoy's configuration,
                 then requests to each pod's address (carrying the verifier header) until its
                 inbound counters ``http.<inbound prefix>.fault.aborts_injected`` /
                 ``delays_injected`` move. Under PeerAuthentication STRICT a pod refuses such
                 requests (no sidecar): the configuration alone is checked, and the result says so.
    cluster      requests to ``verify_url`` until one shows the fault (the abort's status, or a
                 delay at least as long as the injected one); without ``verify_url``, the result
                 says the effect was not checked.
    A fault never seen is removed again and the action fails.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py import checks
from chaosmesh_py.engine import ownership
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, inbound_listener
from chaosmesh_py.engine.kinds import OWNED_OBJECT, edit_verbs, editable_kinds
from chaosmesh_py.engine.run import Run
from chaosmesh_py.engine.verify import VERIFIER_HEADER, FaultNotObserved
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import inbound_fault, owned_object
from chaosmesh_py.istio.inbound_fault import UpstreamFault
from chaosmesh_py.kube import POD, Kube, ResourceRef
from chaosmesh_py.observe import pods as workload_pods
from chaosmesh_py.observe.inbound_hits import inbound_pods

logger = logging.getLogger("chaostoolkit")

ENVOY_FILTER = next(k.kind for k in editable_kinds() if k.kind.kind == "EnvoyFilter")
POLL_S = 0.05
REQUEST_TIMEOUT_S = 1.0


def prepare(arguments: Mapping[str, Any]) -> tuple[injection.Settings, str, UpstreamFault]:
    """Every check that needs no API request (``_ARGUMENT_CHECKS``)."""
    settings = injection.Settings.from_configuration(arguments.get("configuration"))
    fault = inbound_fault.parse(
        workload_labels=arguments.get("workload_labels"),
        abort_http_status=arguments.get("abort_http_status"),
        abort_percentage=arguments.get("abort_percentage", 100.0),
        delay=arguments.get("delay"),
        delay_percentage=arguments.get("delay_percentage", 100.0),
        port=arguments.get("port"),
    )
    namespace = parse_namespace(arguments.get("namespace", "default"), settings)
    if arguments.get("verify_url") is not None:
        checks.text("verify_url", arguments["verify_url"])
    return settings, namespace, fault


def parse_namespace(namespace: object, settings: injection.Settings) -> str:
    # The protected-namespace rules of every target (a name stands in for the VirtualService).
    return injection.parse_target(namespace, "upstream", None, settings).namespace


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    return on(POD, ["list"], namespace) + on(ENVOY_FILTER, edit_verbs(OWNED_OBJECT), namespace)


def removal_needs(arguments: Mapping[str, Any]) -> list[Access]:
    namespace = str(arguments.get("namespace") or "default")
    return on(ENVOY_FILTER, ["list", "get", "delete"], namespace)


def selected_pods(kube: Kube, namespace: str, labels: Mapping[str, str]) -> list[str]:
    """The names of the Pods ``labels`` select in ``namespace``; TargetNotFound for none."""
    return workload_pods.selected_pods(kube, namespace, labels)


def inject(
    kube: Kube,
    run: Run,
    *,
    settings: injection.Settings,
    namespace: str,
    fault: UpstreamFault,
    verify_url: str | None,
) -> dict[str, Any]:
    pods = selected_pods(kube, namespace, fault.workload_labels)
    started = time.monotonic()
    created = ownership.create_object(
        kube,
        run,
        kind=ENVOY_FILTER,
        namespace=namespace,
        spec=fault.envoy_filter_spec(),
        expires_at=injection.expiry(settings),
    )
    ref = ResourceRef(ENVOY_FILTER, namespace, created["name"])
    try:
        effect = verify(kube, fault, verify_url, settings.verify_timeout_s)
    except FaultNotObserved:
        ownership.release(kube, ref, run.run_id, run_ledger=run.ledger)
        raise
    return {
        "run_id": run.run_id,
        "envoy_filter": f"{namespace}/{created['name']}",
        "workloads": pods,
        "fault": fault.to_json(),
        "description": fault.describe(),
        "expires": created["expires"],
        "effect": effect,
        "time_to_effect_s": round(time.monotonic() - started, 3),
    }


def remove(kube: Kube, run: Run, namespace: str) -> dict[str, Any]:
    """Delete every EnvoyFilter the run owns in ``namespace`` (others' are never touched)."""
    removed = []
    for item in kube.list(ENVOY_FILTER, namespace):
        if not owned_object.owner_of(item, run.run_id):
            continue
        ref = ResourceRef(ENVOY_FILTER, namespace, item["metadata"]["name"])
        result = ownership.release(kube, ref, run.run_id, run_ledger=run.ledger, listed=item)
        removed.append({**result.to_json(), "what": owned_object.describe(item)})
    return {"run_id": run.run_id, "removed": removed}


# --- verification ----------------------------------------------------------------------------


def verify(
    kube: Kube,
    fault: UpstreamFault,
    verify_url: str | None,
    timeout_s: float,
) -> dict[str, Any]:
    if timeout_s == 0:
        return {"verified": False, "checked": "no: verification is off (timeout 0)"}
    mesh = kube.local_mesh()
    if mesh is not None:
        return _verify_local(mesh, fault, timeout_s)
    if verify_url is None:
        return {
            "verified": False,
            "checked": "no: on a cluster give verify_url (a URL served by the faulted pods), "
            'or read istio_requests_total{reporter="destination",response_flags="FI"}',
        }
    return _verify_by_request(verify_url, fault, timeout_s)


def _verify_local(
    mesh: Mapping[str, Any], fault: UpstreamFault, timeout_s: float
) -> dict[str, Any]:
    workloads = inbound_pods(mesh, fault.workload_labels)
    if not workloads:
        raise FaultNotObserved(
            "no pod of the local mesh with an inbound sidecar carries "
            + ",".join(f"{k}={v}" for k, v in sorted(fault.workload_labels.items()))
        )
    deadline = time.monotonic() + timeout_s + (fault.delay_ms or 0) / 1000
    with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
        waiting = set(workloads)
        while waiting:
            waiting -= {name for name in waiting if _shows_fault(admin, workloads[name], fault)}
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise FaultNotObserved(
                    f"the inbound fault never showed in Envoy's configuration for "
                    f"{', '.join(sorted(waiting))} within {timeout_s:g} s"
                )
            time.sleep(POLL_S)
        hits: dict[str, int] = {}
        refused: list[str] = []
        for name, workload in sorted(workloads.items()):
            counted = _until_counted(admin, workload, fault, deadline)
            if counted is None:
                refused.append(name)
            else:
                hits[name] = counted
    effect: dict[str, Any] = {
        "verified": True,
        "checked": "Envoy's configuration of each pod's inbound, then requests to each pod "
        "until its inbound fault counters moved",
        "verifier_hits": hits,
    }
    if refused:
        effect["config_only"] = refused
        effect["checked"] += (
            f"; {', '.join(refused)} refused plain requests (PeerAuthentication STRICT): "
            "configuration checked only"
        )
    return effect


def _shows_fault(admin: EnvoyAdmin, workload: Mapping[str, Any], fault: UpstreamFault) -> bool:
    wanted = fault.http_fault()
    for chain in inbound_listener(admin, workload).get("filter_chains", []):
        for network_filter in chain.get("filters", []):
            for http_filter in network_filter.get("typed_config", {}).get("http_filters", []):
                if http_filter.get("name") == inbound_fault.FAULT_FILTER and _contains(
                    http_filter.get("typed_config") or {}, wanted
                ):
                    return True
    return False


def _contains(actual: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Envoy's dump holds what we wrote (it may write defaults and numbers its own way)."""
    for key in ("abort", "delay"):
        if key not in wanted:
            continue
        have, want = actual.get(key) or {}, wanted[key]
        if key == "abort" and have.get("http_status") != want["http_status"]:
            return False
        if key == "delay" and _ms(have.get("fixed_delay")) != _ms(want["fixed_delay"]):
            return False
        numerator = int((have.get("percentage") or {}).get("numerator", 0))
        if numerator != want["percentage"]["numerator"]:
            return False
    return True


def _ms(text: object) -> int:
    try:
        return round(float(str(text).removesuffix("s")) * 1000)
    except ValueError:
        return -1


def _counters(admin: EnvoyAdmin, prefix: str) -> int:
    stats = admin.counters(rf"^http\.{prefix}\.fault\.")
    return sum(stats.get(f"http.{prefix}.fault.{name}", 0) for name in _FAULT_COUNTERS)


_FAULT_COUNTERS = ("aborts_injected", "delays_injected")


def _until_counted(
    admin: EnvoyAdmin, workload: Mapping[str, Any], fault: UpstreamFault, deadline: float
) -> int | None:
    """Requests to the pod until its inbound fault counters move: how many showed the fault,
    or None when the pod refuses plain requests."""
    prefix = workload["inbound_stat_prefix"]
    before = _counters(admin, prefix)
    # A delayed request is counted as it starts: no need to wait it out.
    timeout = min(REQUEST_TIMEOUT_S, (fault.delay_ms or 1000) / 1000 + 0.2)
    while True:
        answered = _request(workload["pod_url"] + "/", timeout)
        moved = _counters(admin, prefix) - before
        if moved > 0:
            return moved
        if not answered:
            return None
        if time.monotonic() > deadline:
            raise FaultNotObserved(
                f"no request to {workload['pod_url']} met the inbound fault before the time box "
                "ran out"
            )


def _request(url: str, timeout_s: float) -> bool:
    """One GET carrying the verifier header; False when the connection was refused or closed
    before any answer (what a STRICT pod does to plain text)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("GET", parts.path or "/", headers={VERIFIER_HEADER: "upstream-fault"})
        connection.getresponse().read()
        return True
    except TimeoutError:
        return True  # held by a delay: it reached the inbound
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _verify_by_request(url: str, fault: UpstreamFault, timeout_s: float) -> dict[str, Any]:
    held_s = (fault.delay_ms or 0) / 1000
    deadline = time.monotonic() + timeout_s + held_s
    sent = 0
    while time.monotonic() < deadline:
        sent += 1
        started = time.monotonic()
        request = urllib.request.Request(url, headers={VERIFIER_HEADER: "upstream-fault"})
        try:
            with urllib.request.urlopen(request, timeout=held_s + 5) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (OSError, ValueError) as error:
            raise InvalidInput("verify_url", f"could not be reached: {error}") from None
        took = time.monotonic() - started
        if (fault.abort_http_status is not None and status == fault.abort_http_status) or (
            fault.delay_ms is not None and took >= held_s
        ):
            return {"verified": True, "checked": f"requests to {url}", "requests": sent}
        time.sleep(POLL_S)
    raise FaultNotObserved(f"none of {sent} request(s) to {url} showed the inbound fault")
