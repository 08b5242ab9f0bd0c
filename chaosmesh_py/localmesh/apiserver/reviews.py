"""`kubectl auth can-i` against the double: SelfSubjectAccessReview and SelfSubjectRulesReview
(authorization.k8s.io/v1), answered from the same authorizer as every request (a token's own
rules, then the stored Roles and bindings). With `--as` (impersonation), they answer for that
user: `kubectl auth can-i --list -n bookinfo --as system:serviceaccount:bookinfo:gameday` shows
what a rendered game day's RBAC grants.

kubectl's typed client posts these reviews in Kubernetes' protobuf encoding (the `k8s\\0` magic,
a runtime.Unknown envelope, then the message); `decode_review` reads the few fields they have
(k8s.io/api/authorization/v1 generated.proto) so kubectl needs no flag. Answers are JSON, which
kubectl accepts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chaosmesh_py.localmesh.apiserver import errors
from chaosmesh_py.localmesh.apiserver.errors import JsonDict, bad_request
from chaosmesh_py.localmesh.apiserver.rbac import User
from chaosmesh_py.localmesh.apiserver.rbac_objects import SERVICE_ACCOUNT_PREFIX, Request

if TYPE_CHECKING:
    from chaosmesh_py.localmesh.apiserver.server import ApiServer

GROUP = "authorization.k8s.io"
GROUP_VERSION = f"{GROUP}/v1"
_MAGIC = b"k8s\x00"
# Field numbers in k8s.io/api/authorization/v1/generated.proto.
_RESOURCE_ATTRIBUTES = (
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
)
_NON_RESOURCE_ATTRIBUTES = ("path", "verb")


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) of one protobuf message: varints as int, the rest as bytes."""
    position = 0

    def varint() -> int:
        nonlocal position
        shift = result = 0
        while True:
            if position >= len(data):
                raise bad_request("truncated protobuf body")
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            yield number, data[position : position + length]
            position += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, data[position : position + size]
            position += size
        else:
            raise bad_request(f"unsupported protobuf wire type {wire}")


def _message(data: bytes, names: tuple[str, ...]) -> dict[str, str]:
    return {
        names[number - 1]: value.decode()
        for number, value in _fields(data)
        if isinstance(value, bytes) and 0 < number <= len(names)
    }


def _sub(data: bytes, wanted: int) -> bytes | None:
    found = [v for n, v in _fields(data) if n == wanted and isinstance(v, bytes)]
    return found[-1] if found else None


def decode_review(body: bytes, content_type: str, *, rules: bool) -> JsonDict:
    """A review request as JSON, from a JSON or protobuf body (`rules`: a rules review, whose
    spec is only a namespace)."""
    if "protobuf" not in content_type:
        try:
            decoded: Any = json.loads(body)
        except ValueError as error:
            raise bad_request(f"the body of the request could not be decoded: {error}") from error
        if not isinstance(decoded, dict):
            raise bad_request("the body of the request must be a JSON object")
        return decoded
    if not body.startswith(_MAGIC):
        raise bad_request("a protobuf body must start with the k8s magic number")
    raw = _sub(body[len(_MAGIC) :], 2) or b""  # runtime.Unknown.raw
    spec_bytes = _sub(raw, 2) or b""  # the review's spec
    if rules:
        return {"spec": _message(spec_bytes, ("namespace",))}
    spec: JsonDict = {}
    resource = _sub(spec_bytes, 1)
    non_resource = _sub(spec_bytes, 2)
    if resource is not None:
        spec["resourceAttributes"] = _message(resource, _RESOURCE_ATTRIBUTES)
    if non_resource is not None:
        spec["nonResourceAttributes"] = _message(non_resource, _NON_RESOURCE_ATTRIBUTES)
    return {"spec": spec}


def answer(kind: str, spec: JsonDict, status: JsonDict) -> JsonDict:
    return {
        "kind": kind,
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def impersonated(api: ApiServer, user: User, name: str | None) -> User:
    """`kubectl --as NAME` (the Impersonate-User header): act as NAME, whose rights are the
    stored RBAC's, if `user` may impersonate it (the `impersonate` verb on users, or on the
    service account); else 403."""
    if not name:
        return user
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, account = name.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        asked = Request("impersonate", "", "serviceaccounts", namespace, account)
    else:
        asked = Request("impersonate", "", "users", None, name)
    if not api.authorizes(user, asked):
        raise errors.forbidden(
            user.name, "impersonate", asked.resource, "", namespace=asked.namespace, name=asked.name
        )
    return User(name)


def review(api: ApiServer, user: User, plural: str, body: bytes, content_type: str) -> JsonDict:
    """The answer to a review: may `user` do that (access review), or what may it do in a
    namespace (rules review)? Created, never stored."""
    listing = plural == "selfsubjectrulesreviews"
    found = decode_review(body, content_type, rules=listing).get("spec")
    spec: JsonDict = found if isinstance(found, dict) else {}
    if listing:
        namespace = spec.get("namespace") or None
        rules = user.rules_in(namespace) + api.bound_rules(user, namespace)
        status: JsonDict = {
            "resourceRules": [r for r in rules if not r.get("nonResourceURLs")],
            "nonResourceRules": [r for r in rules if r.get("nonResourceURLs")],
            "incomplete": False,
        }
        return answer("SelfSubjectRulesReview", spec, status)
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        name = str(resource.get("resource", ""))
        sub = resource.get("subresource")
        asked = Request(
            str(resource.get("verb", "")),
            str(resource.get("group", "")),
            f"{name}/{sub}" if sub else name,
            resource.get("namespace") or None,
            resource.get("name") or None,
        )
    else:
        attributes = spec.get("nonResourceAttributes") or {}
        asked = Request(str(attributes.get("verb", "")), path=str(attributes.get("path", "")))
    allowed = api.authorizes(user, asked)
    status = {"allowed": allowed}
    if allowed:
        status["reason"] = "allowed by the token's own rules or the stored RBAC"
    return answer("SelfSubjectAccessReview", spec, status)
