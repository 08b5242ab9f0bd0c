"""The ``chaosmesh-local`` entries in a kubeconfig: added by ``local up``, removed by ``down``.

The current context is never changed: an experiment reaches the local mesh only when asked to
(``KUBERNETES_CONTEXT=chaosmesh-local`` or ``kubectl --context chaosmesh-local``), so a
forgotten local mesh can never redirect a command meant for a cluster, nor the reverse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "chaosmesh-local"


def default_path() -> Path:
    """The file kubectl writes to: the first entry of KUBECONFIG, else ~/.kube/config."""
    configured = os.environ.get("KUBECONFIG", "")
    first = next((p for p in configured.split(os.pathsep) if p), "~/.kube/config")
    return Path(first).expanduser()


def add_context(path: Path, api_url: str, context: str = CONTEXT) -> None:
    config = _load(path)
    _upsert(config, "clusters", context, "cluster", {"server": api_url})
    _upsert(config, "users", context, "user", {})
    _upsert(config, "contexts", context, "context", {"cluster": context, "user": context})
    _save(path, config)


def remove_context(path: Path, context: str = CONTEXT) -> None:
    if not path.exists():
        return
    config = _load(path)
    for section in ("clusters", "users", "contexts"):
        config[section] = [e for e in config.get(section) or [] if e.get("name") != context]
    if config.get("current-context") == context:
        config["current-context"] = ""
    _save(path, config)


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a kubeconfig (not a mapping)")
        return loaded
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": ""}


def _upsert(config: dict[str, Any], section: str, name: str, key: str, value: Any) -> None:
    entries = [e for e in config.get(section) or [] if e.get("name") != name]
    entries.append({"name": name, key: value})
    config[section] = entries


def _save(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(yaml.safe_dump(config, sort_keys=False))
    temporary.chmod(0o600)
    os.replace(temporary, path)
