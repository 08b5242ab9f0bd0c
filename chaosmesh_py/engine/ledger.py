"""The ledger: a durable record, on the runner's machine, of every write a run makes.

Before each write to the API the run appends an *intent* (which resource, the patch, and the
resource as it was, for forensics); after it, the *outcome*. Each record is one JSON line
written with a single ``write`` on a file opened for appending, then ``fsync``ed (and the
directory too when the file is new) before the API call is made. So after any crash, ``kill -9``
included, every resource the run may have changed is on disk. A crash can only tear the last
line, which is then skipped: it was never followed by its write.

``chaosmesh rollback`` reads ledgers to remove what a run left; several processes (the run and a
rollback from another shell) may append to the same ledger, which ``O_APPEND`` makes safe.
Nothing secret goes in: the API's URL, never its credentials; every secret the process knows
(``chaosmesh_py.engine.redaction``) is replaced by ``***`` in what a record keeps for forensics
(the patch, the prior copy, errors), never in what rollback reads (the resource, the API, route
names, outcomes). Files are 0600 in a 0700 directory, never opened through a symbolic link.

Each intent also says what the API was (``api_binding``): a cluster, or a local mesh and its
instance id. A run bound to a local mesh that is gone (its address refuses connections, or
another instance answers there) can have nothing left: its state went with it, and the ledger is
closed with that reason. A cluster that does not answer is only down for now: its ledgers stay
open until a rollback finishes them, or ``chaosmesh rollback --forget`` closes one by hand.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaosmesh_py.engine import redaction
from chaosmesh_py.engine.private_file import DIRECTORY_MODE, open_private
from chaosmesh_py.errors import InvalidInput, LedgerUnwritable
from chaosmesh_py.istio.owner_record import (
    FieldRecord,
    OwnerRecord,
    owner_key,
    parse_record,
    path_text,
)
from chaosmesh_py.kube import ResourceKind, ResourceRef

logger = logging.getLogger("chaostoolkit")

LEDGER_DIR_ENV = "CHAOSMESH_LEDGER_DIR"
LEDGER_DIR_KEY = "chaosmesh_ledger_dir"

INJECT = "inject"
REMOVE = "remove"
# Outcomes.
APPLIED = "applied"
FAILED = "failed"  # the server refused it: nothing landed
UNKNOWN = "unknown"  # the answer was lost or the run was interrupted: it may land yet
# Written once a rollback found nothing of the run left anywhere: ``--all`` skips the run.
CLOSED = "closed"

# A closed ledger (its run fully rolled back) is kept this long for forensics, then pruned.
KEEP_CLOSED_S = 30 * 24 * 3600

# Kept out of the forensic copy: large, and of no use to someone reading what was there.
_NOISY_METADATA = ("managedFields",)


def default_dir() -> Path:
    configured = os.environ.get(LEDGER_DIR_ENV)
    if configured:
        return Path(configured)
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state_home) / "chaosmesh" / "ledger"


def directory_for(configuration: Mapping[str, Any] | None) -> Path:
    """Where a run's ledger goes: configuration ``chaosmesh_ledger_dir``, else
    ``CHAOSMESH_LEDGER_DIR``, else ``$XDG_STATE_HOME/chaosmesh/ledger``."""
    configured = (configuration or {}).get(LEDGER_DIR_KEY)
    return Path(str(configured)) if configured else default_dir()


@dataclass(frozen=True)
class Entry:
    """One record, as read back."""

    at: str
    event: str
    op: str
    api: str
    ref: ResourceRef | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """What a run's ledger says it added to one resource (applied, or perhaps applied)."""

    routes: tuple[str, ...] = ()
    fields: tuple[FieldRecord, ...] = ()
    object_uids: tuple[str, ...] = ()
    object: bool = False

    @property
    def empty(self) -> bool:
        return not self.routes and not self.fields and not self.object

    def to_json(self) -> dict[str, Any]:
        return {
            "routes": list(self.routes),
            "fields": [path_text(f.path) for f in self.fields],
            "object": self.object,
        }


class Ledger:
    """One run's ledger file: ``<directory>/<run id>.jsonl``.

    ``run_id`` must be a checked run id (``chaosmesh_py.engine.run.parse_run_id``); the path
    is checked too, resolved, to lie in ``directory`` (a symbolic link planted there must not
    lead the ledger's reads and appends elsewhere).
    """

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self.path = directory / f"{run_id}.jsonl"
        if self.path.resolve().parent != directory.resolve():
            raise InvalidInput(
                "ledger",
                f"{self.path} leads outside the ledger directory {directory}",
                "a ledger is a plain file named <run id>.jsonl in that directory: remove the "
                "link or whatever else is there",
            )
        self._lock = threading.Lock()
        # Writes announced by an intent and not yet given an outcome, in this process.
        self._pending: set[tuple[str, str, ResourceRef]] = set()

    def intent(
        self,
        op: str,
        api: str,
        ref: ResourceRef,
        patch: Mapping[str, Any],
        prior: Mapping[str, Any] | None = None,
        **detail: Any,
    ) -> None:
        record: dict[str, Any] = {"patch": patch, **detail}
        if prior is not None:
            record["prior"] = _forensic_copy(prior)
        self._append("intent", op, api, ref, record)
        self._pending.add((op, api, ref))

    def outcome(self, op: str, api: str, ref: ResourceRef, result: str, **detail: Any) -> None:
        """How the announced write went; nothing is recorded when no write was announced (the
        run gave up before writing, e.g. on a refused read)."""
        if (op, api, ref) not in self._pending:
            return
        self._pending.discard((op, api, ref))
        self._append("outcome", op, api, ref, {"result": result, **detail})

    def close(self, api: str, reason: str | None = None) -> None:
        self._append(CLOSED, CLOSED, api, None, {"reason": reason} if reason else {})

    def entries(self) -> list[Entry]:
        """Every record so far; none when the run never announced a write."""
        return list(read(self.path)) if self.path.exists() else []

    def _append(
        self, event: str, op: str, api: str, ref: ResourceRef | None, detail: dict[str, Any]
    ) -> None:
        hide = redaction.known()
        record = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "run_id": self.run_id,
            "event": event,
            "op": op,
            "api": api,
            "resource": _ref_json(ref) if ref is not None else None,
            **{k: v if k in _READ_BY_ROLLBACK else hide.deep(v) for k, v in detail.items()},
        }
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self._lock:
            try:
                self._write(line)
            except OSError as error:
                raise LedgerUnwritable(
                    f"cannot write the ledger {self.path}: {error.strerror or error}; set "
                    f"{LEDGER_DIR_ENV} (or configuration {LEDGER_DIR_KEY}) to a writable "
                    "directory on a persistent disk"
                ) from None

    def _write(self, line: bytes) -> None:
        new = not self.path.exists()
        if new:
            self.directory.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_directory(self.directory)


def best_effort(record: Callable[[], None]) -> None:
    """Make a record that must not stop what it records: a removal, or an outcome (a missing
    outcome only makes a later rollback fence first). An injection's intent is not one."""
    try:
        record()
    except LedgerUnwritable as error:
        logger.warning(f"chaosmesh: {error}")


def read(path: Path) -> Iterator[Entry]:
    """The records of one ledger file, skipping a line torn by a crash."""
    with path.open("rb") as lines:
        for raw in lines:
            try:
                record = json.loads(raw)
                yield Entry(
                    at=str(record["at"]),
                    event=str(record["event"]),
                    op=str(record["op"]),
                    api=str(record["api"]),
                    ref=_ref_from_json(record["resource"]),
                    detail={k: v for k, v in record.items() if k not in _ENVELOPE},
                )
            except (ValueError, KeyError, TypeError):
                continue


def run_ids(directory: Path) -> list[str]:
    """Every run with a ledger in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    return [path.stem for path in files]


def prune(directory: Path, keep_s: float = KEEP_CLOSED_S) -> list[str]:
    """Delete the ledgers of runs rolled back completely more than ``keep_s`` ago; the runs."""
    cutoff = time.time() - keep_s
    pruned = []
    for path in directory.glob("*.jsonl") if directory.is_dir() else []:
        try:
            if path.stat().st_mtime < cutoff and is_closed(list(read(path))):
                path.unlink()
                pruned.append(path.stem)
        except OSError:
            continue  # another process pruned it, or it is not ours to delete
    return pruned


def is_closed(entries: list[Entry]) -> bool:
    """True when the last thing that happened was a rollback that found nothing left (or the
    ledger was closed with a reason: its API is gone, or someone forgot it by hand)."""
    return bool(entries) and entries[-1].event == CLOSED


def closed_reason(entries: list[Entry]) -> str | None:
    if not is_closed(entries):
        return None
    return str(entries[-1].detail.get("reason") or "rolled back completely")


def bindings(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """What each API the run wrote to was, as last recorded: ``{"local_mesh": bool,
    "instance_id": str | None}``."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        binding = entry.detail.get("api_binding")
        if entry.event == "intent" and isinstance(binding, dict):
            found[entry.api] = binding
    return found


def recorded(entries: list[Entry], api: str, ref: ResourceRef, run_id: str) -> Recorded:
    """What the run's injections into ``ref`` at ``api`` added and no removal took away since:
    injections the server refused are left out; those applied, or of unknown outcome, are in."""
    routes: dict[str, None] = {}  # an ordered set
    fields: dict[str, FieldRecord] = {}
    uids: list[str] = []
    owns = False
    pending: OwnerRecord | None = None

    def take(record: OwnerRecord | None) -> None:
        nonlocal owns
        if record is None:
            return
        routes.update(dict.fromkeys(record.routes))
        for held in record.fields:
            fields.setdefault(path_text(held.path), held)
        owns = owns or record.owns_object

    for entry in entries:
        if entry.ref != ref or entry.api != api or entry.event == "closed":
            continue
        result = entry.detail.get("result")
        if entry.op == INJECT and entry.event == "intent":
            take(pending)
            pending = _record_in(entry, run_id)
        elif entry.op == INJECT:
            if result != FAILED:
                take(pending)
            pending = None
            if entry.detail.get("uid"):
                uids.append(str(entry.detail["uid"]))
        elif entry.event == "outcome" and result == APPLIED:
            take(pending)
            pending = None
            if entry.detail.get("gone") or entry.detail.get("deleted"):
                routes.clear()
                fields.clear()
                uids.clear()
                owns = False
            for name in entry.detail.get("routes") or ():
                routes.pop(name, None)
            for path in [
                *(entry.detail.get("fields") or ()),
                *(entry.detail.get("conflicts") or ()),
            ]:
                fields.pop(path, None)
    take(pending)
    return Recorded(tuple(routes), tuple(fields.values()), tuple(uids), owns)


def _record_in(entry: Entry, run_id: str) -> OwnerRecord | None:
    patch = entry.detail.get("patch")
    annotations = ((patch or {}).get("metadata") or {}).get("annotations") or {}
    return parse_record(run_id, annotations.get(owner_key(run_id)))


def touched(entries: list[Entry]) -> dict[tuple[str, ResourceRef], str | None]:
    """Every (API, resource) the run meant to inject into, with the URL that verified it."""
    found: dict[tuple[str, ResourceRef], str | None] = {}
    for entry in entries:
        if entry.op == INJECT and entry.ref is not None:
            found.setdefault((entry.api, entry.ref), entry.detail.get("verify_url"))
    return found


def uncertain(entries: list[Entry]) -> set[tuple[str, ResourceRef]]:
    """Resources whose last injection has no known outcome: a write of it may be in flight."""
    last: dict[tuple[str, ResourceRef], Entry] = {}
    for entry in entries:
        if entry.op == INJECT and entry.ref is not None:
            last[(entry.api, entry.ref)] = entry
    return {
        key
        for key, entry in last.items()
        if entry.event == "intent" or entry.detail.get("result") == UNKNOWN
    }


def last_applied(entries: list[Entry]) -> list[tuple[str, ResourceRef, Recorded]]:
    """Per (API, resource) the run injected into, what it added there and no removal took away:
    what may still be in place, for people deciding by hand."""
    run_id = next((str(e.detail.get("run_id")) for e in entries if e.detail.get("run_id")), "")
    found = [(api, ref, recorded(entries, api, ref, run_id)) for api, ref in touched(entries)]
    return [(api, ref, left) for api, ref, left in found if not left.empty]


_ENVELOPE = ("at", "event", "op", "api", "resource")
# Identities a rollback needs, kept as they are; the rest of a record is forensic.
# Kept in clear: rollback reads them. (The owner record inside an intent's patch is read too,
# when the record on the resource is gone; a field value a secret was hidden in then no longer
# matches, and the field is reported as a conflict, never restored to ***.)
_READ_BY_ROLLBACK = (
    "result",
    "routes",
    "fields",
    "conflicts",
    "deleted",
    "gone",
    "api_binding",
    "uid",
)


def _ref_json(ref: ResourceRef) -> dict[str, str]:
    kind = ref.kind
    return {
        "group": kind.group,
        "version": kind.version,
        "plural": kind.plural,
        "kind": kind.kind,
        "namespace": ref.namespace,
        "name": ref.name,
    }


def _ref_from_json(value: Any) -> ResourceRef | None:
    if value is None:
        return None
    kind = ResourceKind(value["group"], value["version"], value["plural"], value["kind"])
    return ResourceRef(kind, value["namespace"], value["name"])


def _forensic_copy(resource: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(resource)
    metadata = dict(copy.get("metadata") or {})
    for key in _NOISY_METADATA:
        metadata.pop(key, None)
    copy["metadata"] = metadata
    return copy


def _fsync_directory(directory: Path) -> None:
    # A new file's name is durable only once its directory is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
