"""Chaos Toolkit probes for traffic: what users get, measured, not what the configuration says.

Three families, each a thin surface over its own module:
- the observed share of requests per version (``chaosmesh_py.traffic.share``);
- the dark-launch leak check (``chaosmesh_py.traffic.leaks``);
- canary analysis, canary against baseline (``chaosmesh_py.traffic.canary``).
"""

import re
from collections.abc import Mapping
from typing import Any

from chaosmesh_py.engine.access import Access, needs, on
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.kube import Kube
from chaosmesh_py.traffic import leaks
from chaosmesh_py.traffic.entries import parse_entries
from chaosmesh_py.traffic.hosts import SERVICE

__all__ = ["dark_launch_leaks"]

# ---------------------------------------------------------------- observed share (share.py)


# ---------------------------------------------------------------- dark-launch leaks (leaks.py)


def _dark_launch_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """It lists the namespace's Services (other Services selecting the hidden pods are ways in);
    everything else is HTTP."""
    return on(SERVICE, ["list"], arguments["namespace"])


@needs(_dark_launch_needs)
def dark_launch_leaks(
    service: str,
    hidden_version: str,
    testers: dict,
    namespace: str = "default",
    path: str = "/",
    ingress_path: str = None,
    via: list = None,
    entries: list = None,
    requests_per_entry: int = 20,
    served_by: str = leaks.PODNAME_PATTERN,
    hidden_name: str = None,
    testers_must_reach: bool = True,
    concurrency: int = 10,
    timeout_s: float = 5.0,
    secrets: dict = None,
) -> dict:
    """Is `hidden_version` of `service` really hidden from everyone but `testers`? Real
    requests through every way in: `requests_per_entry` without the tester match, which must
    never be served by the hidden version, and as many with it where the match is honoured
    (ingress, in-mesh callers), which must all be.

    `testers`: {"headers": {"end-user": "jason"}} and/or {"source_labels": {"app": "tester"}}.
    `path`: a path of the service that answers with its server's identity (Bookinfo's
    /reviews/0); `ingress_path`: a page behind the ingress that calls the service and passes
    the identity on (/api/v1/products/0/reviews), with `via` the services in between
    (["productpage"]) so a hop that drops the tester match is named. `served_by`: a regular
    expression whose group 1 is the server's name in a response (default: Bookinfo's
    "podname"); the hidden version is `hidden_name` (default "<service>-<hidden_version>") or a
    pod named after it.

    `entries`: on the local mesh, discovered when not given (the ingress, every workload's
    sidecar, the service without a sidecar, every other Service selecting the hidden pods). On
    a cluster, list them: [{"name", "url", "path"?, "host"?, "kind": "ingress" | "sidecar" |
    "no-sidecar" | "service", "via"?, "caller_labels"?}].

    `testers_must_reach` false: the testers' gaps are reported, not counted ("no one but the
    testers sees it", true before a dark launch exists as after).

    Returns hidden (bool), findings (how many of leaks, tester_gaps, unidentified,
    not_checked), each as sentences naming the path ("no-sidecar client via Service reviews ->
    reviews-v2: 7 of 20 requests"), and per entry what was sent and who answered. Check it
    with {"type": "range", "range": [0, 0], "target": "findings"}.
    """
    with boundary():
        check = leaks.Check(
            service=_name("service", service),
            hidden_version=_name("hidden_version", hidden_version),
            hidden_name=hidden_name or f"{service}-{hidden_version}",
            testers=leaks.parse_testers(testers),
            served_by=_served_by(served_by),
            requests_per_entry=_count(
                "requests_per_entry", requests_per_entry, leaks.MAX_REQUESTS_PER_ENTRY
            ),
            timeout_s=_positive("timeout_s", timeout_s),
            concurrency=_count("concurrency", concurrency, 100),
            testers_must_reach=_flag("testers_must_reach", testers_must_reach),
        )
        for field, value in (("path", path), ("ingress_path", ingress_path)):
            if value is not None and (not isinstance(value, str) or not value.startswith("/")):
                raise InvalidInput(field, f"must start with '/', not {value!r}", "/reviews/0")
        if via is not None and (
            not isinstance(via, list) or not all(isinstance(v, str) and v for v in via)
        ):
            raise InvalidInput("via", f"must be a list of service names, not {via!r}")
        given = None if entries is None else parse_entries(entries, path)
        return leaks.check_dark_launch(
            Kube.connect(secrets),
            check,
            _name("namespace", namespace),
            path=path,
            ingress_path=ingress_path,
            via=via or [],
            entries=given,
        )


def _name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"must be a non-empty string, not {value!r}")
    return value


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(field, f"must be true or false, not {value!r}")
    return value


def _count(field: str, value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidInput(field, f"must be a whole number from 1 to {most}, not {value!r}")
    return value


def _positive(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInput(field, f"must be a number of seconds above 0, not {value!r}")
    return float(value)


def _served_by(pattern: Any) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except (re.error, TypeError) as error:
        raise InvalidInput("served_by", f"is not a regular expression: {error}") from None
    if compiled.groups < 1:
        raise InvalidInput(
            "served_by",
            "has no group: group 1 must capture the server's name",
            leaks.PODNAME_PATTERN,
        )
    return compiled


# ---------------------------------------------------------------- canary analysis (canary.py)
