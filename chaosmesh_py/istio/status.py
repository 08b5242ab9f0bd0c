"""What the data plane made of an Istio resource, as the resource's ``status`` says (pure).

Istio reports whether its proxies took a resource's configuration as a condition of type
``Reconciled`` in ``status.conditions`` (istio.io/api meta/v1alpha1 ``IstioCondition``), with
the ``observedGeneration`` it refers to. The local mesh writes that condition when its Envoy
rejects a configuration, with Envoy's own reason as the message, and sets it back to "True"
once Envoy runs the resource again; effect verification reads it so an action fails at once,
quoting Envoy, instead of waiting out its time box.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECONCILED = "Reconciled"
REJECTED = "Rejected"
ACCEPTED = "Accepted"
NOT_SUPPORTED = "NotSupported"


def _condition(
    resource: Mapping[str, Any], status: str, reason: str, message: str, now: str
) -> dict[str, Any]:
    return {
        "type": RECONCILED,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": (resource.get("metadata") or {}).get("generation", 0),
        "lastTransitionTime": now,
    }


def _with(resource: Mapping[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    """A merge patch for the status subresource: ``condition`` in place of the resource's own
    ``Reconciled`` condition, every other condition kept."""
    others = [
        c
        for c in ((resource.get("status") or {}).get("conditions") or [])
        if isinstance(c, Mapping) and c.get("type") != RECONCILED
    ]
    return {"status": {"conditions": [*others, condition]}}


def rejected_patch(resource: Mapping[str, Any], reason: str, now: str) -> dict[str, Any]:
    """Say the data plane rejected the resource's current generation, for ``reason``."""
    return _with(resource, _condition(resource, "False", REJECTED, reason, now))


def not_supported_patch(resource: Mapping[str, Any], reason: str, now: str) -> dict[str, Any]:
    """Say the data plane does not apply (part of) the resource's current generation."""
    return _with(resource, _condition(resource, "False", NOT_SUPPORTED, reason, now))


def not_supported(resource: Mapping[str, Any]) -> str | None:
    """The message of a NotSupported condition about the resource's current generation."""
    condition = _reconciled(resource)
    generation = (resource.get("metadata") or {}).get("generation", 0)
    if (
        condition.get("reason") != NOT_SUPPORTED
        or condition.get("observedGeneration") != generation
    ):
        return None
    return str(condition.get("message") or "")


def accepted_patch(resource: Mapping[str, Any], now: str) -> dict[str, Any] | None:
    """Say the data plane runs the resource again; None when it was never said otherwise."""
    if not is_marked_rejected(resource):
        return None
    message = "the data plane runs this configuration"
    return _with(resource, _condition(resource, "True", ACCEPTED, message, now))


def is_marked_rejected(resource: Mapping[str, Any]) -> bool:
    return _reconciled(resource).get("status") == "False"


def rejection(resource: Mapping[str, Any], generation: int) -> str | None:
    """The data plane's reason for rejecting ``generation`` of the resource (or a later one),
    or None when its status says no such thing."""
    condition = _reconciled(resource)
    if condition.get("status") != "False" or condition.get("reason") != REJECTED:
        return None
    try:
        observed = int(condition.get("observedGeneration") or 0)
    except (TypeError, ValueError):
        return None
    return str(condition.get("message") or "") if observed >= generation else None


def _reconciled(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in (resource.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == RECONCILED:
            return condition
    return {}
