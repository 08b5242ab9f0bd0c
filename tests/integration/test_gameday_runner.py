"""`chaosmesh gameday run`'s runner against the API double: real `chaos run`s, a real Lease and
state ConfigMap over HTTP, the real client.

Each game day's experiments delay ratings for Jason (a real write the rollback must undo
exactly); the tests read the VirtualService back and compare it with its spec before the run.
"""

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday import runner, slots
from chaosmesh_py.gameday.lease import Lease, lease_name, micro_time
from chaosmesh_py.gameday.state import GameDayState, SlotRecord
from chaosmesh_py.gameday.suite import (
    AbortCondition,
    Blackout,
    Notification,
    Preflight,
    Schedule,
)
from chaosmesh_py.kube import CONFIG_MAP, LEASE, Kube, ResourceRef
from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.localmesh.apiserver.rbac import PolicyRule
from tests import gameday_cluster
from tests.conftest import NAMESPACE
from tests.e2e.test_chaos_run import delay_action
from tests.gameday_cluster import (
    Announcements,
    delay_then_wait,
    fixed_clock,
    gameday,
    options,
    write_experiment,
)
from tests.integration.test_inject_rollback import exact, read

pytestmark = pytest.mark.slow

cluster = gameday_cluster.cluster

# A Tuesday 09:30 in Berlin, an hourly schedule at :30: the slot a CronJob would start.
SLOT = datetime(2026, 12, 8, 8, 30, tzinfo=UTC)
HOURLY = Schedule(cron="30 * * * *", timezone="Europe/Berlin", starting_deadline_s=600)


def kube():
    return Kube.connect()


def history(gameday_name="bookinfo-weekly"):
    return GameDayState(kube(), NAMESPACE, gameday_name).read()


def test_a_run_writes_its_directory_and_leaves_the_routes_as_they_were(cluster, tmp_path):
    before = exact(read(cluster))
    first = write_experiment(tmp_path, "delay-ratings", [delay_action()])
    second = delay_then_wait(tmp_path, "delay-and-hold", 0.5)
    told = Announcements()
    game = runner.run_gameday(
        gameday(tmp_path, [first, second], schedule=HOURLY),
        options(tmp_path, now=fixed_clock(SLOT + timedelta(seconds=5)), announcements=told),
    )
    summary = game.summary
    assert summary["outcome"] == "pass", summary["reasons"]
    assert runner.EXIT_CODES[summary["outcome"]] == 0
    assert summary["slot_id"] == "20261208T083000Z"
    assert summary["slot"] == "2026-12-08T09:30:00+01:00"  # in the schedule's zone
    directory = tmp_path / "results/bookinfo-weekly/20261208T083000Z"
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "01-delay-ratings.journal.json",
        "01-delay-ratings.log",
        "02-delay-and-hold.journal.json",
        "02-delay-and-hold.log",
        "gameday.json",
        "junit.xml",
    ]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in directory.iterdir())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    written = json.loads((directory / "gameday.json").read_text())
    assert written == summary
    assert set(written) == {
        "version", "gameday", "file", "namespace", "slot", "slot_id", "runner", "prometheus_url",
        "started",
        "ended", "outcome", "reasons", "experiments", "preflight", "abort", "pause", "slots",
        "notifications",
    }  # fmt: skip
    rows = written["experiments"]
    assert [r["outcome"] for r in rows] == ["pass", "pass"]
    assert rows[0]["journal"] == str(directory / "01-delay-ratings.journal.json")
    assert rows[0]["started"] <= rows[0]["ended"] <= rows[1]["started"] <= rows[1]["ended"]
    assert all(r["run_id"] for r in rows) and rows[0]["run_id"] != rows[1]["run_id"]
    # The run id the runner gave each chaos run is the one its journal and ledger carry.
    journal = json.loads((directory / "01-delay-ratings.journal.json").read_text())
    assert journal["chaosmesh"]["run_id"] == rows[0]["run_id"]
    cases = ET.parse(directory / "junit.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == [str(first), str(second)]
    assert [s["outcome"] for s in written["slots"]] == ["pass"]
    assert [(r.slot_id, r.outcome) for r in history().slots] == [("20261208T083000Z", "pass")]
    assert [name for name, _ in told.told] == [
        "gameday-started",
        "region-started",
        "experiment-started",
        "experiment-completed",
        "experiment-started",
        "experiment-completed",
        "region-ended",
        "gameday-completed",
    ]
    assert written["notifications"] == told.close()
    assert exact(read(cluster)) == before
    # The Lease is released: the next runner need not wait for it to expire.
    lease = cluster.get("coordination.k8s.io/v1", "Lease", NAMESPACE, lease_name("bookinfo-weekly"))
    assert "holderIdentity" not in lease["spec"]


def test_a_blackout_refuses_with_its_reason_and_runs_nothing(cluster, tmp_path):
    before = exact(read(cluster))
    freeze = Blackout(reason="release freeze until the 10th", weekdays=frozenset(range(7)))
    game = runner.run_gameday(
        gameday(tmp_path, [delay_then_wait(tmp_path, "delay", 0)], blackouts=(freeze,)),
        options(tmp_path),
    )
    summary = game.summary
    assert summary["outcome"] == "skipped"
    assert runner.EXIT_CODES["skipped"] == 0
    assert summary["reasons"] == ["in a blackout: release freeze until the 10th"]
    assert runner.verdict_line(summary) == "skipped: in a blackout: release freeze until the 10th"
    assert summary["experiments"] == []
    (record,) = history().slots
    assert record.outcome == "skipped"
    assert record.reason == "in a blackout: release freeze until the 10th"
    assert record.slot is None and record.slot_id.startswith("adhoc-")
    written = json.loads(
        (tmp_path / "results/bookinfo-weekly" / summary["slot_id"] / "gameday.json").read_text()
    )
    assert written["outcome"] == "skipped"
    assert exact(read(cluster)) == before


def test_a_run_by_hand_through_a_blackout_runs_and_names_the_blackout_it_overrode(
    cluster, tmp_path
):
    freeze = Blackout(reason="release freeze until the 10th", weekdays=frozenset(range(7)))
    game = runner.run_gameday(
        gameday(tmp_path, [delay_then_wait(tmp_path, "delay", 0)], blackouts=(freeze,)),
        options(tmp_path, ignore_blackouts=True),
    )
    assert game.summary["outcome"] == "pass"
    assert game.summary["blackout_overridden"] == "release freeze until the 10th"
    assert len(game.summary["experiments"]) == 1


def test_a_prometheus_url_naming_an_unset_variable_is_refused_before_anything_runs(
    cluster, tmp_path, monkeypatch
):
    monkeypatch.delenv("GAMEDAY_TEST_PROMETHEUS", raising=False)
    check = Preflight(name="no-firing-alerts", query='ALERTS{alertstate="firing"}')
    day = gameday(
        tmp_path,
        [delay_then_wait(tmp_path, "delay", 0)],
        preflight=(check,),
        prometheus_url="${GAMEDAY_TEST_PROMETHEUS}",
    )
    with pytest.raises(InvalidInput, match=r"\$\{GAMEDAY_TEST_PROMETHEUS\} is not set"):
        runner.run_gameday(day, options(tmp_path))
    assert not (tmp_path / "results").exists()
    assert not history().slots


def test_missed_slots_are_recorded_by_the_next_run(cluster, tmp_path):
    state = GameDayState(kube(), NAMESPACE, "bookinfo-weekly")
    three_hours_ago = SLOT - timedelta(hours=3)
    state.record(
        SlotRecord(
            three_hours_ago.isoformat(),
            slots.slot_id(three_hours_ago, SLOT),
            "pass",
            "an-earlier-pod",
            three_hours_ago.isoformat(),
        )
    )
    # 07:30 Berlin fell in a blackout: had a runner come, it would have been skipped.
    early = Blackout(reason="before office hours", hours=(time_of_day(7), time_of_day(8)))
    day = gameday(
        tmp_path,
        [write_experiment(tmp_path, "delay", [delay_action()])],
        schedule=HOURLY,
        blackouts=(early,),
    )
    game = runner.run_gameday(day, options(tmp_path, now=fixed_clock(SLOT + timedelta(seconds=30))))
    assert game.summary["outcome"] == "pass"
    records = {r.slot_id: r.outcome for r in history().slots}
    assert records == {
        "20261208T053000Z": "pass",
        "20261208T063000Z": "skipped",
        "20261208T073000Z": "missed",
        "20261208T083000Z": "pass",
    }
    assert [(s["slot_id"], s["outcome"], s["reason"]) for s in game.summary["slots"]] == [
        ("20261208T063000Z", "skipped", "in a blackout: before office hours (no runner came)"),
        (
            "20261208T073000Z",
            "missed",
            "no runner recorded this slot (not started, or started after its deadline)",
        ),
        ("20261208T083000Z", "pass", ""),
    ]


def test_a_start_past_the_deadline_runs_outside_the_slot_and_records_it_missed(cluster, tmp_path):
    state = GameDayState(kube(), NAMESPACE, "bookinfo-weekly")
    hour_ago = SLOT - timedelta(hours=1)
    state.record(SlotRecord(hour_ago.isoformat(), slots.slot_id(hour_ago, SLOT), "pass", "p", "t"))
    late = SLOT + timedelta(minutes=20)  # the deadline is 10 minutes
    game = runner.run_gameday(
        gameday(tmp_path, [write_experiment(tmp_path, "delay", [delay_action()])], schedule=HOURLY),
        options(tmp_path, now=fixed_clock(late)),
    )
    assert game.summary["slot"] is None
    assert game.summary["slot_id"].startswith("adhoc-20261208T0850")
    outcomes = {r.slot_id: r.outcome for r in history().slots}
    assert outcomes["20261208T083000Z"] == "missed"


def test_two_runners_for_one_slot_one_runs_the_other_records_already_running(cluster, tmp_path):
    before = exact(read(cluster))
    day = gameday(tmp_path, [delay_then_wait(tmp_path, "delay-and-hold", 4)], schedule=HOURLY)
    clock = fixed_clock(SLOT + timedelta(seconds=2))
    games = {}

    def first_runner():
        games["a"] = runner.run_gameday(day, options(tmp_path, now=clock, runner_id="pod-a"))

    thread = threading.Thread(target=first_runner)
    thread.start()
    deadline = time.monotonic() + 30
    while len(read(cluster)["spec"]["http"]) == 1:  # until pod-a's fault is in
        assert time.monotonic() < deadline, "the first runner never injected"
        time.sleep(0.05)
    second = runner.run_gameday(day, options(tmp_path / "b", now=clock, runner_id="pod-b")).summary
    thread.join(timeout=60)
    assert second["outcome"] == "skipped"
    (reason,) = second["reasons"]
    assert reason.startswith("already running: the game day's Lease is held by pod-a (since ")
    assert not (tmp_path / "b/results").exists()  # the slot's directory is the first runner's
    assert games["a"].summary["outcome"] == "pass"
    # A third start for the slot after the first ended: the history says it ran.
    third = runner.run_gameday(day, options(tmp_path / "c", now=clock, runner_id="pod-c")).summary
    assert third["outcome"] == "skipped"
    assert third["reasons"][0].startswith(
        "already run: slot 20261208T083000Z was recorded 'pass' by pod-a at "
    )
    records = [(r.runner, r.outcome) for r in history().slots]
    assert records == [("pod-b", "already-running"), ("pod-a", "pass"), ("pod-c", "already-run")]
    assert exact(read(cluster)) == before


def test_a_runner_killed_holding_the_lease_does_not_block_the_next_one(cluster):
    ghost = Lease(kube(), NAMESPACE, "bookinfo-weekly", "killed-pod", duration_s=2)
    assert ghost.acquire() is None
    successor = Lease(kube(), NAMESPACE, "bookinfo-weekly", "next-pod", duration_s=2)
    holder = successor.acquire()
    assert holder is not None and holder.identity == "killed-pod"
    time.sleep(2.2)  # the ghost never renews: its Lease expires
    assert successor.acquire() is None
    lease = kube().get(ResourceRef(LEASE, NAMESPACE, lease_name("bookinfo-weekly")))
    assert lease["spec"]["holderIdentity"] == "next-pod"
    assert lease["spec"]["leaseTransitions"] == 1
    assert ghost.renew() is False  # the ghost, come back, learns it lost it


def test_of_runners_racing_for_a_free_lease_exactly_one_wins(cluster):
    stale = datetime.now(UTC) - timedelta(minutes=5)
    old = Lease(kube(), NAMESPACE, "bookinfo-weekly", "old-pod", duration_s=30)
    assert old.acquire(stale) is None
    kube().patch(
        ResourceRef(LEASE, NAMESPACE, lease_name("bookinfo-weekly")),
        {"spec": {"renewTime": micro_time(stale)}},
    )
    won = []
    barrier = threading.Barrier(6)

    def race(identity):
        barrier.wait()
        if Lease(kube(), NAMESPACE, "bookinfo-weekly", identity).acquire() is None:
            won.append(identity)

    threads = [threading.Thread(target=race, args=(f"pod-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 1


def test_an_invalid_experiment_refuses_before_anything_is_written(cluster, tmp_path):
    missing = tmp_path / "no-such-experiment.json"
    with pytest.raises(InvalidInput) as refused:
        runner.run_gameday(gameday(tmp_path, [missing]), options(tmp_path))
    assert str(refused.value).startswith(f"experiments[0] ({missing}): no such file")
    assert not (tmp_path / "results").exists()
    assert history().slots == ()
    assert (
        cluster.get(
            "coordination.k8s.io/v1", "Lease", NAMESPACE, "chaosmesh-gameday-bookinfo-weekly"
        )
        is None
    )


CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")


def start_in_background(day, opts):
    """The runner in a thread (as a CronJob's pod would run it); its run once it ends."""
    done = {}
    thread = threading.Thread(target=lambda: done.update(game=runner.run_gameday(day, opts)))
    thread.start()
    return thread, done


def wait_for_fault(cluster, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while len(read(cluster)["spec"]["http"]) == 1:
        assert time.monotonic() < deadline, "the fault never appeared"
        time.sleep(0.05)


def chaosmesh(cluster, tmp_path, *arguments):
    environment = {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "KUBERNETES_HOST": cluster.url,
    }
    return subprocess.run(
        [CHAOSMESH, *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pause_rolls_back_the_running_experiment_and_starts_no_other(cluster, tmp_path):
    before = exact(read(cluster))
    day = gameday(
        tmp_path,
        [delay_then_wait(tmp_path, "hold-30s", 30), delay_then_wait(tmp_path, "next", 0)],
    )
    thread, done = start_in_background(day, options(tmp_path))
    wait_for_fault(cluster)
    paused = chaosmesh(
        cluster, tmp_path, "gameday", "pause", "bookinfo-weekly", "-n", NAMESPACE,
        "--reason", "checkout incident",
    )  # fmt: skip
    asked = time.monotonic()
    assert paused.returncode == 0, paused.stderr
    assert "gameday bookinfo/bookinfo-weekly: paused by " in paused.stdout
    thread.join(timeout=60)
    stopped_in_s = time.monotonic() - asked
    assert stopped_in_s < 20  # not the 30 s the experiment would hold its fault
    summary = done["game"].summary
    assert summary["outcome"] == "paused"
    assert runner.EXIT_CODES["paused"] == 1
    assert summary["reasons"][0].startswith("paused by ")
    assert summary["reasons"][0].endswith(": checkout incident")
    assert summary["pause"]["reason"] == "checkout incident"
    first, second = summary["experiments"]
    journal = json.loads(Path(first["journal"]).read_text())
    assert journal["status"] == "interrupted"
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert first["outcome"] == "fail"
    assert second["outcome"] == "not-run"
    assert second["reasons"][0].startswith("not run: paused by ")
    assert exact(read(cluster)) == before  # back to its spec before the run, byte for byte
    assert [(r.outcome) for r in history().slots] == ["paused"]
    # Paused, the next run is skipped and says by whom; resumed, it runs.
    again = runner.run_gameday(day, options(tmp_path / "again")).summary
    assert again["outcome"] == "skipped"
    assert again["reasons"][0].startswith("paused by ")
    resumed = chaosmesh(cluster, tmp_path, "gameday", "resume", "bookinfo-weekly", "-n", NAMESPACE)
    assert resumed.returncode == 0, resumed.stderr
    assert history().pause is None


def test_pause_and_resume_refuse_bad_names_with_exit_2(cluster, tmp_path):
    bad = chaosmesh(cluster, tmp_path, "gameday", "pause", "Bookinfo_Weekly", "-n", NAMESPACE)
    assert bad.returncode == 2
    assert "'Bookinfo_Weekly' is not a game-day name" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = chaosmesh(cluster, tmp_path, "gameday", "resume", "weekly", "-n", "Not A Namespace")
    assert bad.returncode == 2
    assert "is not a namespace name" in bad.stderr
    assert history("weekly").slots == () and history("weekly").pause is None


class Metrics:
    """What a service exports on /metrics, on 127.0.0.1, set by the test as it goes."""

    def __init__(self):
        self.values = {'checkout_error_ratio{service="checkout"}': 0.01}
        metrics = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = "".join(f"{k} {v}\n" for k, v in metrics.values.items()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus scraping ``Metrics`` every second."""
    from chaosmesh_py.localmesh.prometheus import Prometheus, find_binary
    from chaosmesh_py.localmesh.topology import free_ports

    metrics = Metrics()
    server = Prometheus(
        find_binary(),
        tmp_path_factory.mktemp("prometheus"),
        [f"http://{metrics.address}/metrics"],
        next(iter(free_ports())),
    )
    server.start()
    server.wait_for_scrape()
    yield server, metrics
    server.stop()
    metrics.server.shutdown()
    metrics.server.server_close()


def test_an_abort_condition_held_past_its_duration_rolls_back_and_stops(
    cluster, tmp_path, prometheus
):
    server, metrics = prometheus
    metrics.values['checkout_error_ratio{service="checkout"}'] = 0.01
    before = exact(read(cluster))
    error_ratio = AbortCondition(
        name="checkout-errors",
        query='checkout_error_ratio{service="checkout"}',
        above=0.05,
        for_s=2.0,
        interval_s=0.5,
    )
    day = gameday(
        tmp_path,
        [delay_then_wait(tmp_path, "hold-40s", 40), delay_then_wait(tmp_path, "next", 0)],
        abort=(error_ratio,),
        prometheus_url=server.url,
    )
    thread, done = start_in_background(day, options(tmp_path))
    wait_for_fault(cluster)
    time.sleep(1.5)  # below the threshold meanwhile: nothing happens
    assert thread.is_alive()
    metrics.values['checkout_error_ratio{service="checkout"}'] = 0.3
    crossed = datetime.now(UTC)
    thread.join(timeout=60)
    summary = done["game"].summary
    assert summary["outcome"] == "aborted", summary["reasons"]
    assert runner.EXIT_CODES["aborted"] == 1
    abort = summary["abort"]
    assert abort["condition"] == "checkout-errors"
    assert abort["value"] == 0.3
    held_s = (datetime.fromisoformat(abort["at"]) - crossed).total_seconds()
    assert 2.0 <= held_s < 15  # held for for_s, then acted on at once
    assert summary["reasons"][0].startswith(
        "aborted: abort condition 'checkout-errors' breached: 0.3 > 0.05 for "
    )
    first, second = summary["experiments"]
    assert json.loads(Path(first["journal"]).read_text())["status"] == "interrupted"
    assert second["outcome"] == "not-run"
    assert exact(read(cluster)) == before
    assert [r.outcome for r in history().slots] == ["aborted"]


def test_a_preflight_check_that_finds_firing_alerts_refuses_the_start(
    cluster, tmp_path, prometheus
):
    server, metrics = prometheus
    metrics.values['firing_alerts{alertname="CheckoutDown"}'] = 1
    before = exact(read(cluster))
    no_alerts = Preflight(name="no-firing-alerts", query="firing_alerts > 0")
    day = gameday(
        tmp_path,
        [delay_then_wait(tmp_path, "delay", 0)],
        preflight=(no_alerts,),
        prometheus_url=server.url,
    )
    time.sleep(2.5)  # two scrapes
    summary = runner.run_gameday(day, options(tmp_path)).summary
    assert summary["outcome"] == "skipped"
    assert summary["reasons"] == [
        "preflight refused: no-firing-alerts: returned 1 series: "
        '{__name__="firing_alerts",alertname="CheckoutDown",instance="'
        + metrics.address
        + '",job="local-mesh"} 1'
    ]
    assert summary["preflight"][0]["ok"] is False
    assert summary["experiments"] == []
    assert exact(read(cluster)) == before
    metrics.values['firing_alerts{alertname="CheckoutDown"}'] = 0
    time.sleep(2.5)
    summary = runner.run_gameday(day, options(tmp_path / "later")).summary
    assert summary["outcome"] == "pass", summary["reasons"]
    assert summary["preflight"] == [
        {"name": "no-firing-alerts", "ok": True, "detail": "returned nothing"}
    ]


def test_a_run_killed_with_its_fault_in_place_is_finished_from_its_ledger(cluster, tmp_path):
    before = exact(read(cluster))
    day = gameday(tmp_path, [delay_then_wait(tmp_path, "hold-30s", 30)])
    game = runner.GameDayRun(day, options(tmp_path), kube())
    thread = threading.Thread(target=game.run, args=(runner.check(day),))
    thread.start()
    wait_for_fault(cluster)
    game.running_experiment.process.kill()  # the OOM killer: no rollback, no journal
    thread.join(timeout=60)
    (row,) = game.summary["experiments"]
    assert row["outcome"] == "rollback-incomplete"
    assert row["reasons"][0].startswith("chaos run was killed by signal 9 without a journal")
    assert row["reasons"][-1].startswith(
        f"ledger: run {row['run_id']}: removed 1 route(s) from 1 resource(s), 0 already clean / "
        f"removed VirtualService bookinfo/ratings: chaosmesh-{row['run_id']}-"
    )
    assert row["reasons"][-1].endswith(" (by the runner)")
    assert game.summary["outcome"] == "rollback-incomplete"
    assert runner.EXIT_CODES["rollback-incomplete"] == 3
    assert exact(read(cluster)) == before


def test_the_history_keeps_every_concurrent_record_and_the_last_200(cluster):
    state = GameDayState(kube(), NAMESPACE, "bookinfo-weekly")
    barrier = threading.Barrier(8)

    def record(number):
        barrier.wait()
        GameDayState(kube(), NAMESPACE, "bookinfo-weekly").record(
            SlotRecord(None, f"adhoc-{number}", "pass", f"pod-{number}", "t")
        )

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Each writer's patch carried the resourceVersion it read: a lost race re-reads, none is lost.
    assert sorted(r.runner for r in state.read().slots) == [f"pod-{n}" for n in range(8)]
    state.record(*(SlotRecord(None, f"old-{n}", "pass", "p", "t") for n in range(250)))
    slots = state.read().slots
    assert len(slots) == 200
    assert slots[-1].slot_id == "old-249"


def test_a_state_edited_by_hand_into_nonsense_reads_as_paused_and_empty(cluster):
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "chaosmesh-gameday-bookinfo-weekly",
                "namespace": NAMESPACE,
                # Ours (a runner created it), its data then edited by hand.
                "annotations": {"chaosmesh.io/gameday": "bookinfo-weekly"},
            },
            "data": {"pause.json": "{not json", "slots.json": '[{"slot_id": 1}, "x"]'},
        }
    )
    state = history()
    assert state.pause is not None  # an unreadable switch is still a switch: paused
    assert state.slots == ()


def test_the_runner_needs_no_more_than_its_rules_and_the_experiments(
    cluster, tmp_path, monkeypatch
):
    """RUNNER_RULES (what the rendered Role grants the runner) plus what the experiment's fault
    needs on VirtualServices, in the game day's namespace only: the whole game day runs."""
    rules = [
        PolicyRule(verbs, resources=(resource,), api_groups=(group,), namespaces=(NAMESPACE,))
        for group, resource, verbs in runner.RUNNER_RULES
    ]
    rules.append(
        PolicyRule(
            ("get", "list", "patch"),
            resources=("virtualservices",),
            api_groups=("networking.istio.io",),
            namespaces=(NAMESPACE,),
        )
    )
    cluster.set_tokens({"runner-token-0123456789": ("gameday-runner", rules)})
    monkeypatch.setenv("KUBERNETES_API_KEY", "runner-token-0123456789")
    try:
        before = exact(read(cluster))
        game = runner.run_gameday(
            gameday(tmp_path, [write_experiment(tmp_path, "delay", [delay_action()])]),
            options(tmp_path),
        )
        assert game.summary["outcome"] == "pass", game.summary["reasons"]
        assert exact(read(cluster)) == before
        denied = [r.path for r in cluster.request_log if r.status == 403]
        # Only the question "is this a local mesh?", which a 403 answers: no; and the control's
        # watch of the VirtualService the run edits, which then reads it instead (once).
        assert denied and all(
            p.endswith("/configmaps/chaosmesh-local-mesh") or p.endswith("/virtualservices")
            for p in denied
        )
        assert sum(p.endswith("/virtualservices") for p in denied) <= 1
    finally:
        cluster.set_tokens(None)


class Webhook:
    """A webhook receiver on 127.0.0.1: what it was sent, in order; it can be told to hang."""

    def __init__(self):
        self.received = []
        self.hang_s = 0.0
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(json.loads(body))
                time.sleep(hook.hang_s)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/gameday"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def test_notifications_go_out_and_their_deliveries_are_recorded(cluster, tmp_path, webhook):
    hook = Notification(kind="http", url=webhook.url, timeout_s=5.0)
    game = runner.run_gameday(
        gameday(
            tmp_path,
            [write_experiment(tmp_path, "delay", [delay_action()])],
            notifications=(hook,),
        ),
        options(tmp_path, announcer=runner.default_announcer),
    )
    assert game.summary["outcome"] == "pass"
    assert [event["name"] for event in webhook.received] == [
        "gameday-started",
        "experiment-started",
        "experiment-completed",
        "gameday-completed",
    ]
    assert webhook.received[-1]["payload"]["outcome"] == "pass"
    records = game.summary["notifications"]
    assert [(r["event"], r["ok"], r["status"]) for r in records] == [
        (event["name"], True, 204) for event in webhook.received
    ]
    host = webhook.url.split("/")[2]
    assert all(r["target"] == f"http {host}" for r in records)  # never the path


def test_a_webhook_that_hangs_never_holds_an_experiment_back(cluster, tmp_path, webhook):
    webhook.hang_s = 30
    hook = Notification(kind="http", url=webhook.url, timeout_s=1.0)
    started = time.monotonic()
    game = runner.run_gameday(
        gameday(
            tmp_path,
            [write_experiment(tmp_path, "delay", [delay_action()])],
            notifications=(hook,),
        ),
        options(tmp_path, announcer=runner.default_announcer),
    )
    elapsed = time.monotonic() - started
    assert game.summary["outcome"] == "pass"
    # Four events, each waiting at most its 1 s timeout, in the background: never 30 s each.
    assert elapsed < 20
    records = game.summary["notifications"]
    assert records and not any(r["ok"] for r in records)


def test_a_pause_during_the_preflight_checks_starts_no_experiment(cluster, tmp_path):
    """A PromQL API on 127.0.0.1 whose answer comes after someone paused the game day."""

    class PausingPrometheus(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            runner.set_pause(kube(), NAMESPACE, "bookinfo-weekly", "seen on the dashboard")
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PausingPrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        day = gameday(
            tmp_path,
            [delay_then_wait(tmp_path, "delay", 0)],
            preflight=(Preflight(name="no-alerts", query="ALERTS"),),
            prometheus_url=f"http://127.0.0.1:{server.server_address[1]}",
        )
        summary = runner.run_gameday(day, options(tmp_path)).summary
    finally:
        server.shutdown()
        server.server_close()
    assert summary["preflight"] == [{"name": "no-alerts", "ok": True, "detail": "returned nothing"}]
    assert summary["outcome"] == "paused"
    assert [e["outcome"] for e in summary["experiments"]] == ["not-run"]
    assert summary["pause"]["reason"] == "seen on the dashboard"


def test_lost_answers_from_the_api_neither_stop_the_runner_nor_double_its_records(
    cluster, tmp_path
):
    """A create and an update of the Lease and the state whose answers were lost after they
    landed, and a 503: the runner asks again, finds its own writes and goes on."""
    cluster.inject(ApiFault(method="POST", path="/leases$", drop="after"))
    cluster.inject(ApiFault(method="POST", path="/configmaps$", drop="after"))
    cluster.inject(ApiFault(method="PATCH", path="/configmaps/", status=503, times=2))
    cluster.inject(ApiFault(method="PATCH", path="/leases/", drop="after"))  # the release
    before = exact(read(cluster))
    game = runner.run_gameday(
        gameday(tmp_path, [write_experiment(tmp_path, "delay", [delay_action()])]),
        options(tmp_path, runner_id="pod-a"),
    )
    assert game.summary["outcome"] == "pass", game.summary["reasons"]
    assert [(r.runner, r.outcome) for r in history().slots] == [("pod-a", "pass")]
    assert exact(read(cluster)) == before
    failed = [(r.method, r.path.rsplit("/", 2)[-2:], r.status) for r in cluster.request_log]
    failed = [f for f in failed if f[2] in (0, 503)]
    assert ("POST", ["bookinfo", "leases"], 0) in failed
    assert ("POST", ["bookinfo", "configmaps"], 0) in failed
    assert failed.count(("PATCH", ["configmaps", "chaosmesh-gameday-bookinfo-weekly"], 503)) == 2


def test_a_runner_that_loses_its_lease_stops_and_rolls_back(cluster, tmp_path):
    before = exact(read(cluster))
    day = gameday(tmp_path, [delay_then_wait(tmp_path, "hold-30s", 30)])
    thread, done = start_in_background(day, options(tmp_path, lease_duration_s=3))
    wait_for_fault(cluster)
    ref = ResourceRef(LEASE, NAMESPACE, lease_name("bookinfo-weekly"))
    deadline = time.monotonic() + 15
    while (spec := kube().get(ref)["spec"])["renewTime"] == spec["acquireTime"]:
        assert time.monotonic() < deadline, "the Lease was never renewed"
        time.sleep(0.1)  # renewed every third of its 3 s
    # Another runner took it (as after this one had not renewed for its whole duration).
    kube().patch(
        ResourceRef(LEASE, NAMESPACE, lease_name("bookinfo-weekly")),
        {"spec": {"holderIdentity": "pod-elsewhere"}},
    )
    thread.join(timeout=60)
    summary = done["game"].summary
    assert summary["outcome"] == "aborted"
    assert summary["reasons"][0] == (
        "aborted: the game day's Lease was lost (another runner holds it, or it went unrenewed)"
    )
    assert summary["abort"]["condition"] == "lease"
    assert exact(read(cluster)) == before
    lease = kube().get(ResourceRef(LEASE, NAMESPACE, lease_name("bookinfo-weekly")))
    assert lease["spec"]["holderIdentity"] == "pod-elsewhere"  # not released: not ours


def test_a_users_configmap_named_like_the_state_is_neither_read_nor_written(cluster, tmp_path):
    """Ownership is what we recorded (our annotation on the state we created), not the name."""
    from chaosmesh_py.gameday.state import ForeignState, state_name

    before = exact(read(cluster))
    ref = ResourceRef(CONFIG_MAP, NAMESPACE, state_name("bookinfo-weekly"))
    theirs = kube().create(
        ref,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ref.name, "namespace": NAMESPACE},
            "data": {"slots.json": "their own notes", "pause.json": "{}"},
        },
    )
    try:
        with pytest.raises(ForeignState, match="is not game day 'bookinfo-weekly'"):
            runner.run_gameday(
                gameday(tmp_path, [delay_then_wait(tmp_path, "delay", 0)]), options(tmp_path)
            )
        with pytest.raises(ForeignState):
            history()
        after = kube().get(ref)
        assert after["data"] == theirs["data"]
        assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
        assert exact(read(cluster)) == before  # no experiment ran
        lease = cluster.get(
            "coordination.k8s.io/v1", "Lease", NAMESPACE, lease_name("bookinfo-weekly")
        )
        assert lease is None or not lease["spec"].get("holderIdentity")
    finally:
        cluster.delete("v1", "ConfigMap", NAMESPACE, ref.name)


def test_a_users_expired_lease_named_like_ours_is_not_taken_over(cluster, tmp_path):
    from chaosmesh_py.gameday.state import ForeignState

    ref = ResourceRef(LEASE, NAMESPACE, lease_name("bookinfo-weekly"))
    long_ago = micro_time(datetime.now(UTC) - timedelta(days=1))
    theirs = kube().create(
        ref,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": ref.name, "namespace": NAMESPACE},
            "spec": {
                "holderIdentity": "their-controller",
                "leaseDurationSeconds": 15,
                "renewTime": long_ago,
            },
        },
    )
    try:
        with pytest.raises(ForeignState, match=r"Lease .* is not game day 'bookinfo-weekly'"):
            runner.run_gameday(
                gameday(tmp_path, [delay_then_wait(tmp_path, "delay", 0)]), options(tmp_path)
            )
        after = kube().get(ref)
        assert after["spec"] == theirs["spec"]
        assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    finally:
        cluster.delete("coordination.k8s.io/v1", "Lease", NAMESPACE, ref.name)
