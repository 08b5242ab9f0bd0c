"""The ways into a service that a dark-launch leak check sends requests through
(``chaosmesh_py.traffic.leaks``): as a user lists them for a cluster, or as the local mesh
publishes them, and the Services that select the hidden pods.

On a cluster the probe cannot reach a pod without a sidecar, nor a sidecar, by itself: the user
names each way in by URL (``parse_entries``), and the Services selecting the hidden pods that no
entry calls are reported (``uncovered``). The local mesh publishes its ingress, every workload's
sidecar and every service's address without a sidecar (``discover_entries``); the Services come
from the API in both cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.observe.prometheus import without_userinfo

ENTRY_KINDS = ("ingress", "sidecar", "no-sidecar", "service")
ENTRY_KEYS = frozenset({"name", "kind", "url", "path", "host", "via", "caller_labels"})


@dataclass(frozen=True)
class Entry:
    """One way in: where requests go and what they pass through.

    ``kind``: ``ingress`` (the gateway; ``via`` names the services before the target),
    ``sidecar`` (an in-mesh caller's sidecar, ``caller_labels`` its workload's labels),
    ``no-sidecar`` (a client without one: L4 only, no match is honoured), ``service`` (another
    Service selecting the hidden pods, named by ``host``).
    """

    name: str
    kind: str
    url: str
    path: str
    host: str | None = None
    via: tuple[str, ...] = ()
    caller_labels: Mapping[str, str] | None = None

    @property
    def honours_matches(self) -> bool:
        """Routed by a VirtualService to the service: testers can be sent here."""
        return self.kind in ("ingress", "sidecar")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "path": self.path,
            "host": self.host,
            "via": list(self.via),
        }


def parse_entries(entries: Any, default_path: str) -> list[Entry]:
    """Entries as a user lists them (a cluster): {name, url, path?, host?, kind?, via?,
    caller_labels?}."""
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise InvalidInput("entries", f"must be a non-empty list, not {entries!r}")
    parsed = []
    for index, item in enumerate(entries):
        at = f"entries[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(at, f"must be an object, not {item!r}", '{"name": ..., "url": ...}')
        url = item.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            shown = without_userinfo(url) if isinstance(url, str) else url
            raise InvalidInput(f"{at}.url", f"must be an http(s) URL, not {shown!r}")
        if "@" in urlsplit(url).netloc:
            # Never sent (the check's requests carry no URL credentials) and never shown.
            raise InvalidInput(
                f"{at}.url", "carries credentials (user:password@)", "remove them from the URL"
            )
        kind = item.get("kind", "sidecar")
        if kind not in ENTRY_KINDS:
            raise InvalidInput(
                f"{at}.kind", f"unknown kind {kind!r}", f"one of {list(ENTRY_KINDS)}"
            )
        path = item.get("path", default_path)
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidInput(f"{at}.path", f"must start with '/', not {path!r}")
        unknown = sorted(set(item) - ENTRY_KEYS)
        if unknown:
            raise InvalidInput(at, f"unknown keys {unknown}", f"use {sorted(ENTRY_KEYS)}")
        via = item.get("via") or []
        if not isinstance(via, list) or not all(isinstance(v, str) and v for v in via):
            raise InvalidInput(f"{at}.via", f"must be a list of service names, not {via!r}")
        host = item.get("host")
        if host is not None and (not isinstance(host, str) or not host):
            raise InvalidInput(f"{at}.host", f"must be a Host header value, not {host!r}")
        labels = item.get("caller_labels")
        if labels is not None and not isinstance(labels, Mapping):
            raise InvalidInput(f"{at}.caller_labels", f"must map labels to values, not {labels!r}")
        parsed.append(
            Entry(
                name=str(item.get("name") or f"{kind} {url}"),
                kind=kind,
                url=url.rstrip("/"),
                path=path,
                host=host,
                via=tuple(via),
                caller_labels=None if labels is None else dict(labels),
            )
        )
    return parsed


def discover_entries(
    mesh: Mapping[str, Any],
    services: Sequence[Mapping[str, Any]],
    *,
    service: str,
    hidden_version: str,
    path: str,
    ingress_path: str | None,
    via: Sequence[str],
) -> tuple[list[Entry], list[str]]:
    """The local mesh's entries to ``service`` (from what it publishes, and the Services the API
    holds), and the paths it could not check, each with why."""
    known = mesh["services"]
    if service not in known:
        raise InvalidInput(
            "service", f"the local mesh has no service {service!r}", f"one of {sorted(known)}"
        )
    if "no_sidecar_url" not in known[service]:
        raise InvalidInput(
            "entries",
            "not given, and this local mesh was started by an older chaosmesh: it publishes no "
            "address for clients without a sidecar",
            "restart it (chaosmesh local down, then up)",
        )
    hidden_labels = _hidden_pod_labels(mesh, service, hidden_version)
    host = known[service]["host"]
    entries = []
    not_checked = []
    if ingress_path:
        entries.append(
            Entry("ingress", "ingress", mesh["ingress_url"], ingress_path, via=tuple(via))
        )
    else:
        not_checked.append("the ingress: no ingress_path given (a page that calls the service)")
    workloads = mesh["workloads"]
    for name in sorted(workloads):
        entries.append(
            Entry(
                f"in-mesh caller {name}",
                "sidecar",
                workloads[name]["sidecar_url"],
                path,
                host=host,
                caller_labels=workloads[name]["labels"],
            )
        )
    entries.append(
        Entry(
            f"no-sidecar client via Service {service}",
            "no-sidecar",
            known[service]["no_sidecar_url"],
            path,
        )
    )
    # Other Services are called from a pure client (no server of its own, as Istio's sleep).
    clients = [name for name in sorted(workloads) if not workloads[name].get("pod_url")]
    client = (clients or sorted(workloads))[0]
    selecting = {
        name: port
        for labels in hidden_labels
        for name, port in services_selecting(services, labels, but=service)
    }
    for name, port in sorted(selecting.items()):
        entries.append(
            Entry(
                f"in-mesh caller {client} via Service {name}",
                "service",
                workloads[client]["sidecar_url"],
                path,
                host=f"{name}:{port}",
            )
        )
        no_sidecar_url = (known.get(name) or {}).get("no_sidecar_url")
        if no_sidecar_url:
            entries.append(
                Entry(f"no-sidecar client via Service {name}", "no-sidecar", no_sidecar_url, path)
            )
        else:
            not_checked.append(
                f"Service {name} from clients without a sidecar: the local mesh serves no "
                "ClusterIP for a Service created through the API"
            )
    return entries, not_checked


def services_selecting(
    services: Sequence[Mapping[str, Any]], pod_labels: Mapping[str, str], *, but: str
) -> list[tuple[str, int | None]]:
    """(name, first port) of each Service but ``but`` whose selector picks pods with these
    labels."""
    found = []
    for item in services:
        name = str((item.get("metadata") or {}).get("name"))
        spec = item.get("spec") or {}
        selector = spec.get("selector") or {}
        if name != but and selector and _selects(selector, pod_labels):
            ports = spec.get("ports") or [{}]
            found.append((name, ports[0].get("port")))
    return sorted(found)


def _hidden_pod_labels(
    mesh: Mapping[str, Any], service: str, version: str
) -> list[Mapping[str, str]]:
    selector = mesh["services"][service].get("selector") or {}
    behind = [w["labels"] for w in mesh["workloads"].values() if _selects(selector, w["labels"])]
    hidden = [labels for labels in behind if labels.get("version") == version]
    if not hidden:
        versions = sorted({labels.get("version", "(none)") for labels in behind})
        raise InvalidInput(
            "hidden_version",
            f"no pod of {service} carries version={version}",
            f"the versions behind {service}: {versions}",
        )
    return hidden


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def uncovered(
    services: Sequence[Mapping[str, Any]],
    service: str,
    hidden_version: str,
    entries: Sequence[Entry],
) -> list[str]:
    """Services selecting the hidden pods (the service's selector plus version=<hidden>) that
    no given entry names in its Host."""
    own = [s for s in services if (s.get("metadata") or {}).get("name") == service]
    if not own:
        return [
            f"other Services selecting the hidden pods: there is no Service {service} to "
            "learn their labels from"
        ]
    selector = (own[0].get("spec") or {}).get("selector") or {}
    hidden_labels = {**selector, "version": hidden_version}
    hosts = {str(e.host or "").split(":")[0].split(".")[0] for e in entries}
    return [
        f"Service {name} selects the hidden pods, and no entry calls it (Host: {name})"
        for name, _ in services_selecting(services, hidden_labels, but=service)
        if name not in hosts
    ]
