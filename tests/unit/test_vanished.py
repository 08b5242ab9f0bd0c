"""What counts as another writer's removal of a run's edits (chaosmesh_py.engine.vanished),
judged from the object as read and the run's ledger, without an API."""

from datetime import UTC, datetime, timedelta

from chaosmesh_py.engine import ledger, vanished
from chaosmesh_py.istio.owner_record import FieldRecord, OwnerRecord, owner_key
from chaosmesh_py.kube import ResourceRef, virtual_service_kind

REF = ResourceRef(virtual_service_kind(), "bookinfo", "reviews")
API = "https://api.example:6443"
COPY = "chaosmesh-r1-0123456789ab"
AT = "2026-12-06T10:00:00.000+00:00"
POOL = ("spec", "trafficPolicy", "connectionPool")


def resource(routes=(COPY, "everyone-to-v1"), record=True, pool=None, managed=()):
    held = OwnerRecord("r1", datetime.now(UTC) + timedelta(hours=1), routes=(COPY,))
    metadata = {"name": "reviews", "namespace": "bookinfo", "managedFields": list(managed)}
    if record:
        metadata["annotations"] = {owner_key("r1"): held.to_annotation()}
    spec = {"http": [{"name": name} for name in routes]}
    if pool is not None:
        spec["trafficPolicy"] = {"connectionPool": pool}
    return {"metadata": metadata, "spec": spec}


HELD = ledger.Recorded(routes=(COPY,))


def test_nothing_is_lost_while_the_copy_and_its_record_are_there():
    assert vanished.judge(resource(), "r1", HELD, AT) is None


def test_a_whole_object_rewrite_loses_the_copy_and_the_record():
    lost = vanished.judge(resource(routes=("primary",), record=False), "r1", HELD, AT)
    assert (lost.routes, lost.record, lost.deleted) == ((COPY,), True, False)


def test_routes_replaced_with_the_metadata_kept_lose_the_copy_only():
    lost = vanished.judge(resource(routes=("primary",)), "r1", HELD, AT)
    assert (lost.routes, lost.record) == ((COPY,), False)


def test_a_deleted_object_loses_everything():
    lost = vanished.judge(None, "r1", HELD, AT)
    assert (lost.routes, lost.deleted) == ((COPY,), True)


def test_an_overridden_field_given_another_value_is_lost():
    wrote = {"tcp": {"maxConnections": 1}}
    held = ledger.Recorded(fields=(FieldRecord(POOL, wrote),))
    assert vanished.judge(resource(routes=(), pool=wrote), "r1", held, AT) is None
    lost = vanished.judge(resource(routes=(), pool={"tcp": {"maxConnections": 9}}), "r1", held, AT)
    assert lost.fields == ("spec.trafficPolicy.connectionPool",)


def test_nothing_held_nothing_lost():
    assert vanished.judge(None, "r1", ledger.Recorded(), AT) is None


def test_who_is_the_latest_manager_that_is_not_us():
    managed = [
        {"manager": "chaosmesh", "operation": "Update", "time": "2026-12-06T10:00:05Z"},
        {"manager": "flagger", "operation": "Update", "time": "2026-12-06T10:00:03Z"},
        {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-12-01T09Z"},
    ]
    lost = vanished.judge(resource(routes=(), record=False, managed=managed), "r1", HELD, AT)
    assert lost.by == "flagger, Update at 2026-12-06T10:00:03Z"
    assert "removed by another writer (flagger, Update at" in lost.sentence()


def entry(event, op, **detail):
    return ledger.Entry(AT, event, op, API, REF, detail)


def test_what_landed_is_the_record_each_applied_write_left_not_every_plan():
    # A first plan met a 409; the second, with another copy name, landed.
    entries = [
        entry("intent", ledger.INJECT, patch={}),
        entry("intent", ledger.INJECT, patch={}),
        entry("outcome", ledger.INJECT, result=ledger.APPLIED, routes=[COPY]),
    ]
    assert vanished.landed(entries, API, REF, "r1").routes == (COPY,)
    removed = [*entries, entry("outcome", ledger.REMOVE, result=ledger.APPLIED, routes=[COPY])]
    assert vanished.landed(removed, API, REF, "r1").empty


def test_a_write_of_ours_in_flight_is_not_judged():
    injected = [entry("outcome", ledger.INJECT, result=ledger.APPLIED, routes=[COPY])]
    assert not vanished.in_flight(injected, API, REF)
    assert vanished.in_flight([*injected, entry("intent", ledger.REMOVE, patch={})], API, REF)
    lost_answer = entry("outcome", ledger.REMOVE, result=ledger.UNKNOWN)
    assert vanished.in_flight([*injected, lost_answer], API, REF)


def test_the_rollback_says_what_it_found_gone_and_when():
    seen = vanished.Vanished(str(REF), AT, (COPY,), record=True)
    report = {"removed": []}
    assert vanished.account(report, REF, HELD, [seen]) == []
    assert report["note"] == (
        f"route {COPY}, the run's owner record on VirtualService bookinfo/reviews removed by "
        f"another writer at {AT}; nothing to remove"
    )
    unseen_report = {"removed": []}
    (found,) = vanished.account(unseen_report, REF, HELD, [])
    assert found.at is None
    assert "before the rollback (when: not seen)" in unseen_report["note"]


def test_a_loss_is_inside_the_method_only_between_its_start_and_end():
    start = datetime.fromisoformat(AT).timestamp()
    found = [{"at": AT}, {"at": None}]
    vanished.place_in_method(found, start - 1, start + 1)
    assert [f["during_method"] for f in found] == [True, None]
    vanished.place_in_method(found, start - 2, start - 1)
    assert found[0]["during_method"] is False
