"""Rollback evidence, as the control records it in the journal, against the API double: each
object the run wrote, its spec before the first write vs after the last removal."""

from chaosmesh_py import control
from chaosmesh_py.engine import evidence
from tests.conftest import NAMESPACE
from tests.engine_activities import create_object, override_field
from tests.integration.test_engine_forms import DENY, POOL, TIGHT
from tests.integration.test_inject_rollback import delay_jason, read


def end_run(configuration):
    """The control's end of the experiment: rollback, then the journal entry."""
    journal = {}
    control.after_experiment_control(context={}, state=journal, configuration=configuration)
    control.cleanup_control()
    return journal["chaosmesh"]


def test_a_clean_rollback_shows_every_written_object_equal(api, configuration):
    control.configure_control(configuration=configuration)
    before = read(api)["spec"]
    delay_jason(configuration)
    override_field("DestinationRule", "reviews", NAMESPACE, POOL, TIGHT, configuration)
    created = create_object("AuthorizationPolicy", NAMESPACE, DENY, configuration)

    entries = {e["resource"]: e for e in end_run(configuration)["evidence"]}
    ratings = entries[f"VirtualService {NAMESPACE}/ratings"]
    assert ratings["equal"] is True
    assert ratings["before"]["spec"] == before == ratings["after"]["spec"]
    assert ratings["before"]["digest"] == evidence.digest(before)
    assert entries[f"DestinationRule {NAMESPACE}/reviews"]["equal"] is True
    # Created by the run, deleted by its rollback: absent before and after.
    policy = entries[created["resource"]]
    assert policy == {
        "resource": created["resource"],
        "equal": True,
        "before": {"present": False},
        "after": {"present": False},
    }


def test_another_writers_change_during_the_run_is_named_not_hidden(api, configuration):
    control.configure_control(configuration=configuration)
    delay_jason(configuration)
    edited = read(api)
    edited["spec"]["http"][-1]["timeout"] = "2s"  # the user's own route, not our copy
    api.replace(edited)

    summary = end_run(configuration)
    (entry,) = summary["evidence"]
    assert summary["rollback_complete"] is True
    assert entry["equal"] is False
    assert entry["differences"] == [
        {"path": "/http/0/timeout", "change": "added", "after": "2s"},
    ]
    # The rollback kept their edit: the evidence shows it, so nobody mistakes it for ours.
    assert read(api)["spec"]["http"][0]["timeout"] == "2s"


def test_the_spec_before_is_read_before_the_first_write_not_after(api, configuration):
    control.configure_control(configuration=configuration)
    before = read(api)["spec"]
    delay_jason(configuration)
    delay_jason(configuration, headers={"end-user": "kim"})  # a second write, same object

    (entry,) = end_run(configuration)["evidence"]
    assert entry["before"]["spec"] == before
    assert entry["equal"] is True


def test_a_large_spec_keeps_its_digest_only():
    spec = {"http": [{"name": f"route-{i}", "route": []} for i in range(400)]}
    entry = evidence.compare("VirtualService x/y", spec, spec)
    assert entry["equal"] is True
    assert "spec" not in entry["before"]
    assert entry["before"]["digest"] == evidence.digest(spec)
    assert entry["before"]["chars"] > evidence.MAX_SPEC_CHARS


def test_differences_are_bounded_and_counted():
    before = {f"k{i}": i for i in range(50)}
    after = {f"k{i}": i + 1 for i in range(50)}
    entry = evidence.compare("DestinationRule x/y", before, after)
    assert len(entry["differences"]) == evidence.MAX_DIFFERENCES
    assert entry["differences_not_shown"] == 50 - evidence.MAX_DIFFERENCES
    assert entry["differences"][0] == {"path": "/k0", "change": "changed", "before": 0, "after": 1}


def test_an_object_left_behind_is_named_created():
    entry = evidence.compare("AuthorizationPolicy x/y", None, {"action": "DENY"})
    assert entry["equal"] is False
    assert entry["differences"] == [
        {"path": "/", "change": "created", "before": None, "after": {"action": "DENY"}}
    ]
