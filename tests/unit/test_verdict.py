"""The grading rules (chaosmesh_py.verdict.rules), one by one, on hand-made journals.

Each journal starts as a clean run that passes and is broken in exactly one place, so every
test names the rule it shows.
"""

import copy

import pytest

from chaosmesh_py.verdict.rules import MalformedJournal, grade, is_journal

HITS = {
    "activity": "delay-ratings",
    "virtual_service": "bookinfo/ratings",
    "fault": "delay",
    "routes": ["chaosmesh-r1-abc"],
    "hits": 7,
    "requests": 9,
    "by_route": {"chaosmesh-r1-abc": 7},
    "counted": "local mesh: Envoy's request counters of the fault's routes",
}
CONTROL_SUMMARY = {
    "run_id": "r1",
    "rollback": [],
    "rollback_failed": [],
    "rollback_complete": True,
    "faults": [HITS],
}
VERIFIED = {"checked": "local mesh: Envoy config and requests", "config_s": 0.02, "traffic_s": 0.03}
UNREADABLE = {
    "checked": "no: a cluster's data plane cannot be read from here; "
    "give verify_url to check with requests"
}


def probe_state(met=True, name="page-whole", tolerance_met=None):
    probe = {
        "activity": {"type": "probe", "name": name, "provider": {"type": "process"}},
        "output": {"status": 0 if met else 1, "stdout": "", "stderr": "" if met else "500"},
        "status": "succeeded",
        "tolerance_met": met if tolerance_met is None else tolerance_met,
    }
    return {"steady_state_met": met, "probes": [probe]}


def injection(name="delay-ratings", effect=VERIFIED, status="succeeded"):
    entry = {
        "activity": {
            "type": "action",
            "name": name,
            "provider": {
                "type": "python",
                "module": "chaosmesh_py.faults.actions",
                "func": "inject_delay",
            },
        },
        "status": status,
        "output": {
            "run_id": "r1",
            "virtual_service": "bookinfo/ratings",
            "routes": ["chaosmesh-r1-abc"],
            "fault_routes": ["chaosmesh-r1-abc"],
        },
    }
    if effect is not None:
        entry["output"]["effect"] = effect
    if status != "succeeded":
        entry["output"] = None
        entry["exception"] = [
            "Traceback (most recent call last):\n",
            "chaoslib.exceptions.ActivityFailed: chaoslib.exceptions.ActivityFailed: "
            "TargetNotFound: virtual_service: no VirtualService 'nosuch'\n",
        ]
    return entry


def activity_run(activity, status="succeeded", output=None, error=None):
    entry = {"activity": activity, "status": status, "output": output}
    if error:
        entry["exception"] = ["Traceback (most recent call last):\n", error]
    return entry


REMOVE = {
    "type": "action",
    "name": "remove-ratings-faults",
    "provider": {
        "type": "python",
        "module": "chaosmesh_py.faults.rollbacks",
        "func": "remove_faults",
    },
}
RESTORE = {
    "type": "action",
    "name": "restore-replicas",
    "provider": {"type": "process", "path": "kubectl"},
}


def clean(**changes):
    """A run that passes every rule; ``changes`` replace top-level fields."""
    journal = {
        "experiment": {
            "title": "ratings slow for jason",
            "steady-state-hypothesis": {"title": "page whole", "probes": [{"name": "page-whole"}]},
            "method": [injection()["activity"]],
            "rollbacks": [REMOVE],
            "dry": None,
        },
        "status": "completed",
        "deviated": False,
        "steady_states": {"before": probe_state(), "after": probe_state(), "during": []},
        "run": [injection()],
        "rollbacks": [activity_run(REMOVE, output=[{"removed": ["chaosmesh-r1-abc"]}])],
        "duration": 1.5,
        "chaosmesh": copy.deepcopy(CONTROL_SUMMARY),
    }
    journal.update(copy.deepcopy(changes))
    return journal


def only_reason(journal, **options):
    verdict = grade(journal, **options)
    assert len(verdict.reasons) == 1, verdict.reasons
    return verdict.outcome, verdict.reasons[0]


def test_a_clean_run_passes_with_its_title_duration_and_run_id():
    verdict = grade(clean())
    assert verdict.outcome == "pass"
    assert verdict.reasons == ()
    assert (verdict.title, verdict.duration_s, verdict.run_id) == (
        "ratings slow for jason",
        1.5,
        "r1",
    )
    assert verdict.to_json() == {
        "outcome": "pass",
        "reasons": [],
        "title": "ratings slow for jason",
        "duration_s": 1.5,
        "run_id": "r1",
        "faults": [HITS],
    }


# R1: the run completed


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        ("interrupted", "a safeguard"),
        ("aborted", "unexpected error"),
        ("failed", "--fail-fast"),
    ],
)
def test_a_run_that_did_not_complete_fails(status, cause):
    outcome, reason = only_reason(clean(status=status))
    assert outcome == "fail"
    assert reason.startswith(f"run {status} (")
    assert cause in reason


def test_a_run_stopped_by_a_guardrail_fails_with_the_guardrail_as_the_reason():
    journal = clean(status="interrupted")
    journal["chaosmesh"]["aborted_by_guardrail"] = {
        "probe": "p99-latency",
        "reason": "p99 2.4 s above 2 s",
    }
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason == "aborted by guardrail 'p99-latency': p99 2.4 s above 2 s"


# R2: not a dry run


def test_a_dry_run_fails():
    journal = clean()
    journal["experiment"]["dry"] = "actions"
    assert only_reason(journal) == (
        "fail",
        "dry run (--dry actions): the experiment was not really carried out",
    )


# R3: a hypothesis with probes


@pytest.mark.parametrize("hypothesis", [None, {"title": "nothing", "probes": []}])
def test_a_run_without_steady_state_probes_fails(hypothesis):
    journal = clean(steady_states={"before": None, "after": None, "during": []})
    journal["experiment"]["steady-state-hypothesis"] = hypothesis
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason.startswith("no steady-state hypothesis with probes")


# R4: met before the method


def test_a_steady_state_not_met_before_fails_though_chaos_run_exits_0():
    # What chaos run does: status completed, not deviated, the method skipped.
    journal = clean(
        steady_states={"before": probe_state(met=False), "after": None, "during": []},
        run=[],
    )
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason == (
        "steady state not met before the method, so the method never ran: "
        "probe 'page-whole' out of tolerance (exit status 1: 500)"
    )


def test_a_steady_state_probe_that_errored_is_named_with_its_error():
    state = probe_state(met=False)
    state["probes"][0].update(
        status="failed", exception=["chaoslib.exceptions.ActivityFailed: connection refused\n"]
    )
    journal = clean(
        status="failed", steady_states={"before": state, "after": None, "during": []}, run=[]
    )
    reasons = grade(journal).reasons
    assert "probe 'page-whole' failed: connection refused" in reasons[1]


def test_a_completed_run_never_checked_before_the_method_fails():
    journal = clean(steady_states={"before": None, "after": probe_state(), "during": []})
    assert only_reason(journal) == ("fail", "steady state not checked before the method")


# R5: met during the method, when probed


def test_a_deviation_only_during_the_method_fails_though_chaos_run_exits_0():
    during = [probe_state(), probe_state(met=False), probe_state()]
    journal = clean(
        steady_states={"before": probe_state(), "after": probe_state(), "during": during}
    )
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason.startswith("steady state deviated during the method (1 of 3 checks): ")
    assert "probe 'page-whole' out of tolerance" in reason


def test_every_check_during_the_method_met_passes():
    journal = clean(
        steady_states={"before": probe_state(), "after": probe_state(), "during": [probe_state()]}
    )
    assert grade(journal).outcome == "pass"


# R6: met after the method


def test_a_deviation_after_the_method_fails():
    journal = clean(
        deviated=True,
        steady_states={"before": probe_state(), "after": probe_state(met=False), "during": []},
    )
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason.startswith("steady state deviated after the method: probe 'page-whole'")


def test_a_deviation_quotes_the_probe_s_own_one_line_summary():
    after = probe_state(met=False)
    after["probes"][0]["output"] = {
        "whole": 0,
        "pages": 20,
        "errors": {"reviews": 20},
        "summary": "0 of 20 page loads whole for jason; failed: reviews on 20",
    }
    journal = clean(
        deviated=True, steady_states={"before": probe_state(), "after": after, "during": []}
    )
    _, reason = only_reason(journal)
    assert reason == (
        "steady state deviated after the method: probe 'page-whole' out of tolerance "
        "(0 of 20 page loads whole for jason; failed: reviews on 20)"
    )


def test_a_journal_marked_deviated_fails_even_without_an_after_state():
    journal = clean(deviated=True, steady_states={"before": probe_state(), "after": None})
    assert only_reason(journal) == ("fail", "the journal marks the run deviated")


def test_a_completed_run_never_checked_after_the_method_fails():
    journal = clean(steady_states={"before": probe_state(), "after": None, "during": []})
    assert only_reason(journal) == ("fail", "steady state not checked after the method")


def test_an_interrupted_run_is_not_also_blamed_for_the_missing_after_check():
    journal = clean(status="interrupted", steady_states={"before": probe_state(), "after": None})
    assert grade(journal).reasons == (
        "run interrupted (a signal, Ctrl-C, a safeguard or a control stopped it)",
    )


# R7: every method activity succeeded


def test_a_failed_injection_fails_though_chaos_run_exits_0():
    journal = clean(run=[injection(status="failed")])
    assert only_reason(journal) == (
        "fail",
        "action 'delay-ratings' failed: TargetNotFound: virtual_service: "
        "no VirtualService 'nosuch'",
    )


def test_a_method_probe_that_errored_fails():
    probe = {"type": "probe", "name": "fault-is-in-place", "provider": {"type": "python"}}
    journal = clean(
        run=[injection(), activity_run(probe, "failed", error="ValueError: bad answer\n")]
    )
    assert only_reason(journal) == (
        "fail",
        "probe 'fault-is-in-place' failed: ValueError: bad answer",
    )


def test_a_process_action_exiting_non_zero_fails_though_chaos_toolkit_says_succeeded():
    action = {"type": "action", "name": "drain-node", "provider": {"type": "process"}}
    journal = clean(
        run=[injection(), activity_run(action, output={"status": 2, "stdout": "", "stderr": ""})]
    )
    assert only_reason(journal) == (
        "fail",
        "action 'drain-node' exited 2 (Chaos Toolkit records that as succeeded)",
    )


# R8: every chaosmesh fault seen live


def test_a_fault_whose_data_plane_could_not_be_read_fails_and_says_give_verify_url():
    outcome, reason = only_reason(clean(run=[injection(effect=UNREADABLE)]))
    assert outcome == "fail"
    assert reason.startswith("fault of 'delay-ratings' not verified live: ")
    assert "give verify_url" in reason
    assert "--allow-unverified" in reason


def test_a_fault_checked_by_nobody_fails():
    outcome, reason = only_reason(clean(run=[injection(effect=None)]))
    assert outcome == "fail"
    assert "not verified live: the data plane was not checked" in reason
    assert "chaosmesh_verify_timeout_s is 0" in reason


@pytest.mark.parametrize("effect", [UNREADABLE, None])
def test_allow_unverified_accepts_unverified_faults(effect):
    assert grade(clean(run=[injection(effect=effect)]), allow_unverified=True).outcome == "pass"


@pytest.mark.parametrize(
    "effect",
    [
        {"checked": "requests to http://x", "traffic": "1 request(s)", "traffic_s": 0.4},
        {"checked": "local mesh", "config_s": 0.02, "traffic": "config check only"},
    ],
)
def test_a_fault_seen_by_request_or_in_envoy_config_is_verified(effect):
    assert grade(clean(run=[injection(effect=effect)])).outcome == "pass"


# R9: every declared rollback ran and succeeded


def test_a_failed_rollback_of_something_else_leaves_the_rollback_incomplete():
    journal = clean()
    journal["experiment"]["rollbacks"] = [RESTORE]
    journal["rollbacks"] = [activity_run(RESTORE, "failed", error="RuntimeError: 403\n")]
    assert only_reason(journal) == (
        "rollback-incomplete",
        "rollback 'restore-replicas' failed: RuntimeError: 403",
    )


def test_a_process_rollback_exiting_non_zero_leaves_the_rollback_incomplete():
    journal = clean()
    journal["experiment"]["rollbacks"] = [RESTORE]
    journal["rollbacks"] = [activity_run(RESTORE, output={"status": 1, "stdout": "", "stderr": ""})]
    assert only_reason(journal) == (
        "rollback-incomplete",
        "rollback 'restore-replicas' exited 1 (Chaos Toolkit records that as succeeded)",
    )


def test_a_failed_chaosmesh_rollback_the_control_made_up_for_fails():
    journal = clean(rollbacks=[activity_run(REMOVE, "failed", error="Forbidden: no patch\n")])
    assert only_reason(journal) == (
        "fail",
        "rollback 'remove-ratings-faults' failed: Forbidden: no patch; "
        "the chaosmesh control removed the run's faults",
    )


def test_rollbacks_skipped_after_a_safeguard_tripped_are_reported():
    # chaos run's default strategy plays no rollback for an interrupted run.
    journal = clean(status="interrupted", steady_states={"before": probe_state()}, rollbacks=[])
    journal["experiment"]["rollbacks"] = [REMOVE, RESTORE]
    verdict = grade(journal)
    assert verdict.outcome == "rollback-incomplete"  # nobody undid restore-replicas
    assert verdict.reasons == (
        "run interrupted (a signal, Ctrl-C, a safeguard or a control stopped it)",
        "rollback 'remove-ratings-faults' never ran (the rollback strategy skipped it: run "
        "interrupted); the chaosmesh control removed the run's faults",
        "rollback 'restore-replicas' never ran (the rollback strategy skipped it: run interrupted)",
    )


def test_skipped_chaosmesh_rollbacks_the_control_made_up_for_fail():
    journal = clean(status="interrupted", steady_states={"before": probe_state()}, rollbacks=[])
    verdict = grade(journal)
    assert verdict.outcome == "fail"
    assert "rollback 'remove-ratings-faults' never ran" in verdict.reasons[1]


def test_skipped_rollbacks_do_not_count_when_the_method_never_ran():
    journal = clean(
        status="failed",
        steady_states={"before": probe_state(met=False)},
        run=[],
        rollbacks=[],
    )
    journal["experiment"]["rollbacks"] = [RESTORE]
    assert grade(journal).outcome == "fail"
    assert not any("rollback" in reason for reason in grade(journal).reasons)


# R10: the control ran when chaosmesh actions did


def test_chaosmesh_actions_without_the_control_fail():
    journal = clean()
    del journal["chaosmesh"]
    assert only_reason(journal) == (
        "fail",
        "the chaosmesh control was not declared: rollback not guaranteed",
    )


def test_faults_without_the_control_or_any_removal_are_left_behind():
    journal = clean(rollbacks=[])
    journal["experiment"]["rollbacks"] = []
    del journal["chaosmesh"]
    verdict = grade(journal)
    assert verdict.outcome == "rollback-incomplete"
    assert verdict.reasons[1] == (
        "edits by 'delay-ratings' were never removed: "
        "no chaosmesh_py.faults.rollbacks activity succeeded"
    )


def test_without_the_control_an_edit_is_removed_only_by_its_own_kinds_removal():
    timeout = {
        "type": "action",
        "name": "reviews-timeout",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.resilience.actions",
            "func": "set_route_timeout",
        },
    }
    journal = clean()
    journal["run"].append(activity_run(timeout, output={"effect": {"config_s": 0.1}}))
    del journal["chaosmesh"]
    verdict = grade(journal)
    assert verdict.outcome == "rollback-incomplete"
    assert verdict.reasons[-1] == (
        "edits by 'reviews-timeout' were never removed: "
        "no chaosmesh_py.resilience.rollbacks activity succeeded"
    )


def test_a_run_without_chaosmesh_actions_needs_no_control():
    action = {"type": "action", "name": "noop", "provider": {"type": "process"}}
    journal = clean(run=[activity_run(action, output={"status": 0})], rollbacks=[])
    journal["experiment"]["rollbacks"] = []
    del journal["chaosmesh"]
    assert grade(journal, allow_no_fault=True).outcome == "pass"


# R11: the control removed every fault


def test_an_incomplete_control_rollback_wins_over_every_failure():
    journal = clean(status="interrupted", deviated=True, run=[injection(effect=UNREADABLE)])
    journal["chaosmesh"].update(
        rollback_complete=False,
        rollback_failed=[{"virtual_service": "bookinfo/ratings", "error": "Forbidden: 403"}],
    )
    verdict = grade(journal)
    assert verdict.outcome == "rollback-incomplete"
    assert verdict.reasons[-1] == (
        "the chaosmesh control could not remove run r1's faults from bookinfo/ratings: "
        "Forbidden: 403"
    )
    assert len(verdict.reasons) == 4


def test_a_control_that_never_reported_its_rollback_leaves_it_incomplete():
    journal = clean()
    journal["chaosmesh"] = {"run_id": "r1"}
    assert only_reason(journal) == (
        "rollback-incomplete",
        "the chaosmesh control never reported its rollback",
    )


# R12: the method injected a chaosmesh fault


@pytest.mark.parametrize("with_control", [True, False])
def test_a_run_that_injects_no_fault_fails_unless_allowed(with_control):
    # A journal with no fault at all: the steady state held, and nothing was tested.
    probe = {"type": "probe", "name": "page-whole", "provider": {"type": "process"}}
    journal = clean(run=[activity_run(probe, output={"status": 0})], rollbacks=[])
    journal["experiment"]["rollbacks"] = []
    journal["chaosmesh"]["faults"] = []
    if not with_control:
        del journal["chaosmesh"]
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason.startswith("no chaosmesh fault was injected: the run tested nothing")
    assert "--allow-no-fault" in reason
    assert grade(journal, allow_no_fault=True).outcome == "pass"


def test_a_run_whose_method_never_ran_is_not_also_blamed_for_injecting_nothing():
    journal = clean(
        steady_states={"before": probe_state(met=False), "after": None, "during": []}, run=[]
    )
    assert "no chaosmesh fault" not in repr(grade(journal).reasons)


# R13: every fault hit real requests


def test_a_fault_that_hit_nothing_fails_naming_the_fault_and_its_routes():
    journal = clean()
    journal["chaosmesh"]["faults"][0].update(hits=0, requests=0, by_route={"chaosmesh-r1-abc": 0})
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason.startswith(
        "the fault of 'delay-ratings' tested nothing: it hit 0 requests on chaosmesh-r1-abc "
        "of bookinfo/ratings during the run; 0 request(s) took those routes"
    )
    # Counted at 0 is known: no waiver makes it pass.
    assert grade(journal, allow_unverified=True, allow_no_fault=True).outcome == "fail"


def test_a_fault_whose_hits_are_unknown_fails_like_an_unverified_one():
    journal = clean()
    journal["chaosmesh"]["faults"][0].update(
        hits="unknown",
        counted="not counted: a cluster's requests are counted through Prometheus; "
        "set configuration chaosmesh_prometheus_url",
    )
    outcome, reason = only_reason(journal)
    assert outcome == "fail"
    assert reason == (
        "what the fault of 'delay-ratings' hit is unknown: a cluster's requests are counted "
        "through Prometheus; set configuration chaosmesh_prometheus_url "
        "(or accept uncounted faults with --allow-unverified)"
    )
    assert grade(journal, allow_unverified=True).outcome == "pass"


def test_a_fault_the_control_did_not_count_is_unknown():
    journal = clean()
    journal["chaosmesh"]["faults"] = []
    assert only_reason(journal)[1].startswith(
        "what the fault of 'delay-ratings' hit is unknown: the chaosmesh control did not count"
    )


def test_the_verdict_carries_what_each_fault_hit():
    assert grade(clean()).faults == (HITS,)
    assert grade(clean()).to_json()["faults"][0]["hits"] == 7


def test_hits_are_matched_to_their_injection_by_routes():
    other = {**HITS, "activity": "abort-reviews", "routes": ["chaosmesh-r1-def"], "hits": 0}
    journal = clean()
    journal["chaosmesh"]["faults"] = [other, HITS]
    assert grade(journal).outcome == "pass"


# The control's own mark: a journal graded at the end of chaos run, graded again


def test_the_controls_deviated_mark_is_not_a_reason_of_its_own():
    journal = clean(run=[injection(status="failed")], deviated=True)
    journal["chaosmesh"]["verdict"] = {"outcome": "fail", "marked_deviated": True}
    assert only_reason(journal) == (
        "fail",
        "action 'delay-ratings' failed: TargetNotFound: virtual_service: "
        "no VirtualService 'nosuch'",
    )


def test_a_deviated_mark_the_control_did_not_make_still_counts():
    journal = clean(deviated=True, steady_states={"before": probe_state(), "after": None})
    journal["chaosmesh"]["verdict"] = {"outcome": "fail"}
    assert only_reason(journal) == ("fail", "the journal marks the run deviated")


# Secrets never reach a verdict


def test_inline_and_environment_secrets_are_hidden_from_title_and_reasons():
    journal = clean(run=[injection(status="failed")])
    journal["experiment"]["title"] = "run with token s3cr3t-token"
    journal["experiment"]["secrets"] = {
        "k8s": {"token": "s3cr3t-token", "password": {"type": "env", "key": "PASSWORD"}}
    }
    journal["run"][0]["exception"][-1] = "ActivityFailed: 401 for hunter2-pw and s3cr3t-token\n"
    verdict = grade(journal, environ={"PASSWORD": "hunter2-pw"})
    text = repr(verdict.to_json())
    assert "s3cr3t-token" not in text
    assert "hunter2-pw" not in text
    assert verdict.title == "run with token ***"
    assert verdict.reasons[0].endswith("401 for *** and ***")


# What is a journal, and what cannot be graded


def test_journals_are_told_from_experiments_by_content():
    assert is_journal(clean())
    assert not is_journal(clean()["experiment"])
    assert not is_journal([clean()])


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"run": {"not": "a list"}}, "run is not a list of activity runs"),
        ({"rollbacks": [{"status": "succeeded"}]}, "rollbacks is not a list of activity runs"),
        ({"steady_states": {"before": "met"}}, "steady_states.before is not an object"),
        ({"chaosmesh": ["r1"]}, "chaosmesh is not an object"),
        ({"experiment": "title"}, "experiment is not an object"),
    ],
)
def test_a_malformed_journal_cannot_be_graded(changes, problem):
    with pytest.raises(MalformedJournal, match=problem):
        grade(clean(**changes))


# R14
LOST = {
    "resource": "VirtualService bookinfo/ratings",
    "at": "2026-12-06T10:00:01.250+00:00",
    "routes": ["chaosmesh-r1-abc"],
    "record": True,
    "by": "flagger, Update at 2026-12-06T10:00:01Z",
    "during_method": True,
}


def removed(*entries):
    return {**CONTROL_SUMMARY, "removed_by_another_writer": list(entries)}


def test_an_edit_another_writer_removed_during_the_method_fails_the_run():
    outcome, reason = only_reason(clean(chaosmesh=removed(LOST)))
    assert outcome == "fail"
    assert reason.startswith(
        "route chaosmesh-r1-abc, the run's owner record on VirtualService bookinfo/ratings "
        "removed by another writer (flagger, Update at 2026-12-06T10:00:01Z) at "
        "2026-12-06T10:00:01.250+00:00: from then on the method ran without it"
    )


def test_a_removal_after_the_method_changed_nothing_it_tested():
    assert grade(clean(chaosmesh=removed({**LOST, "during_method": False}))).outcome == "pass"


def test_a_removal_whose_moment_is_unknown_counts_as_inside_the_method():
    unseen = {**LOST, "at": None, "by": None, "during_method": None}
    outcome, reason = only_reason(clean(chaosmesh=removed(unseen)))
    assert outcome == "fail"
    assert "removed by another writer before the rollback (when: unknown)" in reason


def test_a_journal_whose_losses_are_not_a_list_is_malformed():
    with pytest.raises(MalformedJournal, match="removed_by_another_writer"):
        grade(clean(chaosmesh=removed() | {"removed_by_another_writer": "x"}))


# Routing edits (chaosmesh_py.traffic.actions) are graded like faults for R8, R10 and R12.


def routing_edit(verification=VERIFIED, name="dark-launch"):
    entry = activity_run(
        {
            "type": "action",
            "name": name,
            "provider": {
                "type": "python",
                "module": "chaosmesh_py.traffic.actions",
                "func": "route_to_version",
            },
        },
        output={"run_id": "r1", "routes": ["chaosmesh-r1-def"], "edit": {"weights": {"v2": 100}}},
    )
    if verification is not None:
        entry["output"]["verification"] = verification
    return entry


def routing_only(**changes):
    journal = clean(run=[routing_edit(**changes)], rollbacks=[])
    journal["experiment"]["rollbacks"] = []
    journal["chaosmesh"]["faults"] = []
    return journal


def test_a_verified_routing_edit_alone_is_a_run_that_tested_something():
    assert grade(routing_only()).outcome == "pass"


@pytest.mark.parametrize(
    ("verification", "why"),
    [
        (UNREADABLE, "give verify_url"),
        (None, "the data plane was not checked (chaosmesh_verify_timeout_s is 0)"),
        (
            {"checked": "requests to http://x: answered as listed; which version answered ..."},
            "requests to http://x: answered as listed",
        ),
    ],
)
def test_an_unverified_routing_edit_fails_unless_allowed(verification, why):
    outcome, reason = only_reason(routing_only(verification=verification))
    assert outcome == "fail"
    assert reason.startswith("routing edit of 'dark-launch' not verified live: ")
    assert why in reason
    assert grade(routing_only(verification=verification), allow_unverified=True).outcome == ("pass")


def test_a_routing_edit_without_the_control_or_a_removal_leaves_changes():
    journal = routing_only()
    del journal["chaosmesh"]
    verdict = grade(journal)
    assert verdict.outcome == "rollback-incomplete"
    assert any("'dark-launch' were never removed" in r for r in verdict.reasons)


# Resilience edits (chaosmesh_py.resilience.actions) are graded like faults for R8, R10 and R12;
# their check is their "effect", as a fault's.


def policy_edit(effect=None, name="tight-timeout"):
    entry = activity_run(
        {
            "type": "action",
            "name": name,
            "provider": {
                "type": "python",
                "module": "chaosmesh_py.resilience.actions",
                "func": "set_route_timeout",
            },
        },
        output={
            "run_id": "r1",
            "resource": "bookinfo/reviews",
            "fields": [{"field": "spec.http[name=v1].timeout", "wrote": "0.5s", "replaced": None}],
        },
    )
    if effect is not None:
        entry["output"]["effect"] = effect
    return entry


def policy_only(**changes):
    journal = clean(run=[policy_edit(**changes)], rollbacks=[])
    journal["experiment"]["rollbacks"] = []
    journal["chaosmesh"]["faults"] = []
    return journal


def test_a_verified_policy_edit_alone_is_a_run_that_tested_something():
    live = {"checked": "local mesh: Envoy config (1 route(s))", "config_s": 0.02}
    assert grade(policy_only(effect=live)).outcome == "pass"


def test_an_upstream_fault_verified_on_each_pod_counts_as_live():
    verified = {"verified": True, "checked": "each pod's inbound, then requests to each pod"}
    assert grade(policy_only(effect=verified)).outcome == "pass"
    unverified = {"verified": False, "checked": "no: a cluster's pods cannot be asked from here"}
    assert only_reason(policy_only(effect=unverified))[0] == "fail"


def test_a_policy_edit_checked_only_through_the_api_fails_unless_allowed():
    on_cluster = {"checked": "no: a cluster's sidecars cannot be read from here; the API holds it"}
    outcome, reason = only_reason(policy_only(effect=on_cluster))
    assert outcome == "fail"
    assert reason.startswith("resilience edit of 'tight-timeout' not verified live: ")
    assert "a cluster's sidecars cannot be read from here" in reason
    assert grade(policy_only(effect=on_cluster), allow_unverified=True).outcome == "pass"


def test_a_policy_edit_without_the_control_is_removed_by_restore_policies():
    live = {"checked": "local mesh", "config_s": 0.02}
    journal = policy_only(effect=live)
    del journal["chaosmesh"]
    verdict = grade(journal)
    assert verdict.outcome == "rollback-incomplete"
    assert any("'tight-timeout' were never removed" in r for r in verdict.reasons)
    restore = activity_run(
        {
            "type": "action",
            "name": "restore",
            "provider": {
                "type": "python",
                "module": "chaosmesh_py.resilience.rollbacks",
                "func": "restore_policies",
            },
        },
        output={"run_id": "r1", "restored": []},
    )
    journal["rollbacks"] = [restore]
    assert not any("never removed" in r for r in grade(journal).reasons)


# Security changes (chaosmesh_py.security.actions) are graded as resilience edits: their check is
# their "effect", verified on the local mesh, "not checked in the data plane" on a cluster.


def security_change(effect):
    journal = policy_only(effect=effect)
    provider = journal["run"][0]["activity"]["provider"]
    provider.update(module="chaosmesh_py.security.actions", func="deny_requests")
    return journal


def test_a_security_change_verified_in_the_data_plane_is_a_run_that_tested_something():
    verified = {"verified": True, "checked": "the policy in each selected pod's RBAC filter"}
    assert grade(security_change(verified)).outcome == "pass"


def test_a_security_change_checked_only_in_the_api_fails_unless_allowed():
    api_only = {"verified": False, "checked": "the AuthorizationPolicy is in the API; ..."}
    outcome, reason = only_reason(security_change(api_only))
    assert outcome == "fail"
    assert reason.startswith("security change of 'tight-timeout' not verified live: ")
    assert grade(security_change(api_only), allow_unverified=True).outcome == "pass"
