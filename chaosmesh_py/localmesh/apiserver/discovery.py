"""Discovery documents, so kubectl and the dynamic client find the served kinds.

The legacy (unaggregated) shapes: `/api` APIVersions, `/api/v1` and `/apis/{group}/{version}`
APIResourceList, `/apis` APIGroupList, `/apis/{group}` APIGroup, `/version`. Clients that ask for
aggregated discovery (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`)
see a plain `application/json` answer and fall back to these, as they do with older servers.
"""

from __future__ import annotations

from chaosmesh_py.localmesh.apiserver.errors import JsonDict
from chaosmesh_py.localmesh.apiserver.resources import VERBS, Registry, ResourceType

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-chaosmesh",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> JsonDict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _resources(rt: ResourceType) -> list[JsonDict]:
    main: JsonDict = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(VERBS),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    found = [main]
    if rt.has_status:
        status = {"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced}
        found.append({**status, "kind": rt.kind, "verbs": ["get", "patch", "update"]})
    if rt.scale:
        # Where `kubectl scale` finds the kind's scale subresource and its type.
        found.append(
            {
                "name": f"{rt.plural}/scale",
                "singularName": "",
                "namespaced": rt.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }
        )
    return found


def resource_list(registry: Registry, group: str, version: str) -> JsonDict | None:
    """The APIResourceList of one group version (`group` "" is the core API); None if unknown."""
    served = [t for t in registry.types if t.group == group and version in t.versions]
    if not served:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [r for t in served for r in _resources(t)],
    }


def _group(name: str, versions: list[str]) -> JsonDict:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group(registry: Registry, group: str) -> JsonDict | None:
    versions = registry.groups().get(group)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def api_group_list(registry: Registry) -> JsonDict:
    groups = [_group(name, versions) for name, versions in registry.groups().items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
