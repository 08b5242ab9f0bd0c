"""The object store, with the write semantics of a real kube-apiserver.

Everything that decides whether a write happens lives here, so HTTP requests and direct calls
behave the same. One re-entrant lock guards the objects: a request's read-check-write is atomic.

A write goes: body checks (400) -> namespace exists (404) -> prune unknown fields (Warning, or 400
with fieldValidation=Strict) -> metadata, schema and CEL validation (422) -> Istio's validating
webhook (400) -> existence / resourceVersion checks (409, 404) -> commit. A write whose result
equals the stored object is a no-op: no new resourceVersion, no event. `generation` counts changes
to anything but metadata and status.

Listeners (`subscribe`) get a `WatchEvent` for each committed change, in order, under the lock:
they must be quick and must not block on other threads that use the store.
"""

from __future__ import annotations

import copy
import json
import random
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.localmesh.apiserver import errors
from chaosmesh_py.localmesh.apiserver.errors import ApiError, FieldError, JsonDict
from chaosmesh_py.localmesh.apiserver.meta import metadata_errors
from chaosmesh_py.localmesh.apiserver.models import decode_error
from chaosmesh_py.localmesh.apiserver.patch import PatchType, apply_patch, invalid_patch
from chaosmesh_py.localmesh.apiserver.resources import NAMESPACE, Registry, ResourceType
from chaosmesh_py.localmesh.apiserver.selector import Predicate
from chaosmesh_py.localmesh.apiserver.webhook import NAME as WEBHOOK_NAME
from chaosmesh_py.localmesh.apiserver.webhook import Webhook, review

Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name

INITIAL_NAMESPACES = ("default", "kube-system", "istio-system")
# Metadata only the server sets: ignored in a create, kept from the stored object in an update.
_SYSTEM_FIELDS = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",  # the server's record of who wrote (``_record_manager``)
)
HISTORY_LENGTH = 1000


@dataclass(frozen=True)
class WriteOptions:
    """Query options of a write: fieldValidation (Ignore/Warn/Strict), dryRun, fieldManager."""

    field_validation: str = "Warn"
    dry_run: bool = False
    field_manager: str | None = None
    user_agent: str | None = None

    @property
    def manager(self) -> str:
        """Who writes, as managedFields name it: the fieldManager given, else what the
        User-Agent begins with (kube-apiserver's rule), else "unknown"."""
        if self.field_manager:
            return self.field_manager
        return (self.user_agent or "").split("/")[0].strip() or "unknown"


@dataclass(frozen=True)
class WriteResult:
    object: JsonDict
    warnings: tuple[str, ...] = ()
    created: bool = False


@dataclass(frozen=True)
class WatchEvent:
    """A committed change: type ADDED/MODIFIED/DELETED, the object in its storage version."""

    type: str
    object: JsonDict
    resource_type: ResourceType
    revision: int


def _record_manager(meta: JsonDict, api_version: str, options: WriteOptions) -> None:
    """Say in ``metadata.managedFields`` who made this change and when, as kube-apiserver does:
    one entry per manager and operation, its time that of its latest change. Unlike it, the
    fields each manager owns are not tracked (``fieldsV1`` is empty): server-side apply's
    conflicts are not served here."""
    operation = "Update"
    kept = [
        entry
        for entry in meta.get("managedFields") or []
        if (entry.get("manager"), entry.get("operation")) != (options.manager, operation)
    ]
    meta["managedFields"] = [
        *kept,
        {
            "manager": options.manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": _now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        },
    ]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _content(obj: JsonDict) -> JsonDict:
    """What `generation` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def _drop_empty_maps(metadata: JsonDict) -> None:
    for field in ("labels", "annotations", "finalizers", "ownerReferences"):
        if field in metadata and not metadata[field]:
            del metadata[field]  # the apiserver serialises these with omitempty


def cannot_decode(rt: ResourceType, version: str, problem: str) -> ApiError:
    """400 for a body the apiserver's decoder refused, as it words it for a create or update."""
    return errors.bad_request(
        f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {problem}'
    )


def webhook_denial(denial: str) -> ApiError:
    """A webhook's denial as the API server relays it: 400, no reason, the webhook named."""
    return ApiError(400, "", f'admission webhook "{WEBHOOK_NAME}" denied the request: {denial}')


class Store:
    """All objects of all resource types, keyed by (group, plural, namespace, name)."""

    def __init__(self, registry: Registry, webhook: Webhook | None = None) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.revision = 0
        self.history: deque[WatchEvent] = deque(maxlen=HISTORY_LENGTH)
        self._objects: dict[Key, JsonDict] = {}
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._webhook = webhook or review
        for name in INITIAL_NAMESPACES:
            self.create(NAMESPACE, "v1", None, {"metadata": {"name": name}}, WriteOptions())

    # -- reading ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, version: str, namespace: str | None, name: str) -> JsonDict:
        with self.lock:
            return self.present(rt, version, self._existing(rt, namespace, name))

    def list(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        predicate: Predicate | None = None,
    ) -> JsonDict:
        """The `<Kind>List` document; `namespace` None lists across namespaces."""
        with self.lock:
            items = [
                self.present(rt, version, obj)
                for key, obj in sorted(self._objects.items())
                if key[:2] == (rt.group, rt.plural) and (namespace is None or key[2] == namespace)
            ]
            revision = str(self.revision)
        return {
            "apiVersion": rt.api_version(version),
            "kind": f"{rt.kind}List",
            "metadata": {"resourceVersion": revision},
            "items": [item for item in items if predicate is None or predicate(item)],
        }

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call `listener` for every committed change; returns a function that unsubscribes."""
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        body: Any,
        options: WriteOptions,
    ) -> WriteResult:
        obj = self._checked_body(rt, version, body)
        meta = obj["metadata"]
        self._check_namespace_field(rt, meta, namespace)
        if meta.get("resourceVersion"):
            # A plain error in the storage layer, so a real apiserver answers 500 (reason unknown).
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        if not meta.get("name"):
            required = FieldError(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
            raise errors.invalid(rt.kind, rt.group, "", [required])
        for field in _SYSTEM_FIELDS:
            meta.pop(field, None)
        if rt is NAMESPACE:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif rt.has_status:
            obj.pop("status", None)  # only the status subresource writes status
        with self.lock:
            if rt.namespaced and self._objects.get(("", "namespaces", "", namespace or "")) is None:
                raise errors.not_found("namespaces", "", namespace or "")
            warnings = self._admit(rt, version, obj, options, webhook=True, old=None)
            key = self._key(rt, namespace, meta["name"])
            if key in self._objects:
                raise errors.already_exists(rt.plural, rt.group, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            if rt.generation:
                meta["generation"] = 1
            _record_manager(meta, rt.api_version(version), options)
            _drop_empty_maps(meta)
            if options.dry_run:
                return WriteResult(self.present(rt, version, obj), warnings, created=True)
            stored = self._commit(rt, key, obj, "ADDED")
            return WriteResult(self.present(rt, version, stored), warnings, created=True)

    def update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        options: WriteOptions,
        subresource: str | None = None,
    ) -> WriteResult:
        """PUT: the body replaces the object; its resourceVersion must be the current one."""
        obj = self._checked_body(rt, version, body)
        with self.lock:
            old = self._existing(rt, namespace, name)
            given = obj["metadata"].get("resourceVersion")
            if not given and rt.custom:  # custom resources do not allow unconditional updates
                missing = FieldError(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
                raise errors.invalid(rt.kind, rt.group, name, [missing])
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name)
            return self._replace(
                rt, version, namespace, old, obj, options=options, subresource=subresource
            )

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        kind: PatchType,
        options: WriteOptions,
        subresource: str | None = None,
    ) -> WriteResult:
        """PATCH; a resourceVersion in the patched result is a precondition (409 if stale)."""
        if kind is PatchType.APPLY and not options.field_manager:
            required = FieldError(
                "FieldValueRequired", "fieldManager", "Required value: is required for apply patch"
            )
            raise errors.invalid("PatchOptions", "meta.k8s.io", "", [required])
        with self.lock:
            key = self._key(rt, namespace, name)
            if kind is PatchType.APPLY:
                self._checked_body(rt, version, patch)
                if key not in self._objects:  # apply creates
                    return self.create(rt, version, namespace, patch, options)
            old = self._existing(rt, namespace, name)
            schema = rt.schema(version)
            patched = apply_patch(
                kind, self.present(rt, version, old), patch, schema.openapi if schema else None
            )
            if not isinstance(patched.get("metadata"), dict):
                raise invalid_patch(patched, "metadata must be an object")
            patched["apiVersion"], patched["kind"] = rt.api_version(version), rt.kind
            given = patched["metadata"].get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name)
            return self._replace(
                rt,
                version,
                namespace,
                old,
                patched,
                options=options,
                subresource=subresource,
                patched=True,
            )

    def delete(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        preconditions: JsonDict | None = None,
    ) -> JsonDict:
        """Remove the object (and, for a namespace, everything in it); returns it."""
        with self.lock:
            old = self._existing(rt, namespace, name)
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = (preconditions or {}).get(field)
                if wanted and wanted != old["metadata"][field]:
                    actual = old["metadata"][field]
                    why = (
                        f"Precondition failed: {label} in precondition: {wanted},"
                        f" {label} in object meta: {actual}"
                    )
                    raise errors.conflict(rt.plural, rt.group, name, why)
            if rt is NAMESPACE:
                for key in [k for k in self._objects if k[2] == name]:
                    self._remove(key)
            gone = self._remove(self._key(rt, namespace, name))
            if rt is NAMESPACE:
                gone["status"] = {"phase": "Terminating"}
            return self.present(rt, version, gone)

    def reset(self) -> None:
        """Delete every object and every namespace but the initial ones (resourceVersions go on)."""
        with self.lock:
            for key in sorted(self._objects, key=lambda k: k[1] == "namespaces"):
                if key[:2] != ("", "namespaces") or key[3] not in INITIAL_NAMESPACES:
                    self._remove(key)

    # -- internals -------------------------------------------------------------------------

    def _replace(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        old: JsonDict,
        new: JsonDict,
        *,
        options: WriteOptions,
        subresource: str | None,
        patched: bool = False,
    ) -> WriteResult:
        """Turn a full new object (from PUT or a patch) into the stored one; immutables kept."""
        name, meta, old_meta = old["metadata"]["name"], new["metadata"], old["metadata"]
        self._check_namespace_field(rt, meta, namespace)
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match"
                f" the name on the URL ({name})"
            )
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            immutable = FieldError(
                "FieldValueInvalid",
                "metadata.uid",
                f'Invalid value: "{meta["uid"]}": field is immutable',
            )
            raise errors.invalid(rt.kind, rt.group, name, [immutable])
        if subresource == "status":  # only status may change through the status subresource
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        else:
            for field in ("name", "namespace", *_SYSTEM_FIELDS):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if rt.has_status:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        new["apiVersion"] = rt.api_version(version)
        warnings = self._admit(
            rt, version, new, options, webhook=subresource is None, old=old, patched=patched
        )
        _drop_empty_maps(new["metadata"])
        new["apiVersion"] = rt.api_version(rt.storage_version)
        if new == old:
            return WriteResult(self.present(rt, version, old), warnings)
        if rt.generation and _content(new) != _content(old):
            new["metadata"]["generation"] = old_meta.get("generation", 0) + 1
        _record_manager(new["metadata"], rt.api_version(version), options)
        if options.dry_run:
            return WriteResult(self.present(rt, version, new), warnings)
        stored = self._commit(rt, self._key(rt, namespace, name), new, "MODIFIED")
        return WriteResult(self.present(rt, version, stored), warnings)

    def _admit(
        self,
        rt: ResourceType,
        version: str,
        obj: JsonDict,
        options: WriteOptions,
        *,
        webhook: bool,
        old: JsonDict | None,
        patched: bool = False,
    ) -> tuple[str, ...]:
        """Prune, validate and run the webhook on `obj` (in place); return Warning texts.

        `patched`: `obj` is the result of a PATCH, whose decoding errors the apiserver words
        without naming the kind."""
        schema = rt.schema(version)
        unknown = schema.prune(obj) if schema else []
        if unknown and options.field_validation == "Strict":
            strict = "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
            raise errors.bad_request(strict) if patched else cannot_decode(rt, version, strict)
        if schema is not None and rt.model is not None:
            # A built-in kind is decoded into its Go struct first: a value of the wrong type
            # never reaches validation.
            for field, value, check in schema.decoding_errors(obj):
                problem = (
                    decode_error(rt.model, field, value)
                    if check != "format"
                    else f'parsing time {json.dumps(value)} as "2006-01-02T15:04:05Z07:00":'
                    " cannot parse it as RFC 3339"
                )
                raise cannot_decode(rt, version, problem)
        name = obj["metadata"].get("name", "")
        problems = metadata_errors(
            obj["metadata"],
            label_only_name=rt is NAMESPACE,
            path_segment_name=rt.path_segment_names,
        )
        if not problems and schema:
            problems = schema.validate(obj)
        if not problems and rt.validate is not None:
            problems = rt.validate(obj, old)
        if problems:
            raise errors.invalid(rt.kind, rt.group, name, problems)
        admitted: tuple[str, ...] = ()
        if webhook and rt.group.endswith("istio.io"):
            verdict = self._webhook(rt.kind, copy.deepcopy(obj))
            if verdict.denial is not None:
                raise webhook_denial(verdict.denial)
            admitted = verdict.warnings
        if options.field_validation == "Ignore":
            return admitted
        return (*(f'unknown field "{u}"' for u in unknown), *admitted)

    def _checked_body(self, rt: ResourceType, version: str, body: Any) -> JsonDict:
        """A deep copy of a write body, with its apiVersion/kind checked against the URL (400)."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        expected = rt.api_version(version)
        if obj.get("apiVersion", expected) != expected:
            raise errors.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match"
                f" the expected API version ({expected})"
            )
        if obj.get("kind", rt.kind) != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"], obj["kind"] = expected, rt.kind
        obj.setdefault("metadata", {})
        if not isinstance(obj["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        return obj

    @staticmethod
    def _check_namespace_field(rt: ResourceType, meta: JsonDict, namespace: str | None) -> None:
        if not rt.namespaced:
            meta.pop("namespace", None)
        elif meta.setdefault("namespace", namespace) != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match"
                " the namespace sent on the request"
            )

    @staticmethod
    def _key(rt: ResourceType, namespace: str | None, name: str) -> Key:
        return (rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)

    def _existing(self, rt: ResourceType, namespace: str | None, name: str) -> JsonDict:
        found = self._objects.get(self._key(rt, namespace, name))
        if found is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return found

    @staticmethod
    def present(rt: ResourceType, version: str, obj: JsonDict) -> JsonDict:
        """A copy of a stored object as seen in `version` (versions differ only in apiVersion)."""
        shown = copy.deepcopy(obj)
        shown["apiVersion"] = rt.api_version(version)
        shown["kind"] = rt.kind
        return shown

    def _commit(self, rt: ResourceType, key: Key, obj: JsonDict, event: str) -> JsonDict:
        self.revision += 1
        obj["apiVersion"] = rt.api_version(rt.storage_version)
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self._objects[key] = obj
        self._emit(event, rt, obj)
        return obj

    def _remove(self, key: Key) -> JsonDict:
        rt = next(t for t in self.registry.types if (t.group, t.plural) == key[:2])
        gone = self._objects.pop(key)
        self.revision += 1
        gone["metadata"]["resourceVersion"] = str(self.revision)
        self._emit("DELETED", rt, gone)
        return gone

    def _emit(self, kind: str, rt: ResourceType, obj: JsonDict) -> None:
        event = WatchEvent(kind, copy.deepcopy(obj), rt, self.revision)
        self.history.append(event)
        self.changed.notify_all()
        for listener in list(self._listeners):
            listener(event)
