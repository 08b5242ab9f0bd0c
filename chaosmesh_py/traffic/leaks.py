"""Is a dark-launched version really hidden? Requests through every way in, each answer read.

A dark launch routes testers (a header, or the calling workload's labels) to a hidden version
and everyone else elsewhere. The routing lives in VirtualServices, which only sidecars and
gateways apply, so a version is hidden only if every other way to it is closed too (field.md,
traffic section; flagger#1777):

- a client **without a sidecar** reaches the Service's ClusterIP, and kube-proxy spreads its
  connections over every pod the selector picks, the hidden ones included;
- **another Service** selecting the hidden pods (Flagger's ``-canary`` Service, a per-version
  Service) is routed to by every sidecar, with no VirtualService in the way;
- a tester's header that an application does **not propagate** to its own calls sends the tester
  to the old version one hop further on: the testers test nothing.

So the check sends real requests through each entry: the ingress (``ingress_path``, the front
application's page that calls the service), the sidecar of every in-mesh caller, the service as
a client without a sidecar, and every other Service selecting the hidden pods through a sidecar
(and without one where an address for it exists); ``chaosmesh_py.traffic.entries`` finds or
parses them. Non-tester requests must never be served by the hidden version; tester requests
must be, on every entry that honours their match. Each answer is read: the server's identity
is taken from the response body (``served_by``: by default Bookinfo's ``"podname":
"reviews-v2"``), one request at a time on a new connection (so kube-proxy chooses anew each
time).

What it cannot see: a response that names no server (an error page, a body without the
identity) is counted as unidentified and fails the check rather than being guessed; a
connection accepted then closed before any answer (STRICT mTLS refusing a plain-text client) is
counted as closed, which is not a leak from a client without a sidecar, and no answer from any
other entry; an entry nothing answers at (nothing listening, or silent past ``timeout_s``) is
unreachable, which fails the check: a check that reached nothing tested nothing. Copies the
hidden version receives without answering (an Istio ``mirror``) show in no response: on the
local mesh they are counted from Envoy's counters while only the requests without the tester
match flow (the testers' are sent after); on a cluster only the version's own metrics show
them. A request pinned to a pod's own address is not an
entry: reaching a pod by its IP is choosing it.
"""

from __future__ import annotations

import functools
import http.client
import re
import socket
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py.errors import ApiError, InvalidInput
from chaosmesh_py.kube import SERVICE, Kube
from chaosmesh_py.observe.statistics import wilson_interval
from chaosmesh_py.traffic import share
from chaosmesh_py.traffic.entries import Entry, discover_entries, uncovered

# Bookinfo's reviews answer with their pod's name; productpage's /api/v1/products/<id>/reviews
# passes that answer through, so the same pattern reads it behind the ingress.
PODNAME_PATTERN = r'"podname"\s*:\s*"([^"]+)"'
MAX_REQUESTS_PER_ENTRY = 10_000
TESTER_KEYS = ("headers", "source_labels")
# What _one returns in place of an HTTP status when none came.
CLOSED = 0
UNREACHABLE = -1


@dataclass(frozen=True)
class Testers:
    headers: Mapping[str, str] = field(default_factory=dict)
    source_labels: Mapping[str, str] = field(default_factory=dict)

    def calls_from(self, entry: Entry) -> bool:
        """Can a tester's request go through ``entry``?"""
        if not entry.honours_matches:
            return False
        if not self.source_labels:
            return True
        labels = entry.caller_labels or {}
        return all(labels.get(k) == v for k, v in self.source_labels.items())

    def describe(self) -> str:
        """The match by name: header values may be credentials (a session cookie), and what
        the probe returns ends up in journals and logs."""
        parts = [f"header {name}" for name in self.headers]
        parts += [f"source label {k}={v}" for k, v in self.source_labels.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class Sample:
    """What ``requests`` requests through one entry got back."""

    requests: int
    hidden: int
    served_by: Mapping[str, int]
    closed: int  # connected, then closed without an answer
    unreachable: int  # no connection, or no answer in time
    unidentified: int
    statuses: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        low, high = wilson_interval(self.hidden, self.requests)
        return {
            "requests": self.requests,
            "hidden_hits": self.hidden,
            # Where the share of this entry's requests the hidden version gets lies (Wilson,
            # 95 %): 0 of 20 bounds it below 16 %, 0 of 100 below 3.7 %.
            "hidden_share_95": [round(low, 4), round(high, 4)],
            "served_by": dict(sorted(self.served_by.items())),
            "closed": self.closed,
            "unreachable": self.unreachable,
            "unidentified": self.unidentified,
            "statuses": dict(sorted(self.statuses.items())),
        }


@dataclass(frozen=True)
class Check:
    service: str
    hidden_version: str
    hidden_name: str
    testers: Testers
    served_by: re.Pattern[str]
    requests_per_entry: int
    timeout_s: float
    concurrency: int
    # False: the testers' gaps are reported but not findings ("no one *else* sees it").
    testers_must_reach: bool = True


def parse_testers(testers: Any) -> Testers:
    if not isinstance(testers, Mapping) or not testers:
        raise InvalidInput(
            "testers",
            f"must be an object with headers and/or source_labels, not {testers!r}",
            'e.g. {"headers": {"end-user": "jason"}} or {"source_labels": {"app": "tester"}}',
        )
    unknown = sorted(set(testers) - set(TESTER_KEYS))
    if unknown:
        raise InvalidInput("testers", f"unknown keys {unknown}", f"use {list(TESTER_KEYS)}")
    parsed = {}
    for key in TESTER_KEYS:
        # Values are never echoed: a tester's header may be a session cookie.
        value = testers.get(key) or {}
        if not isinstance(value, Mapping):
            raise InvalidInput(
                f"testers.{key}",
                f"must map names to strings (got {type(value).__name__})",
                '{"end-user": "jason"}',
            )
        for name, text in value.items():
            if not isinstance(name, str) or not name or not isinstance(text, str):
                raise InvalidInput(
                    f"testers.{key}.{name}",
                    f"must be a non-empty name with a string value (got {type(text).__name__})",
                    "quote the value",
                )
        parsed[key] = dict(value)
    if not parsed["headers"] and not parsed["source_labels"]:
        raise InvalidInput(
            "testers", "names no header and no source label", "name what testers carry"
        )
    return Testers(**parsed)


# --- sending and reading ---------------------------------------------------------------------


def sample(check: Check, entry: Entry, headers: Mapping[str, str]) -> Sample:
    """``check.requests_per_entry`` requests through ``entry``, each on its own connection."""
    request_headers = {**({"Host": entry.host} if entry.host else {}), **headers}
    with ThreadPoolExecutor(max_workers=check.concurrency) as pool:
        answers = list(
            pool.map(
                lambda _: _one(entry.url + entry.path, request_headers, check.timeout_s),
                range(check.requests_per_entry),
            )
        )
    served: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    closed = unreachable = unidentified = hidden = 0
    for status, body in answers:
        if status == CLOSED:
            closed += 1
            statuses["closed"] += 1
            continue
        if status == UNREACHABLE:
            unreachable += 1
            statuses["unreachable"] += 1
            continue
        statuses[str(status)] += 1
        match = check.served_by.search(body)
        if match is None:
            unidentified += 1
            continue
        served[match.group(1)] += 1
        hidden += is_hidden(match.group(1), check.hidden_name)
    return Sample(
        requests=check.requests_per_entry,
        hidden=hidden,
        served_by=dict(served),
        closed=closed,
        unreachable=unreachable,
        unidentified=unidentified,
        statuses=dict(statuses),
    )


def is_hidden(server: str, hidden_name: str) -> bool:
    """``reviews-v2`` names the hidden version, and so does a pod ``reviews-v2-5b9c7d-x2x7q``."""
    return server == hidden_name or server.startswith(f"{hidden_name}-")


def _one(url: str, headers: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
    """(status, body) of one GET on a new connection; (CLOSED, "") when the connection was
    accepted and closed without an answer, (UNREACHABLE, "") when none was made or nothing
    answered in time."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout_s)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", target or "/", headers={**headers, "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read(1_000_000).decode(errors="replace")
    except (ConnectionRefusedError, TimeoutError, socket.gaierror):
        return UNREACHABLE, ""
    except (OSError, http.client.HTTPException):  # reset, or closed before a status line
        return CLOSED, ""
    finally:
        connection.close()


# --- judging ---------------------------------------------------------------------------------


def judge(
    check: Check,
    results: list[tuple[Entry, Sample | None, Sample | None]],
    not_checked: list[str],
    mirrored: int | None = None,
) -> dict[str, Any]:
    """The result: per entry, the leaks and the testers' gaps named, and the verdict.
    ``mirrored``: copies of requests without the tester match that the hidden version received
    without answering them (None: not measurable here)."""
    leaks = []
    gaps = []
    unidentified = []
    unanswered = []
    for entry, others, testers in results:
        for what, got in (
            ("requests without the tester match", others),
            ("tester requests", testers),
        ):
            if got is not None and got.unidentified:
                unidentified.append(
                    f"{entry.name}: {got.unidentified} of {got.requests} {what} answered without "
                    f"naming their server (statuses {dict(got.statuses)})"
                )
            # Only a client without a sidecar may be closed on (STRICT mTLS); anything else
            # should answer, even with an error.
            silent = (
                got.unreachable + (got.closed if entry.kind != "no-sidecar" else 0) if got else 0
            )
            if got is not None and silent:
                unanswered.append(
                    f"{entry.name}: {silent} of {got.requests} {what} got no answer at "
                    f"{entry.url} (statuses {dict(got.statuses)})"
                )
        if others is not None and others.hidden:
            leaks.append(
                f"{_path(entry, check)} -> {check.hidden_name}: "
                f"{others.hidden} of {others.requests} requests"
            )
        if testers is not None and testers.hidden < testers.requests:
            gaps.append(_gap(entry, testers, check, results))
    if mirrored:
        leaks.append(
            f"mirrored to {check.hidden_name}: {mirrored} copies of requests without the tester "
            "match, answered by another version (Envoy's counters: a mirror's answers are "
            "discarded, its side effects are not)"
        )
    if not any(others or testers for _, others, testers in results):
        not_checked = [*not_checked, "nothing: no entry was checked"]
    findings = len(leaks) + len(unidentified) + len(unanswered) + len(not_checked)
    findings += len(gaps) if check.testers_must_reach else 0
    return {
        "service": check.service,
        "hidden_version": check.hidden_version,
        # True only when every entry was checked and answered as a dark launch should.
        "hidden": findings == 0,
        "testers_must_reach": check.testers_must_reach,
        "findings": findings,
        "leaks": leaks,
        "tester_gaps": gaps,
        "unidentified": unidentified,
        "unanswered": unanswered,
        "not_checked": not_checked,
        # The local mesh only: what the responses cannot show (None elsewhere).
        "mirrored_copies": mirrored,
        "requests": sum(s.requests for _, o, t in results for s in (o, t) if s is not None),
        "entries": [
            {
                **entry.to_json(),
                "others": others.to_json() if others else None,
                "testers": testers.to_json() if testers else None,
            }
            for entry, others, testers in results
        ],
    }


def _path(entry: Entry, check: Check) -> str:
    if entry.kind == "ingress":
        return " -> ".join(("ingress", *entry.via, check.service))
    if entry.kind == "sidecar":
        return f"{entry.name} (its sidecar) via Service {check.service}"
    return entry.name


def _gap(
    entry: Entry,
    testers: Sample,
    check: Check,
    results: list[tuple[Entry, Sample | None, Sample | None]],
) -> str:
    served = ", ".join(f"{name}: {count}" for name, count in sorted(testers.served_by.items()))
    text = (
        f"testers through {_path(entry, check)} reached {check.hidden_name} in {testers.hidden} of "
        f"{testers.requests} requests (served by {served or 'nobody'})"
    )
    if entry.kind != "ingress":
        return text
    # Sent straight to the service from a sidecar, do the testers get there? Then the routing
    # matches them and a hop before the service dropped the match.
    direct = [
        e for e, _, t in results if e.kind == "sidecar" and t is not None and t.hidden == t.requests
    ]
    if not direct:
        return (
            f"{text}; sent straight to {check.service} from a sidecar they do not reach it either"
        )
    last = entry.via[-1] if entry.via else None
    witness = next((e for e in direct if (e.caller_labels or {}).get("app") == last), direct[0])
    if len(entry.via) == 1:
        hop = f"{last} -> {check.service}"
    else:  # which hop dropped it is not visible from outside: the ones it may be
        hop = "one of the hops " + " -> ".join(("ingress", *entry.via, check.service))
    return (
        f"{text}: the tester match ({check.testers.describe()}) is lost at {hop}; sent straight to "
        f"{check.service} from {witness.name.removeprefix('in-mesh caller ')}'s sidecar it reaches "
        f"{check.hidden_name}" + (f": {last} does not propagate it" if len(entry.via) == 1 else "")
    )


def run(
    check: Check,
    entries: list[Entry],
    not_checked: list[str],
    copies_counted: Callable[[], AbstractContextManager[Counter[str]]] | None = None,
) -> dict[str, Any]:
    """Every entry's requests without the tester match, then the testers': with
    ``copies_counted`` (the local mesh), the copies the hidden version received without
    answering are counted while only the former flow."""
    others: dict[int, Sample | None] = {}
    counting = copies_counted() if copies_counted is not None else nullcontext(None)
    with counting as copies:
        for index, entry in enumerate(entries):
            tester_caller = check.testers.calls_from(entry)
            # A tester workload's every request is a tester's when testers are told by labels.
            sends_others = not (tester_caller and not check.testers.headers)
            others[index] = sample(check, entry, {}) if sends_others else None
    results = [
        (
            entry,
            others[index],
            sample(check, entry, check.testers.headers)
            if check.testers.calls_from(entry)
            else None,
        )
        for index, entry in enumerate(entries)
    ]
    mirrored = None if copies is None else copies[check.hidden_version]
    return judge(check, results, not_checked, mirrored)


def check_dark_launch(
    kube: Kube,
    check: Check,
    namespace: str,
    *,
    path: str,
    ingress_path: str | None,
    via: Sequence[str],
    entries: Sequence[Entry] | None,
) -> dict[str, Any]:
    """Find the entries (given, or the local mesh's), send, judge."""
    mesh = kube.local_mesh()
    try:
        services = kube.list(SERVICE, namespace)
        listed = None
    except ApiError as error:
        services, listed = [], f"could not list the Services in {namespace}: {error}"
    if entries is None:
        if mesh is None:
            raise InvalidInput(
                "entries",
                "not given, and this API is a cluster's: the probe cannot find its ways in",
                "list them: the ingress URL (with path), a URL reached from a pod without a "
                "sidecar, one per in-mesh caller, one per Service selecting the hidden pods",
            )
        if mesh.get("namespace") != namespace:
            raise InvalidInput(
                "namespace", f"the local mesh serves {mesh.get('namespace')!r}, not {namespace!r}"
            )
        found, not_checked = discover_entries(
            mesh,
            services,
            service=check.service,
            hidden_version=check.hidden_version,
            path=path,
            ingress_path=ingress_path,
            via=via,
        )
    else:
        found = list(entries)
        not_checked = uncovered(services, check.service, check.hidden_version, entries)
    if listed:
        not_checked.append(listed)
    counted = None
    if mesh is not None and check.service in mesh["services"]:
        fqdn = mesh["services"][check.service]["fqdn"]
        counted = functools.partial(share.copies_counted, mesh, fqdn)
    return run(check, found, not_checked, counted)
