"""What people read: the Slack line for each event, and the webhook's Chaos Toolkit shape."""

from pathlib import Path

from chaosmesh_py.gameday.messages import slack_line, slack_message, webhook_event
from chaosmesh_py.gameday.suite import GameDay, Step

GAMEDAY = GameDay(
    name="bookinfo-weekly",
    namespace="bookinfo",
    experiments=(Step(Path("a.json")), Step(Path("b.json")), Step(Path("c.json"))),
    source=Path("gameday.yaml"),
)
SLOT = "2026-12-08T10:30:00+01:00"


def test_each_event_reads_as_one_line():
    passed = [{"outcome": "pass"}] * 3
    assert slack_line(GAMEDAY, "gameday-started", {"slot": SLOT}) == (
        f"Game day bookinfo-weekly started (slot {SLOT}, namespace bookinfo): 3 experiments"
    )
    assert slack_line(GAMEDAY, "gameday-completed", {"slot": SLOT, "experiments": passed}) == (
        f"Game day bookinfo-weekly passed (slot {SLOT}, namespace bookinfo): 3/3 experiments passed"
    )
    rollback = [{"outcome": "pass"}, {"outcome": "rollback-incomplete"}, {"outcome": "fail"}]
    summary = {"slot": None, "experiments": rollback, "outcome": "rollback-incomplete"}
    assert slack_line(GAMEDAY, "gameday-failed", summary) == (
        "Game day bookinfo-weekly failed (run by hand, namespace bookinfo): 1/3 experiments "
        "passed, 1 fail, 1 rollback-incomplete (outcome: rollback-incomplete)"
    )
    skipped = {"slot": SLOT, "reasons": ["blackout: release freeze", "second reason"]}
    assert slack_line(GAMEDAY, "gameday-skipped", skipped).endswith(
        "namespace bookinfo): blackout: release freeze"
    )
    experiment = {"experiment": "ratings delay", "index": 2, "count": 3}
    assert slack_line(GAMEDAY, "experiment-started", experiment) == (
        "Game day bookinfo-weekly: experiment 2/3 started: ratings delay"
    )
    assert slack_line(GAMEDAY, "experiment-completed", {**experiment, "outcome": "pass"}) == (
        "Game day bookinfo-weekly: experiment 2/3 ratings delay: pass"
    )


def test_slack_shows_at_most_five_reasons_and_says_how_many_more():
    reasons = [f"reason {n}" for n in range(8)]
    message = slack_message(GAMEDAY, "gameday-aborted", {"slot": None, "reasons": reasons})
    context = message["blocks"][1]["elements"][0]["text"]
    assert context.splitlines() == [
        "• reason 0",
        "• reason 1",
        "• reason 2",
        "• reason 3",
        "• reason 4",
        "• ... and 3 more",
    ]


def test_the_webhook_event_is_chaos_toolkits_with_an_error_only_when_something_went_wrong():
    started = webhook_event(GAMEDAY, "gameday-started", {"slot": SLOT}, 1.5)
    assert started == {
        "name": "gameday-started",
        "phase": "gameday",
        "ts": 1.5,
        "payload": {"gameday": "bookinfo-weekly", "namespace": "bookinfo", "slot": SLOT},
    }
    failed = webhook_event(GAMEDAY, "gameday-failed", {"reasons": ["a", "b"]}, 1.5)
    assert failed["error"] == "a; b"
