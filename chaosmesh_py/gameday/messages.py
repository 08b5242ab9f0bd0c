"""What a game day's webhooks and Slack receive: pure functions of the game day, the event and
the runner's summary (already stripped of secrets by the caller)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_py.gameday.suite import GameDay, NotificationEvent

# Slack refuses a section's text above 3000 characters.
_MAX_SLACK_TEXT = 2900


def webhook_event(
    gameday: GameDay, event: NotificationEvent, summary: Mapping[str, Any], sent_at: float
) -> dict[str, Any]:
    """Chaos Toolkit's notification event, carrying the game day's summary."""
    payload = {"gameday": gameday.name, "namespace": gameday.namespace, **summary}
    body: dict[str, Any] = {"name": event, "payload": payload, "phase": "gameday", "ts": sent_at}
    reasons = _reasons(summary)
    if event in ("gameday-failed", "gameday-aborted", "gameday-skipped") and reasons:
        body["error"] = "; ".join(reasons)
    return body


_ICONS: Mapping[str, str] = {
    "gameday-started": ":arrow_forward:",
    "gameday-completed": ":white_check_mark:",
    "gameday-failed": ":x:",
    "gameday-aborted": ":octagonal_sign:",
    "gameday-skipped": ":fast_forward:",
    "experiment-started": ":small_blue_diamond:",
    "experiment-completed": ":small_blue_diamond:",
}

_VERBS: Mapping[str, str] = {
    "gameday-started": "started",
    "gameday-completed": "passed",
    "gameday-failed": "failed",
    "gameday-aborted": "aborted",
    "gameday-skipped": "skipped",
}


def slack_message(
    gameday: GameDay, event: NotificationEvent, summary: Mapping[str, Any]
) -> dict[str, Any]:
    """A Slack-compatible message: one readable line, and the reasons beneath it."""
    line = f"{_ICONS.get(event, '')} {slack_line(gameday, event, summary)}".strip()
    text = _slack_escape(line)[:_MAX_SLACK_TEXT]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    reasons = _reasons(summary)
    if reasons and event != "experiment-started":
        shown = "\n".join(f"• {reason}" for reason in reasons[:5])
        if len(reasons) > 5:
            shown += f"\n• ... and {len(reasons) - 5} more"
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _slack_escape(shown)[:_MAX_SLACK_TEXT]}],
            }
        )
    return {"text": text, "blocks": blocks}


def slack_line(gameday: GameDay, event: NotificationEvent, summary: Mapping[str, Any]) -> str:
    """``Game day bookinfo-weekly passed (slot 2026-12-08T10:30:00+01:00): 3/3 experiments
    passed``, and the like for each event."""
    name = f"Game day {gameday.name}"
    slot = summary.get("slot")
    where = f"slot {slot}" if slot else "run by hand"
    if event.startswith("experiment-"):
        position = ""
        if isinstance(summary.get("index"), int) and isinstance(summary.get("count"), int):
            position = f" {summary['index']}/{summary['count']}"
        title = summary.get("experiment") or "?"
        if event == "experiment-started":
            return f"{name}: experiment{position} started: {title}"
        return f"{name}: experiment{position} {title}: {summary.get('outcome', 'ended')}"
    line = f"{name} {_VERBS.get(event, event)} ({where}, namespace {gameday.namespace})"
    experiments = summary.get("experiments")
    if event == "gameday-started":
        return f"{line}: {_count(len(gameday.experiments), 'experiment')}"
    if isinstance(experiments, Sequence) and experiments:
        counts = Counter(str(e.get("outcome")) for e in experiments if isinstance(e, Mapping))
        planned = max(len(gameday.experiments), counts.total())
        # Experiments an abort or a pause stopped before they ran may have no result at all.
        counts["not-run"] += planned - counts.total()
        line += f": {counts.pop('pass', 0)}/{_count(planned, 'experiment')} passed"
        for other, count in sorted(counts.items()):
            if count:
                line += f", {count} {other}"
    outcome = summary.get("outcome")
    if outcome and event in ("gameday-failed", "gameday-aborted") and outcome != "fail":
        line += f" (outcome: {outcome})"
    reasons = _reasons(summary)
    if event in ("gameday-skipped", "gameday-aborted") and reasons:
        line += f": {reasons[0]}"
    return line


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _reasons(summary: Mapping[str, Any]) -> list[str]:
    reasons = summary.get("reasons")
    if isinstance(reasons, Sequence) and not isinstance(reasons, str):
        return [str(reason) for reason in reasons]
    return []


def _slack_escape(text: str) -> str:
    """Slack's three control characters: with them escaped, ``<!channel>`` or ``<url|x>`` in a
    title or a reason is shown as written, never turned into a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
