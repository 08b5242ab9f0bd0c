"""The API double's own Istio validating webhook (``validation.istio.io``), ported from istiod.

A cluster's API server sends every Istio object it is about to store to istiod, which decodes it
and runs ``pkg/config/validation``; a denial comes back as HTTP 400 with the message
``admission webhook "validation.istio.io" denied the request: configuration is invalid: ...``,
and warnings as ``Warning`` headers on an accepted write. This package is that webhook, written
independently of the product's own checks (``chaosmesh_py.istio.validation``, which an import
contract keeps out of here), so the product is tested against Istio's rules rather than against
itself. The ported source is istio/istio 86c9f01; ``tests/data/istio_virtualservice_cases.json``
holds Istio's cases, which this port passes:

    golang.py           Go's error composition (go-multierror, agent.AppendErrors...) and fmt verbs
    proto.py            jsonpb decoding: proto3 defaults, oneofs, wrappers, durations
    names.py            pkg/config/labels, host, jwt routing claims, visibility; exportTo, selectors
    agent.py            pkg/config/validation/agent/validation.go
    header_value.py     pkg/config/validation/header_value_validator.go
    validation.py       pkg/config/validation/validation.go: the helpers
    virtualservice.py   ValidateVirtualService and virtualservice.go
    destinationrule.py  ValidateDestinationRule

VirtualService and DestinationRule are validated; other Istio kinds are admitted unchecked.
Not ported: the ``configmap://`` credentialName check of client TLS (no credentials to resolve)
and the annotations Istio reserves for its own controllers, except ``istio.io/dry-run``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.localmesh.apiserver.webhook import golang
from chaosmesh_py.localmesh.apiserver.webhook.destinationrule import validate_destination_rule
from chaosmesh_py.localmesh.apiserver.webhook.proto import DecodeError, Message
from chaosmesh_py.localmesh.apiserver.webhook.virtualservice import validate_virtual_service

NAME = "validation.istio.io"
DRY_RUN_ANNOTATION = "istio.io/dry-run"


@dataclass(frozen=True)
class Review:
    """The webhook's answer: ``denial`` (the message after "denied the request: ") or None, and
    the warnings returned with an accepted object."""

    denial: str | None = None
    warnings: tuple[str, ...] = ()


Webhook = Callable[[str, dict[str, Any]], Review]


def review(kind: str, obj: dict[str, Any]) -> Review:
    """What istiod's webhook answers for ``obj`` (an object of an ``*.istio.io`` group)."""
    validate = _VALIDATORS.get(kind)
    if validate is None:
        return Review()
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if DRY_RUN_ANNOTATION in annotations:
        name = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        return Review(
            f"configuration is invalid: {name} has unsupported annotation {DRY_RUN_ANNOTATION}, "
            "please remove the annotation"
        )
    spec = obj.get("spec")
    try:
        if not isinstance(spec, dict):
            raise DecodeError("spec: not an object")
        result = validate(Message(spec), metadata.get("namespace", ""), annotations)
    except DecodeError as error:
        return Review(f"error decoding configuration: {error}")
    if result.err is not None:
        # An accepted object carries the warnings; a denied one only the reason.
        return Review(f"configuration is invalid: {result.err}")
    return Review(warnings=tuple(golang.entries(result.warning)))


_VALIDATORS: dict[str, Callable[[Message, str, dict[str, str]], golang.Validation]] = {
    "VirtualService": validate_virtual_service,
    "DestinationRule": lambda spec, namespace, _: validate_destination_rule(spec, namespace),
}
