"""EnvoyFilters on the local mesh: the part of istiod's patching that reaches a pod's inbound HTTP
filters, applied the way ``pilot/pkg/networking/core/envoyfilter/listener_patch.go`` does.

Which EnvoyFilters apply to a pod: those in its namespace whose ``workloadSelector.labels`` are
among its labels (no selector: every pod of the namespace), and those in the root namespace
(``istio-system``) likewise, the root's first; in that order by ``priority``, then age
(``creationTimestamp``), then name.

What is applied: ``configPatches`` with ``applyTo: HTTP_FILTER`` and ``match.context``
``SIDECAR_INBOUND`` (or ``ANY``, whose inbound part is applied), on the pod's inbound HTTP
connection manager (``chaosmesh_py.localmesh.inbound``), where the match says:

- ``listener.portNumber``: the pod's container port (istiod moves it into the inbound filter
  chain's ``destination_port``); ``listener.filterChain.name``: the chain's (``0.0.0.0_<port>``);
  ``listener.filterChain.filter.name``: ``envoy.filters.network.http_connection_manager``;
- ``listener.filterChain.filter.subFilter.name``: the HTTP filter the operation is relative to.

Operations, as istiod: ``MERGE`` merges the value into each HTTP filter matching ``subFilter``
(every one, without a ``subFilter``) as protobuf merges: messages field by field, repeated
fields appended, scalars replaced; a ``typed_config`` of another ``@type`` leaves the filter as it
was. ``ADD`` appends; ``INSERT_FIRST`` prepends; ``INSERT_BEFORE``/``INSERT_AFTER`` put the value
next to each matching filter (without ``subFilter``: first / last); ``REPLACE`` and ``REMOVE``
act on each matching filter (nothing without ``subFilter``).

Anything else is never silently dropped: ``unsupported`` names what the local mesh does not
apply (another ``applyTo`` or context, ``targetRefs``, a ``proxy`` match, listener names, SNI,
transport or application protocol matches), and the mesh says so in the EnvoyFilter's status
(``Reconciled: False``, reason ``NotSupported``). An EnvoyFilter's supported patches still apply.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaosmesh_py.localmesh.envoy import JsonDict
from chaosmesh_py.localmesh.topology import Workload

ROOT_NAMESPACE = "istio-system"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
INBOUND_CONTEXTS = frozenset({"SIDECAR_INBOUND", "ANY"})
OPERATIONS = frozenset(
    {"MERGE", "ADD", "INSERT_FIRST", "INSERT_BEFORE", "INSERT_AFTER", "REPLACE", "REMOVE"}
)
# Listener match fields the local mesh reads; any other one is reported as not applied.
_LISTENER_FIELDS = frozenset({"portNumber", "filterChain"})
_CHAIN_FIELDS = frozenset({"name", "filter"})
_FILTER_FIELDS = frozenset({"name", "subFilter"})


def unsupported(envoy_filter: Mapping[str, Any]) -> list[str]:
    """What in ``envoy_filter`` the local mesh does not apply, one phrase each ([]: all of it)."""
    spec = envoy_filter.get("spec") or {}
    problems: list[str] = []
    if spec.get("targetRefs"):
        problems.append("targetRefs (only workloadSelector is read)")
    for index, patch in enumerate(spec.get("configPatches") or []):
        where = f"configPatches[{index}]"
        apply_to = patch.get("applyTo")
        match = patch.get("match") or {}
        context = match.get("context") or "ANY"
        operation = (patch.get("patch") or {}).get("operation")
        if apply_to != "HTTP_FILTER":
            problems.append(f"{where}: applyTo {apply_to} (only HTTP_FILTER)")
            continue
        if context not in INBOUND_CONTEXTS:
            problems.append(f"{where}: context {context} (only SIDECAR_INBOUND)")
        elif context == "ANY":
            problems.append(f"{where}: context ANY is applied to inbound sidecars only")
        if operation not in OPERATIONS:
            problems.append(f"{where}: operation {operation}")
        if match.get("proxy"):
            problems.append(f"{where}: match.proxy")
        listener = match.get("listener") or {}
        chain = listener.get("filterChain") or {}
        network_filter = chain.get("filter") or {}
        extra = [
            *(f"listener.{k}" for k in listener if k not in _LISTENER_FIELDS),
            *(f"listener.filterChain.{k}" for k in chain if k not in _CHAIN_FIELDS),
            *(
                f"listener.filterChain.filter.{k}"
                for k in network_filter
                if k not in _FILTER_FIELDS
            ),
        ]
        if extra:
            problems.append(f"{where}: match on {', '.join(extra)}")
        if match.get("routeConfiguration") or match.get("cluster"):
            problems.append(f"{where}: a routeConfiguration or cluster match")
    return problems


def for_workload(
    workload: Workload, envoy_filters: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The EnvoyFilters that apply to ``workload``'s proxy, in istiod's order."""
    chosen = []
    for envoy_filter in envoy_filters:
        metadata = envoy_filter.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        if namespace not in (workload.namespace, ROOT_NAMESPACE):
            continue
        spec = envoy_filter.get("spec") or {}
        if spec.get("targetRefs"):
            continue
        selector = (spec.get("workloadSelector") or {}).get("labels") or {}
        if workload.matches(selector):
            chosen.append(envoy_filter)

    def order(envoy_filter: Mapping[str, Any]) -> tuple[int, int, str, str]:
        metadata = envoy_filter.get("metadata") or {}
        root_first = 0 if metadata.get("namespace") == ROOT_NAMESPACE else 1
        priority = int((envoy_filter.get("spec") or {}).get("priority") or 0)
        return (
            priority,
            root_first,
            str(metadata.get("creationTimestamp") or ""),
            str(metadata.get("name") or ""),
        )

    return sorted(chosen, key=order)


def patch_inbound_http_filters(
    http_filters: Sequence[JsonDict],
    *,
    port: int,
    chain_name: str,
    envoy_filters: Sequence[Mapping[str, Any]],
) -> list[JsonDict]:
    """``http_filters`` of an inbound HTTP connection manager after the patches that match."""
    patches = [
        patch
        for envoy_filter in envoy_filters
        for patch in (envoy_filter.get("spec") or {}).get("configPatches") or []
        if _matches_chain(patch, port, chain_name)
    ]
    filters = [copy.deepcopy(f) for f in http_filters]
    for patch in patches:
        filters = _insert_or_remove(filters, patch)
    # istiod merges after every other operation, filter by filter, each MERGE in order.
    for patch in patches:
        if (patch.get("patch") or {}).get("operation") == "MERGE":
            filters = [_merged(f, patch) if _sub_filter_matches(f, patch) else f for f in filters]
    return filters


def _matches_chain(patch: Mapping[str, Any], port: int, chain_name: str) -> bool:
    match = patch.get("match") or {}
    if patch.get("applyTo") != "HTTP_FILTER":
        return False
    if (match.get("context") or "ANY") not in INBOUND_CONTEXTS or match.get("proxy"):
        return False
    listener = match.get("listener") or {}
    if set(listener) - _LISTENER_FIELDS:
        return False  # a match the local mesh cannot judge: not applied (and reported)
    if listener.get("portNumber") and int(listener["portNumber"]) != port:
        return False
    chain = listener.get("filterChain") or {}
    if set(chain) - _CHAIN_FIELDS:
        return False
    if chain.get("name") and chain["name"] != chain_name:
        return False
    network_filter = chain.get("filter") or {}
    if set(network_filter) - _FILTER_FIELDS:
        return False
    return not network_filter.get("name") or network_filter["name"] == HCM_FILTER


def _sub_filter_name(patch: Mapping[str, Any]) -> str | None:
    listener = (patch.get("match") or {}).get("listener") or {}
    sub_filter = ((listener.get("filterChain") or {}).get("filter") or {}).get("subFilter")
    return None if sub_filter is None else str(sub_filter.get("name") or "")


def _sub_filter_matches(http_filter: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    name = _sub_filter_name(patch)
    return name is None or http_filter.get("name") == name


def _insert_or_remove(filters: list[JsonDict], patch: Mapping[str, Any]) -> list[JsonDict]:
    operation = (patch.get("patch") or {}).get("operation")
    value: JsonDict = copy.deepcopy(dict((patch.get("patch") or {}).get("value") or {}))
    has_sub_filter = _sub_filter_name(patch) is not None
    if operation == "ADD" or (operation == "INSERT_AFTER" and not has_sub_filter):
        return [*filters, value]
    if operation == "INSERT_FIRST" or (operation == "INSERT_BEFORE" and not has_sub_filter):
        return [value, *filters]
    if not has_sub_filter or operation not in (
        "INSERT_BEFORE",
        "INSERT_AFTER",
        "REPLACE",
        "REMOVE",
    ):
        return filters
    out: list[JsonDict] = []
    done = False  # istiod's insert/replace helpers act on the first match only
    for http_filter in filters:
        if done or not _sub_filter_matches(http_filter, patch):
            out.append(http_filter)
            continue
        if operation == "REMOVE":
            continue  # every match is removed
        done = True
        if operation == "INSERT_BEFORE":
            out += [copy.deepcopy(value), http_filter]
        elif operation == "INSERT_AFTER":
            out += [http_filter, copy.deepcopy(value)]
        else:
            out.append(copy.deepcopy(value))
    return out


def _merged(http_filter: JsonDict, patch: Mapping[str, Any]) -> JsonDict:
    value = (patch.get("patch") or {}).get("value") or {}
    base_config = http_filter.get("typed_config")
    if base_config is None:
        return http_filter  # istiod skips a filter without typed_config
    merged = dict(http_filter)
    if value.get("name"):
        merged["name"] = value["name"]
    patch_config = value.get("typed_config")
    if patch_config is not None:
        if patch_config.get("@type") != base_config.get("@type"):
            return http_filter  # MergeAnyWithAny fails: istiod keeps the filter as it was
        merged["typed_config"] = proto_merge(base_config, patch_config)
    return merged


def proto_merge(base: Any, patch: Any) -> Any:
    """protobuf's Merge on JSON: messages field by field, lists appended, scalars replaced."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        out = dict(base)
        for key, value in patch.items():
            out[key] = proto_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        return [*base, *copy.deepcopy(patch)]
    return copy.deepcopy(patch)
