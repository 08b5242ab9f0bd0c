"""A fault on a workload's inbound side, as an EnvoyFilter istiod accepts (pure).

A VirtualService fault is applied by the *caller's* sidecar: a local reply that the caller's
retries never retry and its outlier detection never counts. To test those, the upstream itself
must fail. istiod puts an empty fault filter (``envoy.filters.http.fault``) on every sidecar's
inbound HTTP chain, before the router; this EnvoyFilter fills it in for the pods its
``workloadSelector`` picks (a MERGE on that filter, Envoy v3 names)::

    spec:
      workloadSelector: {labels: {app: reviews, version: v3}}
      configPatches:
      - applyTo: HTTP_FILTER
        match:
          context: SIDECAR_INBOUND
          listener:
            portNumber: 9080                  # only with a port: else every inbound port
            filterChain:
              filter:
                name: envoy.filters.network.http_connection_manager
                subFilter: {name: envoy.filters.http.fault}
        patch:
          operation: MERGE
          value:
            name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {http_status: 503, percentage: {numerator: 500000, denominator: MILLION}}
              delay: {fixed_delay: 2s, percentage: {numerator: 1000000, denominator: MILLION}}

The server's own sidecar answers the aborted requests (response flag FI in its access log,
``http.<inbound prefix>.fault.aborts_injected``); for the caller they are real upstream 5xx.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.istio.fault import parse_duration_ms

HCM_FILTER = "envoy.filters.network.http_connection_manager"
FAULT_FILTER = "envoy.filters.http.fault"
HTTP_FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
MILLION = 1_000_000
# Kubernetes label syntax: an optional DNS-subdomain prefix, a name of up to 63 characters.
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class UpstreamFault:
    """What to inject on the inbound side of the pods ``workload_labels`` select."""

    workload_labels: Mapping[str, str]
    abort_http_status: int | None = None
    abort_percentage: float = 100.0
    delay_ms: int | None = None
    delay_percentage: float = 100.0
    port: int | None = None

    def envoy_filter_spec(self) -> dict[str, Any]:
        listener: dict[str, Any] = {
            "filterChain": {"filter": {"name": HCM_FILTER, "subFilter": {"name": FAULT_FILTER}}}
        }
        if self.port is not None:
            listener = {"portNumber": self.port, **listener}
        return {
            "workloadSelector": {"labels": dict(self.workload_labels)},
            "configPatches": [
                {
                    "applyTo": "HTTP_FILTER",
                    "match": {"context": "SIDECAR_INBOUND", "listener": listener},
                    "patch": {
                        "operation": "MERGE",
                        "value": {"name": FAULT_FILTER, "typed_config": self.http_fault()},
                    },
                }
            ],
        }

    def http_fault(self) -> dict[str, Any]:
        """Envoy's HTTPFault (v3 JSON) for this fault."""
        fault: dict[str, Any] = {"@type": HTTP_FAULT_TYPE}
        if self.abort_http_status is not None:
            fault["abort"] = {
                "http_status": self.abort_http_status,
                "percentage": _fraction(self.abort_percentage),
            }
        if self.delay_ms is not None:
            fault["delay"] = {
                "fixed_delay": _seconds_text(self.delay_ms),
                "percentage": _fraction(self.delay_percentage),
            }
        return fault

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workload_labels": dict(self.workload_labels)}
        if self.abort_http_status is not None:
            out["abort"] = {
                "http_status": self.abort_http_status,
                "percentage": self.abort_percentage,
            }
        if self.delay_ms is not None:
            out["delay"] = {"fixed_delay_ms": self.delay_ms, "percentage": self.delay_percentage}
        if self.port is not None:
            out["port"] = self.port
        return out

    def describe(self) -> str:
        """For people: "aborts 50 % of requests to pods app=reviews,version=v3 with 503
        (inbound)"."""
        pods = ",".join(f"{k}={v}" for k, v in sorted(self.workload_labels.items()))
        where = f"pods {pods}" + (f" port {self.port}" if self.port is not None else "")
        parts = []
        if self.abort_http_status is not None:
            parts.append(
                f"aborts {self.abort_percentage:g} % of requests to {where} "
                f"with {self.abort_http_status}"
            )
        if self.delay_ms is not None:
            parts.append(
                f"delays {self.delay_percentage:g} % of requests to {where} by {self.delay_ms} ms"
            )
        return "; ".join(parts) + " (inbound)"


def parse(
    *,
    workload_labels: object,
    abort_http_status: object,
    abort_percentage: object,
    delay: object,
    delay_percentage: object,
    port: object,
) -> UpstreamFault:
    """Check every argument before any request; InvalidInput names the field and the fix."""
    labels = parse_labels(workload_labels)
    if abort_http_status is None and delay is None:
        raise InvalidInput(
            "abort_http_status/delay",
            "give at least one of them: nothing would be injected",
            'e.g. abort_http_status: 503, or delay: "2s"',
        )
    status = None
    if abort_http_status is not None:
        status = checks.whole("abort_http_status", abort_http_status, 200, 599, "e.g. 503")
    delay_ms = None if delay is None else parse_duration_ms(delay, "delay")
    return UpstreamFault(
        workload_labels=labels,
        abort_http_status=status,
        abort_percentage=_percentage("abort_percentage", abort_percentage),
        delay_ms=delay_ms,
        delay_percentage=_percentage("delay_percentage", delay_percentage),
        port=None if port is None else checks.whole("port", port, 1, 65535, "e.g. 9080"),
    )


def parse_labels(value: object, field: str = "workload_labels") -> dict[str, str]:
    """A non-empty map of Kubernetes label names to values (what a workloadSelector takes)."""
    example = 'e.g. {"app": "reviews", "version": "v3"}'
    if not isinstance(value, Mapping) or not value:
        raise InvalidInput(
            field,
            f"must be a non-empty map of label names to values, got {shown(value)}",
            f"{example}; an empty selector would pick every pod of the namespace",
        )
    labels: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _LABEL_NAME.match(key):
            raise InvalidInput(field, f"{shown(key)} is not a label name", example)
        if not isinstance(item, str) or not _LABEL_VALUE.match(item):
            raise InvalidInput(
                f"{field}.{key}",
                f"must be a label value (a string of up to 63 letters, digits, '-', '_', "
                f"'.'), got {shown(item)}",
                example,
            )
        labels[key] = item
    return labels


def describe_spec(spec: Mapping[str, Any]) -> str | None:
    """The description of an EnvoyFilter spec this module built; None for any other spec."""
    try:
        (patch,) = spec["configPatches"]
        config = patch["patch"]["value"]["typed_config"]
        if config.get("@type") != HTTP_FAULT_TYPE:
            return None
        abort = config.get("abort") or {}
        delay = config.get("delay") or {}
        port = (patch["match"].get("listener") or {}).get("portNumber")
        return UpstreamFault(
            workload_labels=dict(spec["workloadSelector"]["labels"]),
            abort_http_status=abort.get("http_status"),
            abort_percentage=_from_fraction(abort.get("percentage")),
            delay_ms=_milliseconds(delay["fixed_delay"]) if delay else None,
            delay_percentage=_from_fraction(delay.get("percentage")),
            port=port,
        ).describe()
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _percentage(field: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0.0001 <= value <= 100
    ):
        raise InvalidInput(
            field,
            f"must be a percentage above 0, up to 100 (from 0.0001), got {shown(value)}",
            "e.g. 50 for half of the requests",
        )
    return float(value)


def _fraction(percentage: float) -> dict[str, Any]:
    # istiod's truncation (uint32(value * 10000)), in parts per million.
    return {"numerator": int(percentage * 10_000), "denominator": "MILLION"}


def _from_fraction(fraction: Mapping[str, Any] | None) -> float:
    if not fraction:
        return 100.0
    return int(fraction.get("numerator", 0)) / 10_000


def _seconds_text(milliseconds: int) -> str:
    return f"{milliseconds / 1000:g}s"


def _milliseconds(text: str) -> int:
    return round(float(text.removesuffix("s")) * 1000)
