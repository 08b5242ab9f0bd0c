"""Authorization by the Roles, ClusterRoles and bindings stored in the double, as Kubernetes'
RBAC authorizer decides (plugin/pkg/auth/authorizer/rbac).

A request is allowed when a binding names the user (by user name, by one of its groups, or, for
a service account's user `system:serviceaccount:<namespace>:<name>`, as that ServiceAccount) and
the role it refers to has a rule that covers it: ClusterRoleBindings grant their ClusterRole
everywhere, a RoleBinding grants its Role or ClusterRole in its own namespace only. A rule
covers a request when its verbs, API groups and resources (`jobs`, `jobs/status`, `*`,
`*/status`) match, and its resourceNames, when given, name the object (so never a create, list
or watch). Non-resource URLs come from ClusterRoles only.

This runs in addition to a token's own rules (`rbac`): a token for `User("system:serviceaccount:
bookinfo:runner")` with no rules can do exactly what the stored RBAC gives that service account,
which is how a rendered game day's least privilege is tested. Not modelled: aggregated
ClusterRoles (aggregationRule) and the escalation check on writing roles and bindings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chaosmesh_py.localmesh.apiserver.errors import JsonDict

RBAC_API = "rbac.authorization.k8s.io/v1"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

# (apiVersion, kind, namespace or None for all) -> the stored objects
ListObjects = Callable[[str, str, "str | None"], list[JsonDict]]


def groups_of(user_name: str) -> tuple[str, ...]:
    """The groups the apiserver's authenticators put a user in."""
    if user_name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = user_name.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")[0]
        return (
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        )
    return ("system:authenticated",)


@dataclass(frozen=True)
class Request:
    """What is asked: `resource` is `plural` or `plural/subresource`; `path` for non-resource
    requests (then `verb` is the lowercase HTTP method)."""

    verb: str
    group: str = ""
    resource: str = ""
    namespace: str | None = None
    name: str | None = None
    path: str | None = None


def _names_user(subject: JsonDict, binding_namespace: str | None, user: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user)
    if kind == "Group":
        return name in groups_of(user)
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def _matches(values: list[str] | None, value: str) -> bool:
    return values is not None and ("*" in values or value in values)


def _resource_matches(resources: list[str], resource: str) -> bool:
    """`jobs` and `*` cover `jobs`; `jobs/status` and `*/status` cover `jobs/status` (a bare
    `*` covers subresources too; `jobs` does not)."""
    sub = resource.partition("/")[2]
    return any(
        wanted in ("*", resource) or (bool(sub) and wanted == f"*/{sub}") for wanted in resources
    )


def rule_covers(rule: JsonDict, request: Request) -> bool:
    if not _matches(rule.get("verbs"), request.verb):
        return False
    if request.path is not None:
        return any(
            url == request.path or (url.endswith("*") and request.path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs") or ()
        )
    if not _matches(rule.get("apiGroups"), request.group):
        return False
    if not _resource_matches(rule.get("resources") or [], request.resource):
        return False
    names = rule.get("resourceNames") or []
    return not names or (request.name is not None and request.name in names)


def _bound_rules(list_objects: ListObjects, user: str, request: Request) -> Iterator[JsonDict]:
    """The rules of every role bound to `user` that applies where `request` is."""

    def role_rules(ref: JsonDict, namespace: str | None) -> list[JsonDict]:
        kind = ref.get("kind")
        scope = namespace if kind == "Role" else None
        for role in list_objects(RBAC_API, str(kind), scope):
            if role["metadata"]["name"] == ref.get("name"):
                return list(role.get("rules") or ())
        return []

    for binding in list_objects(RBAC_API, "ClusterRoleBinding", None):
        if any(_names_user(s, None, user) for s in binding.get("subjects") or ()):
            yield from role_rules(binding.get("roleRef") or {}, None)
    if request.namespace is None or request.path is not None:
        return
    for binding in list_objects(RBAC_API, "RoleBinding", request.namespace):
        if any(_names_user(s, request.namespace, user) for s in binding.get("subjects") or ()):
            rules = role_rules(binding.get("roleRef") or {}, request.namespace)
            # A RoleBinding never grants non-resource URLs, even from a ClusterRole.
            yield from (r for r in rules if not r.get("nonResourceURLs"))


def allows(list_objects: ListObjects, user: str, request: Request) -> bool:
    """Does the stored RBAC allow `user` to make `request`?"""
    return any(rule_covers(rule, request) for rule in _bound_rules(list_objects, user, request))


def bound_rules(list_objects: ListObjects, user: str, namespace: str | None) -> list[JsonDict]:
    """Every rule the stored RBAC grants `user` in `namespace` (None: cluster-wide ones only),
    for a SelfSubjectRulesReview."""
    return list(_bound_rules(list_objects, user, Request("", namespace=namespace)))
