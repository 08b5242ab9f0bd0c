"""The policy report: what the mesh's timeouts and retries do along every call path, before any
experiment.

Per edge (``chaosmesh_py.resilience.call_graph``), the effective policy
(``chaosmesh_py.istio.effective_policy``): timeout, attempts (1 + retries, Istio's implicit 2
retries included), per-try timeout, what is retried, the worst-case time, circuit breaker and
outlier detection. Per path, the worst-case attempts amplification: the product of the attempts
along it (3 per hop by default: 9 requests reach the second hop's callee, 27 the third's), and
the worst-case time the policies allow. Findings name an edge or a path and a fix.

Nodes are services (``name.namespace``); a node calls another when any edge between them exists,
and the worst of parallel edges (several workloads of one caller) counts. Paths start at entries
(nodes nobody calls) and end at leaves (nodes that call nobody). Cycles are cut where a
depth-first walk closes them (each cut is a finding: a cycle's amplification has no bound), so
the rest is a DAG. The number of paths can be exponential in the edges, so the report does not
enumerate them: two passes over the DAG (O(nodes + edges)) give, for every node, the worst path
into it from an entry and out of it to a leaf. Reported are the worst path from each entry and
the worst path into each leaf (so the worst path of the whole graph is always there), at most
``max_paths`` of them, most amplified first; every edge carries the amplification of the worst
path through it.

Worst-case time of a path, computed from its leaf up: an attempt of hop k takes at most its fault
delay plus hop k+1's worst case, cut at the per-try timeout; the hop takes at most attempts x
that, cut at the route timeout; the leaf's own service time is unknown, so a path with no
timeout at any hop has none (``null``: unbounded). Backoff between retries (25 ms base) is left
out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.istio.effective_policy import (
    EffectivePolicy,
    PolicyIndex,
    RoutePolicy,
    call_host,
)
from chaosmesh_py.istio.routing import service_namespace
from chaosmesh_py.istio.traffic_policy import positive
from chaosmesh_py.resilience.call_graph import Edge, IstioObjects

DEFAULT_MAX_AMPLIFICATION = 10
DEFAULT_MAX_PATHS = 200
FINDING_KINDS = (
    "amplification",
    "timeout_inversion",
    "per_try_timeout",
    "no_circuit_breaker",
    "no_outlier_detection",
    "cycle",
    "retries_non_idempotent",
)
_UNSAFE_METHODS = frozenset({"POST", "PATCH"})
# Tokens that retry a request the upstream may already have acted on (not connect-failure or
# refused-stream: those requests never reached the application).
_RETRY_AFTER_SENT = frozenset({"5xx", "gateway-error", "reset", "retriable-status-codes"})


@dataclass(frozen=True)
class AnalysedEdge:
    edge: Edge
    policy: EffectivePolicy

    @property
    def source(self) -> str:
        return f"{self.edge.source}.{self.edge.namespace}"

    @property
    def destination(self) -> str:
        return node_of(self.policy.host)

    @property
    def attempts(self) -> int:
        return self.policy.attempts

    def to_json(self) -> dict[str, Any]:
        worst = self.policy.worst
        retries = worst.retries
        return {
            "source": self.source,
            "source_workload": self.edge.workload,
            "destination": self.destination,
            "host": self.policy.host,
            "virtual_service": worst.virtual_service,
            "route": worst.route,
            "timeout_s": worst.timeout_s,
            "attempts": retries.attempts,
            "per_try_timeout_s": retries.per_try_timeout_s,
            "retry_on": list(retries.retry_on),
            "implicit_default": retries.implicit,
            "retries_5xx": retries.retries_5xx,
            "retries_gateway_errors": retries.retries_gateway_errors,
            "retries_connect_failure": retries.retries_connect_failure,
            "worst_case_s": worst.worst_case_s,
            "fault_delay_s": worst.fault_delay_s,
            "circuit_breaker": self.policy.circuit_breaker,
            "outlier_detection": self.policy.outlier_detection,
            # Envoy's cap on retries in flight to the destination (Istio's default: 2^32-1).
            "max_retries_in_flight": positive(
                ((self.policy.connection_pool or {}).get("http") or {}).get("maxRetries")
            )
            or None,
            "routes": [route.to_json() for route in self.policy.routes],
        }


def node_of(fqdn: str) -> str:
    """``reviews.default.svc.cluster.local`` -> ``reviews.default``; other hosts as they are."""
    namespace = service_namespace(fqdn)
    return f"{fqdn.partition('.')[0]}.{namespace}" if namespace else fqdn


def analyse_edges(edges: Iterable[Edge], objects: IstioObjects) -> list[AnalysedEdge]:
    """Each distinct edge with its effective policy (duplicates, e.g. declared twice, once); a
    Service with one port gives the port when the edge names none."""
    index = PolicyIndex(objects.virtual_services, objects.destination_rules)
    analysed = []
    for edge in {edge.key(): edge for edge in edges}.values():
        port = edge.port or objects.service_ports.get(call_host(edge.host, edge.namespace))
        policy = index.effective(
            source_namespace=edge.namespace, source_labels=edge.labels, host=edge.host, port=port
        )
        analysed.append(AnalysedEdge(edge, policy))
    return sorted(analysed, key=lambda a: (a.source, a.destination, a.edge.workload))


# --- the graph -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    nodes: tuple[str, ...]
    hops: tuple[AnalysedEdge, ...]

    @property
    def max_attempts(self) -> int:
        return math.prod(hop.attempts for hop in self.hops)

    @property
    def max_attempts_on_503(self) -> int:
        """Attempts at the leaf when it answers 503 and every app passes a 503 on: only hops
        that retry gateway errors multiply (Istio's implicit default does not)."""
        return math.prod(
            hop.attempts for hop in self.hops if hop.policy.worst.retries.retries_gateway_errors
        )

    @property
    def max_attempts_leaf_unreachable(self) -> int:
        """Attempts at the leaf when it refuses connections (a dead pod) and every app passes
        its failed call on as a 503: the last hop multiplies if it retries connect failures
        (Istio's implicit default does), the hops before it if they retry 503s."""
        *before, last = self.hops
        leaf = last.attempts if last.policy.worst.retries.retries_connect_failure else 1
        return leaf * math.prod(
            hop.attempts for hop in before if hop.policy.worst.retries.retries_gateway_errors
        )

    @property
    def worst_case_s(self) -> float | None:
        inner = math.inf
        for hop in reversed(self.hops):
            inner = _hop_worst_case(hop.policy.worst, inner)
        return None if math.isinf(inner) else inner

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.nodes[0],
            "leaf": self.nodes[-1],
            "nodes": list(self.nodes),
            "attempts": [hop.attempts for hop in self.hops],
            "max_attempts": self.max_attempts,
            "max_attempts_on_503": self.max_attempts_on_503,
            "max_attempts_leaf_unreachable": self.max_attempts_leaf_unreachable,
            "worst_case_s": self.worst_case_s,
        }


def _hop_worst_case(route: RoutePolicy, inner_s: float) -> float:
    attempt = route.fault_delay_s + inner_s
    if route.retries.per_try_timeout_s is not None:
        attempt = min(attempt, route.retries.per_try_timeout_s)
    total = route.retries.attempts * attempt
    return min(total, route.timeout_s) if route.timeout_s is not None else total


@dataclass(frozen=True)
class Graph:
    """The DAG left once cycles are cut, with the worst path through every node."""

    worst_edge: Mapping[tuple[str, str], AnalysedEdge]
    order: tuple[str, ...]  # topological
    cut: tuple[AnalysedEdge, ...]  # edges that closed a cycle
    down: Mapping[str, tuple[int, str | None]]  # worst product to a leaf, next node
    up: Mapping[str, tuple[int, str | None]]  # worst product from an entry, previous node
    _callees: Mapping[str, Sequence[str]]  # in the DAG

    @property
    def entries(self) -> list[str]:
        return [n for n in self.order if self.up[n][1] is None]

    @property
    def leaves(self) -> list[str]:
        return [n for n in self.order if self.down[n][1] is None]

    def through(self, edge: AnalysedEdge) -> int:
        """The attempts amplification of the worst path through ``edge`` (0: a cut edge)."""
        if any((c.source, c.destination) == (edge.source, edge.destination) for c in self.cut):
            return 0
        return self.up[edge.source][0] * edge.attempts * self.down[edge.destination][0]

    def amplification(self, entry: str | None, leaf: str | None) -> int | None:
        """The worst attempts amplification from ``entry`` (any entry when None) to ``leaf``
        (any leaf when None); None when no path joins them."""
        if entry is None and leaf is None:
            return max((self.down[n][0] for n in self.entries), default=1)
        if entry is not None and leaf is None:
            return self.down[entry][0] if entry in self.down else None
        if entry is None and leaf is not None:
            return self.up[leaf][0] if leaf in self.up else None
        assert entry is not None and leaf is not None
        best = {entry: 1}
        for node in self.order:  # topological: every caller before its callees
            for callee in self._callees.get(node, ()) if node in best else ():
                product = best[node] * self.worst_edge[(node, callee)].attempts
                best[callee] = max(best.get(callee, 0), product)
        return best.get(leaf) if leaf != entry else None

    def path(self, start: str, forward: bool) -> Path:
        """The worst path from entry ``start`` (forward) or into leaf ``start`` (backward)."""
        nodes = [start]
        pointers = self.down if forward else self.up
        while (following := pointers[nodes[-1]][1]) is not None:
            nodes.append(following)
        if not forward:
            nodes.reverse()
        hops = tuple(self.worst_edge[(a, b)] for a, b in itertools.pairwise(nodes))
        return Path(tuple(nodes), hops)


def build_graph(edges: Sequence[AnalysedEdge]) -> Graph:
    worst: dict[tuple[str, str], AnalysedEdge] = {}
    for edge in edges:
        key = (edge.source, edge.destination)
        if key not in worst or edge.attempts > worst[key].attempts:
            worst[key] = edge
    nodes = sorted({n for key in worst for n in key})
    callees: dict[str, list[str]] = {n: [] for n in nodes}
    callers: dict[str, int] = dict.fromkeys(nodes, 0)
    for source, destination in sorted(worst):
        callees[source].append(destination)
        callers[destination] += 1
    cut_keys = _back_edges(nodes, callees, callers)
    for source, destination in cut_keys:
        callees[source].remove(destination)
    order = _topological(nodes, callees)
    dag = {key: edge for key, edge in worst.items() if key not in cut_keys}
    down: dict[str, tuple[int, str | None]] = {}
    for node in reversed(order):
        down[node] = max(
            ((dag[(node, c)].attempts * down[c][0], c) for c in callees[node]),
            default=(1, None),
            key=lambda pair: pair[0],
        )
    up: dict[str, tuple[int, str | None]] = dict.fromkeys(order, (1, None))
    for node in order:
        for callee in callees[node]:
            product = up[node][0] * dag[(node, callee)].attempts
            if up[callee][1] is None or product > up[callee][0]:
                up[callee] = (product, node)
    cut = tuple(worst[k] for k in sorted(cut_keys))
    return Graph(worst, tuple(order), cut, down, up, callees)


def _back_edges(
    nodes: Sequence[str], callees: Mapping[str, list[str]], callers: Mapping[str, int]
) -> set[tuple[str, str]]:
    """Edges that close a cycle in a depth-first walk, entries first (iterative: deep graphs)."""
    state: dict[str, int] = {}  # 1: on the walk's stack, 2: done
    back: set[tuple[str, str]] = set()
    starts = [n for n in nodes if callers[n] == 0] + [n for n in nodes if callers[n] > 0]
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(callees[start]))]
        while stack:
            node, pending = stack[-1]
            callee = next(pending, None)
            if callee is None:
                state[node] = 2
                stack.pop()
            elif state.get(callee) == 1:
                back.add((node, callee))
            elif callee not in state:
                state[callee] = 1
                stack.append((callee, iter(callees[callee])))
    return back


def _topological(nodes: Sequence[str], callees: Mapping[str, list[str]]) -> list[str]:
    waiting = dict.fromkeys(nodes, 0)
    for node in nodes:
        for callee in callees[node]:
            waiting[callee] += 1
    ready = [n for n in nodes if waiting[n] == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for callee in callees[node]:
            waiting[callee] -= 1
            if waiting[callee] == 0:
                ready.append(callee)
    return order


# --- findings --------------------------------------------------------------------------------


def _finding(kind: str, where: str, message: str, fix: str, **detail: Any) -> dict[str, Any]:
    return {"kind": kind, "where": where, "message": message, "fix": fix, **detail}


def _edge_name(edge: AnalysedEdge) -> str:
    return f"{edge.source} -> {edge.destination}"


def _seconds(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g} s"


def edge_findings(edge: AnalysedEdge) -> list[dict[str, Any]]:
    findings = []
    name = _edge_name(edge)
    for route in edge.policy.routes:
        per_try, timeout = route.retries.per_try_timeout_s, route.timeout_s
        attempts = route.retries.attempts
        if per_try is not None and timeout is not None and attempts > 1 and per_try >= timeout:
            findings.append(
                _finding(
                    "per_try_timeout",
                    name,
                    f"route {route.route}: perTryTimeout {per_try:g} s >= timeout {timeout:g} s: "
                    "the route times out before any retry can start",
                    f"make perTryTimeout at most timeout / attempts ({timeout / attempts:g} s), "
                    "or drop the retries",
                    edge=[edge.source, edge.destination],
                )
            )
        methods = set(route.methods)
        if methods & _UNSAFE_METHODS and _RETRY_AFTER_SENT & set(route.retries.retry_on):
            findings.append(
                _finding(
                    "retries_non_idempotent",
                    name,
                    f"route {route.route} matches {sorted(methods & _UNSAFE_METHODS)} and retries "
                    f"after the request was sent ({','.join(route.retries.retry_on)})",
                    "retry only connect-failure,refused-stream there, or make it idempotent",
                    edge=[edge.source, edge.destination],
                )
            )
    if not edge.policy.circuit_breaker:
        findings.append(
            _finding(
                "no_circuit_breaker",
                name,
                f"{edge.destination} has no connection pool limit for this call: overload queues "
                "without bound",
                f"set trafficPolicy.connectionPool (e.g. http.http1MaxPendingRequests) in a "
                f"DestinationRule for {edge.policy.host}",
                edge=[edge.source, edge.destination],
            )
        )
    if not edge.policy.outlier_detection:
        findings.append(
            _finding(
                "no_outlier_detection",
                name,
                f"a failing {edge.destination} replica keeps receiving its share of this call",
                f"set trafficPolicy.outlierDetection (e.g. consecutive5xxErrors) in a "
                f"DestinationRule for {edge.policy.host}",
                edge=[edge.source, edge.destination],
            )
        )
    return findings


def inversion_findings(graph: Graph) -> list[dict[str, Any]]:
    """An outer hop's per-attempt budget shorter than what its callee's own call may take."""
    findings = []
    by_caller: dict[str, list[AnalysedEdge]] = {}
    for (source, _), edge in sorted(graph.worst_edge.items()):
        by_caller.setdefault(source, []).append(edge)
    for (_, middle), outer in sorted(graph.worst_edge.items()):
        budget = outer.policy.worst.per_attempt_budget_s
        if budget is None:
            continue
        for inner in by_caller.get(middle, []):
            route = inner.policy.worst
            if route.worst_case_s is not None:
                inner_s, how = route.worst_case_s, "may take up to"
            else:  # unbounded, but a fixed delay on every request is certain
                inner_s, how = route.fault_delay_s, "takes at least"
            if inner_s <= budget:
                continue
            findings.append(
                _finding(
                    "timeout_inversion",
                    f"{outer.source} -> {middle} -> {inner.destination}",
                    f"{_edge_name(inner)} {how} {inner_s:g} s ({route.retries.attempts} "
                    f"attempt(s), timeout {_seconds(route.timeout_s)}, per try "
                    f"{_seconds(route.retries.per_try_timeout_s)}, fixed delay "
                    f"{route.fault_delay_s:g} s) but {_edge_name(outer)} gives up after "
                    f"{budget:g} s: work its caller no longer waits for",
                    f"keep {_edge_name(inner)}'s timeout (or attempts x perTryTimeout) under "
                    f"{budget:g} s, or give {_edge_name(outer)} a longer timeout",
                    path=[outer.source, middle, inner.destination],
                    inner_s=inner_s,
                    outer_budget_s=budget,
                )
            )
    return findings


def amplification_findings(paths: Sequence[Path], threshold: int) -> list[dict[str, Any]]:
    return [
        _finding(
            "amplification",
            " -> ".join(path.nodes),
            f"one request to {path.nodes[0]} may become {path.max_attempts} attempts at "
            f"{path.nodes[-1]} ({' x '.join(str(h.attempts) for h in path.hops)}), above "
            f"{threshold}",
            "retry at one hop only (attempts: 0 on the others, which also turns off Istio's "
            "implicit retries), retry only connect-failure,refused-stream on inner hops, or "
            "cap the retries in flight with a DestinationRule's connectionPool.http.maxRetries",
            path=list(path.nodes),
            max_attempts=path.max_attempts,
        )
        for path in paths
        if path.max_attempts > threshold
    ]


def cycle_findings(graph: Graph) -> list[dict[str, Any]]:
    return [
        _finding(
            "cycle",
            _edge_name(edge),
            f"{_edge_name(edge)} closes a call cycle: with retries, attempts along it have no "
            "bound; paths are reported with this edge cut",
            "break the cycle, or turn retries off on one of its edges (attempts: 0)",
            edge=[edge.source, edge.destination],
        )
        for edge in graph.cut
    ]


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """The report as plain JSON (what the CLI prints with --json and the probe returns), and
    the graph it was made from (for questions about one entry or leaf)."""

    report: dict[str, Any]
    graph: Graph


def build_report(
    edges: Iterable[Edge],
    objects: IstioObjects,
    *,
    max_amplification: int = DEFAULT_MAX_AMPLIFICATION,
    max_paths: int = DEFAULT_MAX_PATHS,
    ignore: Iterable[str] = (),
) -> Analysis:
    """The policy report of these edges under these objects; findings of the ``ignore`` kinds
    are left out (and counted as ignored)."""
    analysed = analyse_edges(edges, objects)
    graph = build_graph(analysed)
    paths: dict[tuple[str, ...], Path] = {}
    for entry in graph.entries:
        path = graph.path(entry, forward=True)
        paths.setdefault(path.nodes, path)
    for leaf in graph.leaves:
        path = graph.path(leaf, forward=False)
        paths.setdefault(path.nodes, path)
    ranked = sorted((p for p in paths.values() if p.hops), key=lambda p: (-p.max_attempts, p.nodes))
    shown = ranked[:max_paths]
    every_finding = (
        amplification_findings(shown, max_amplification)
        + inversion_findings(graph)
        + cycle_findings(graph)
        + [finding for edge in analysed for finding in edge_findings(edge)]
    )
    ignored = set(ignore)
    findings = [f for f in every_finding if f["kind"] not in ignored]
    edges_json = []
    for edge in analysed:
        described = edge.to_json()
        described["worst_path_amplification"] = graph.through(edge)
        edges_json.append(described)
    document = {
        "edges": edges_json,
        "paths": [path.to_json() for path in shown],
        "paths_total": len(ranked),
        "max_amplification": ranked[0].max_attempts if ranked else 1,
        "entries": graph.entries,
        "leaves": graph.leaves,
        "findings": findings,
        "summary": {
            "edges": len(analysed),
            "nodes": len(graph.order),
            "findings": _count_kinds(findings),
            "ignored": _count_kinds(f for f in every_finding if f["kind"] in ignored),
            "amplification_threshold": max_amplification,
        },
    }
    return Analysis(document, graph)


def _count_kinds(findings: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(FINDING_KINDS, 0)
    for finding in findings:
        counts[finding["kind"]] += 1
    return counts
