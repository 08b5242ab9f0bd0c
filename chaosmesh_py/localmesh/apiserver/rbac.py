"""Bearer-token authentication and a simplified RBAC authorizer.

`tokens` maps a bearer token to a `User` (a name and its rules), or to a `(name, rules)` pair,
or to a bare sequence of rules; that user is then named `user-<n>` (n = the token's position,
from 1), so tokens never appear in messages. A rule allows a request when its verb, API group,
resource and namespace each match ("*" matches anything; a namespace "*" also matches cluster-scope
requests). Like Kubernetes RBAC, rules only add permissions: one matching rule is enough.

Verbs: get, list, watch, create, update (PUT), patch, delete. Resources are plural names,
"virtualservices/status" for the status subresource.
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
    """Allows `verbs` on `resources` of `api_groups` in `namespaces` ("*" = any)."""

    verbs: tuple[str, ...]
    resources: tuple[str, ...]
    api_groups: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for name in ("verbs", "resources", "api_groups", "namespaces"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))

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


ADMIN = User("system:admin", (PolicyRule(("*",), ("*",)),))

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
