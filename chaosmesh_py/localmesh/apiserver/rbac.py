"""Bearer-token authentication and a simplified RBAC authorizer.

`tokens` maps a bearer token to a `User` (a name and its rules), or to a `(name, rules)` pair,
or to a bare sequence of rules; that user is then named `user-<n>` (n = the token's position,
from 1), so tokens never appear in messages. A rule allows a request when its verb, API group,
resource and namespace each match ("*" matches anything; a namespace "*" also matches cluster-scope
requests). Like Kubernetes RBAC, rules only add permissions: one matching rule is enough.

Verbs: get, list, watch, create, update (PUT), patch, delete. Resources are plural names,
"virtualservices/status" for the status subresource.

Paths that name no resource (the double's control endpoints under `/chaosmesh/v1/`) are allowed
by a rule's `non_resource_urls`, as in Kubernetes: an exact path, or a prefix ending in "*";
their verbs are the lowercase HTTP methods (get, post, delete). Discovery (`/api`, `/apis`,
`/version`) is open to every authenticated user, as the `system:discovery` role makes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import unauthorized


def _as_tuple(value: Sequence[str] | str) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class PolicyRule:
    """Allows `verbs` on `resources` of `api_groups` in `namespaces` ("*" = any), and on the
    paths of `non_resource_urls`."""

    verbs: tuple[str, ...]
    resources: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)
    non_resource_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("verbs", "resources", "api_groups", "namespaces", "non_resource_urls"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))

    def allows_path(self, verb: str, path: str) -> bool:
        def matches(pattern: str) -> bool:
            if pattern.endswith("*"):
                return path.startswith(pattern[:-1])
            return path == pattern

        verb_ok = "*" in self.verbs or verb in self.verbs
        return verb_ok and any(matches(pattern) for pattern in self.non_resource_urls)

    def allows(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        def matches(values: tuple[str, ...], value: str) -> bool:
            return "*" in values or value in values

        in_scope = "*" in self.namespaces or (
            namespace is not None and namespace in self.namespaces
        )
        return (
            matches(self.verbs, verb)
            and matches(self.api_groups, group)
            and matches(self.resources, resource)
            and in_scope
        )


@dataclass(frozen=True)
class User:
    """An authenticated user: the name shown in 403 messages and the rules that decide."""

    name: str
    rules: tuple[PolicyRule, ...] = ()

    def may(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        return any(rule.allows(verb, group, resource, namespace) for rule in self.rules)

    def rules_in(self, namespace: str | None) -> list[dict[str, Any]]:
        """This user's own rules that apply in `namespace`, as RBAC rule objects."""
        found: list[dict[str, Any]] = []
        for rule in self.rules:
            if rule.non_resource_urls:
                found.append(
                    {"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)}
                )
            if rule.resources and ("*" in rule.namespaces or namespace in rule.namespaces):
                found.append(
                    {
                        "verbs": list(rule.verbs),
                        "apiGroups": list(rule.api_groups),
                        "resources": list(rule.resources),
                    }
                )
        return found

    def may_access(self, verb: str, path: str) -> bool:
        """May this user send `verb` (an HTTP method, lowercase) to a non-resource `path`?"""
        return any(rule.allows_path(verb, path) for rule in self.rules)


# Kubernetes' cluster-admin: every resource, and every non-resource path.
ADMIN_RULES = (PolicyRule(("*",), ("*",)), PolicyRule(("*",), non_resource_urls=("*",)))
ADMIN = User("system:admin", ADMIN_RULES)

Tokens = Mapping[str, "User | tuple[str, Sequence[PolicyRule]] | Sequence[PolicyRule]"]


def _user(position: int, entry: Any) -> User:
    if isinstance(entry, User):
        return entry
    if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str):
        return User(entry[0], tuple(entry[1]))
    return User(f"user-{position}", tuple(entry))


class Authenticator:
    """Maps an `Authorization` header to a User; without tokens, everyone is an admin."""

    def __init__(self, tokens: Tokens | None) -> None:
        self.enabled = tokens is not None
        self._users: dict[str, User] = {}
        for position, (token, entry) in enumerate((tokens or {}).items(), start=1):
            self._users[token] = _user(position, entry)

    def user(self, authorization: str | None) -> User:
        """The request's user; raises 401 for a missing or unknown token."""
        if not self.enabled:
            return ADMIN
        scheme, _, token = (authorization or "").partition(" ")
        user = self._users.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise unauthorized()
        return user
