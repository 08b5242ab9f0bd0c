"""The run: who owns the faults this process injects, and where it injected them.

A run id ties every owned edit to the ``chaos run`` that made it (owner records, ledger file
names and the names of copies and owned objects carry it). It comes from the experiment's
configuration key ``chaosmesh_run_id`` (the control sets it when the run starts), else from
``CHAOSMESH_RUN_ID``, else one is made for this process.

The grammar, 1 to 24 lower-case letters and digits, has no separator on purpose: no id is a
prefix-collision of another inside ``chaosmesh-<run>-…`` names or ``<run>.jsonl`` files, and no
id leads out of the ledger directory. ``parse_run_id`` is the one check, applied wherever an id
comes in: configuration, environment, the command line, ledger file names.

The run also remembers every resource it is about to write, *before* writing, so the rollback
control can visit each one even when the write's outcome was unknown; its ledger
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
from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.kube import Kube, ResourceRef

RUN_ID_KEY = "chaosmesh_run_id"
RUN_ID_ENV = "CHAOSMESH_RUN_ID"
DEFAULT_TTL_S = 3600

_RUN_ID = re.compile(r"^[a-z0-9]{1,24}$")
RUN_ID_RULE = "1 to 24 lower-case letters and digits, e.g. 3f9c1a2b7e (no dashes)"


@dataclass
class Run:
    run_id: str
    ledger: Ledger
    _touched: dict[tuple[str, ResourceRef], Kube] = field(default_factory=dict)
    _verify_urls: dict[tuple[str, ResourceRef], str] = field(default_factory=dict)
    _apis: dict[str, Kube] = field(default_factory=dict)  # kept after a rollback: see apis()
    # Each written object's spec before the run's first write to it (None: it was absent),
    # kept after a rollback: the rollback evidence (chaosmesh_py.engine.evidence).
    _before: dict[tuple[str, ResourceRef], tuple[Kube, Any]] = field(default_factory=dict)
    # ... and as the run's last removal from it left it.
    _after: dict[tuple[str, ResourceRef], Any] = field(default_factory=dict)
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

    def remember_before(self, kube: Kube, ref: ResourceRef, spec: Any) -> None:
        """``spec`` is ``ref``'s as read just before a write of the run landed; only the first
        is kept (later ones already hold the run's own edits)."""
        with self._lock:
            self._before.setdefault((kube.host, ref), (kube, spec))

    def remember_after(self, kube: Kube, ref: ResourceRef, spec: Any) -> None:
        """``spec`` is ``ref``'s as a removal of the run's edits left it (the latest wins)."""
        with self._lock:
            self._after[(kube.host, ref)] = spec

    def written(self) -> list[tuple[Kube, ResourceRef, Any, tuple[Any, ...]]]:
        """Every object the run wrote, in write order: its spec before the first write, and
        ``(spec,)`` as the last removal left it, or ``()`` when no removal saw it."""
        written = []
        with self._lock:
            for key, (kube, spec) in self._before.items():
                after = (self._after[key],) if key in self._after else ()
                written.append((kube, key[1], spec, after))
        return written

    def forget(self, kube: Kube, ref: ResourceRef) -> None:
        """``ref`` holds nothing of this run any more."""
        with self._lock:
            self._touched.pop((kube.host, ref), None)


def new_run_id() -> str:
    return random_tokens.token_hex(5)


_runs: dict[tuple[str, Path], Run] = {}
_runs_lock = threading.Lock()


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def parse_run_id(value: object, field: str) -> str:
    """``value`` as a run id, or InvalidInput naming ``field`` (where the value came from)."""
    if not is_run_id(value):
        raise InvalidInput(field, f"{shown(value)} is not a valid run id", f"use {RUN_ID_RULE}")
    assert isinstance(value, str)
    return value


def run_id_from(configuration: Mapping[str, Any] | None) -> str:
    """The run id an activity acts for; see the module docstring for the order."""
    configured = (configuration or {}).get(RUN_ID_KEY)
    if configured:
        return parse_run_id(configured, RUN_ID_KEY)
    from_environment = os.environ.get(RUN_ID_ENV)
    if from_environment:
        return parse_run_id(from_environment, RUN_ID_ENV)
    return _process_run_id()


def run_for(configuration: Mapping[str, Any] | None) -> Run:
    """The run an activity acts for, its ledger where the configuration says."""
    return get_run(run_id_from(configuration), directory_for(configuration))


def get_run(run_id: str, ledger_dir: Path) -> Run:
    with _runs_lock:
        key = (run_id, ledger_dir)
        if key not in _runs:
            _runs[key] = Run(run_id, Ledger(ledger_dir, run_id))
        return _runs[key]


_PROCESS_RUN_ID = new_run_id()


def _process_run_id() -> str:
    return _PROCESS_RUN_ID
