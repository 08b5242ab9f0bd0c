"""Kubernetes-shaped API errors and the `Status` bodies they serialise to.

One exception class, `ApiError`, carries what a `metav1.Status` needs (code, reason, message,
details). The HTTP layer writes it as JSON; the direct-access methods of `ApiServer` raise it. The
constructors below produce the messages a real kube-apiserver produces, so code tested against the
double sees the same text it would see from a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]

# The HTTP reason phrase Kubernetes uses for a status code when nothing more specific applies.
REASON_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class FieldError:
    """One entry of an Invalid status's `details.causes` (Go's `field.Error`).

    `detail` is the part after the field path, e.g. `Invalid value: "string": must be ...`.
    """

    reason: str
    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail


class ApiError(Exception):
    """A failed API request: HTTP `status`, Kubernetes `reason`, human `message`, `details`."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        details: JsonDict | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after_s = retry_after_s

    def to_status(self) -> JsonDict:
        """The `metav1.Status` body a real apiserver sends for this error."""
        body: JsonDict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # omitted when empty, as a webhook's denial has none
            body["reason"] = self.reason
        if self.details:
            body["details"] = self.details
        body["code"] = self.status
        return body


def show_value(value: Any) -> str:
    """Render a value the way Go's field errors do: strings quoted, containers by type name."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _details(name: str | None, group: str, kind: str) -> JsonDict:
    details: JsonDict = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404, "NotFound", f'{qualified} "{name}" not found', _details(name, group, resource)
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        _details(name, group, resource),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def conflict(resource: str, group: str, name: str, why: str = STALE) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    message = f'Operation cannot be fulfilled on {qualified} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(name, group, resource))


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid, aggregating several field errors as `[a, b]` like Go's `ToAggregate`."""
    qualified = f"{kind}.{group}" if group else kind
    texts = [str(e) for e in errors]
    aggregate = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(name, group, kind)
    details["causes"] = [
        {"reason": e.reason, "message": e.detail, "field": e.field} for e in errors
    ]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {aggregate}', details)


def forbidden_path(user: str, verb: str, path: str) -> ApiError:
    """403 for a path that names no resource, worded as a real apiserver words it."""
    return ApiError(403, "Forbidden", f'forbidden: User "{user}" cannot {verb} path "{path}"')


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type}) - accepted media types"
        " include: application/json-patch+json, application/merge-patch+json,"
        " application/apply-patch+yaml",
    )


def not_acceptable(accept: str) -> ApiError:
    return ApiError(
        406,
        "NotAcceptable",
        f"the server cannot answer {accept}: only the following media types are accepted:"
        " application/json",
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(
    user: str, verb: str, resource: str, group: str, *, namespace: str | None, name: str | None
) -> ApiError:
    """403 with the RBAC denial message of a real apiserver."""
    base = resource.partition("/")[0]
    qualified = f"{base}.{group}" if group else base
    subject = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}"'
        f' in API group "{group}" {scope}'
    )
    return ApiError(403, "Forbidden", message, _details(name, group, resource))
