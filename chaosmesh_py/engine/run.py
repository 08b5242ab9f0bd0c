"""The run: who owns the faults this process injects, and where it injected them.

A run id ties every owned edit to the ``chaos run`` that made it (route names and the owner
annotation carry it). It comes from the experiment's configuration key ``chaosmesh_run_id``
(the control sets it when the run starts), else from ``CHAOSMESH_RUN_ID``, else one is made for
this process. The run also remembers every resource it is about to write, *before* writing, so
the rollback control can visit each one even when the write's outcome was unknown; its ledger
(``chaosmesh_py.engine.ledger``) keeps the same on disk for when this process is gone.
"""

from __future__ import annotations

import os
import re
import secrets as random_tokens
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosmesh_py.engine.ledger import Ledger, directory_for
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.kube import Kube, ResourceRef

RUN_ID_KEY = "chaosmesh_run_id"
RUN_ID_ENV = "CHAOSMESH_RUN_ID"
DEFAULT_TTL_S = 3600

# Lower-case DNS label characters: the id goes into route names and an annotation key.
_RUN_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


@dataclass
class Run:
    run_id: str
    ledger: Ledger
    _touched: dict[tuple[str, ResourceRef], Kube] = field(default_factory=dict)
    _verify_urls: dict[tuple[str, ResourceRef], str] = field(default_factory=dict)
    _apis: dict[str, Kube] = field(default_factory=dict)  # kept after a rollback: see apis()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def touch(self, kube: Kube, ref: ResourceRef, verify_url: str | None = None) -> None:
        """Remember ``ref`` before writing to it, so a rollback visits it whatever happens,
        and the URL that shows its faults, so the rollback can see them gone there too."""
        with self._lock:
            self._touched.setdefault((kube.host, ref), kube)
            self._apis.setdefault(kube.host, kube)
            if verify_url:
                self._verify_urls[(kube.host, ref)] = verify_url

    def verify_url(self, kube: Kube, ref: ResourceRef) -> str | None:
        with self._lock:
            return self._verify_urls.get((kube.host, ref))

    def touched(self) -> list[tuple[Kube, ResourceRef]]:
        with self._lock:
            return [(kube, ref) for (_, ref), kube in self._touched.items()]

    def apis(self) -> list[Kube]:
        """Every API server the run wrote to, even once its faults are removed: where to count
        what they hit."""
        with self._lock:
            return list(self._apis.values())

    def forget(self, kube: Kube, ref: ResourceRef) -> None:
        """``ref`` holds nothing of this run any more."""
        with self._lock:
            self._touched.pop((kube.host, ref), None)


def new_run_id() -> str:
    return random_tokens.token_hex(5)


_runs: dict[str, Run] = {}
_runs_lock = threading.Lock()


def run_id_from(configuration: Mapping[str, Any] | None) -> str:
    """The run id an activity acts for; see the module docstring for the order."""
    configured = (configuration or {}).get(RUN_ID_KEY) or os.environ.get(RUN_ID_ENV)
    if configured is None:
        return _process_run_id()
    if not isinstance(configured, str) or not _RUN_ID.match(configured):
        raise InvalidInput(
            RUN_ID_KEY,
            f"{configured!r} is not a valid run id",
            "use 1-32 lower-case letters, digits and dashes",
        )
    return configured


def run_for(configuration: Mapping[str, Any] | None) -> Run:
    """The run an activity acts for, its ledger where the configuration says."""
    return get_run(run_id_from(configuration), directory_for(configuration))


def get_run(run_id: str, ledger_dir: Path) -> Run:
    with _runs_lock:
        return _runs.setdefault(run_id, Run(run_id, Ledger(ledger_dir, run_id)))


_PROCESS_RUN_ID = new_run_id()


def _process_run_id() -> str:
    return _PROCESS_RUN_ID
