"""Telling people what a game day did: webhooks, Slack, and a Grafana region annotation.

An ``Announcer`` is made from a game day's ``notifications`` and ``grafana`` sections. Its calls
return at once: each target (one webhook, one Slack URL, Grafana) has its own worker thread and
queue, so a target that hangs delays only its own later deliveries, never an experiment, and
never another target. ``close()`` waits for what is still queued, each call at most its target's
``timeout_s``, and returns one record per delivery, which the runner writes to ``gameday.json``::

    {"target": "slack hooks.slack.com", "event": "gameday-completed", "ok": true,
     "status": 200, "error": null, "seconds": 0.041}

Why not ``requests``: its timeout bounds each socket operation, not the call, so a server that
sends one byte a second keeps it waiting for as long as it likes. Here each call has a deadline:
a watchdog shuts the socket down when it passes, whatever the call was waiting for (connect,
TLS, the status line, a trickled body).

A failed delivery is recorded and logged, never raised into the game day. Nothing secret leaves:
``${NAME}`` in a URL or header value is read from the environment when sending (so a rotated
token is picked up, and the file never holds it), and those values, the Grafana token and every
secret the game day's ``Redactor`` knows are hidden in payloads, records and log lines. A record
names a target by its kind and host only: a Slack webhook's path is its credential.

What each target receives:

- ``http``: Chaos Toolkit's notification event (``chaoslib.notification``: ``name``, ``payload``,
  ``phase``, ``ts``, and ``error`` when the event reports one), with ``phase: "gameday"`` and the
  game-day summary as ``payload``;
- ``slack``: ``{"text": ..., "blocks": [...]}``, a one-line summary (game day, slot, outcome,
  experiments passed) and the reasons beneath, escaped so that nothing in it becomes a link or a
  mention;
- Grafana: ``POST /api/annotations`` at the region's start (``time``, ``tags``, ``text``,
  ``dashboardUID``, ``panelId``), then ``PATCH /api/annotations/<id>`` with ``timeEnd`` and the
  final text at its end. When the start could not be annotated, the end posts the whole region.

The summary passed to ``event`` is the runner's, read for these keys when present (others are
forwarded to webhooks as they are): ``slot`` (ISO-8601 or null), ``outcome``, ``reasons``
(list of text), ``experiments`` (gate results: ``title``, ``input``, ``outcome``); for the
experiment events ``experiment`` (its title or file), ``index`` and ``count`` (1-based position
in the game day) and, on completion, ``outcome``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from chaosmesh_py.engine.redaction import Redactor
from chaosmesh_py.gameday.deadline_http import Answer, DeliveryFailed, exchange, proxy_for
from chaosmesh_py.gameday.messages import slack_message, webhook_event
from chaosmesh_py.gameday.suite import (
    ENV_REFERENCE,
    GameDay,
    Grafana,
    MissingVariable,
    Notification,
    NotificationEvent,
    resolve,
)

log = logging.getLogger(__name__)

# A record's error, e.g. the first words of an answer's body (secrets hidden before it is cut).
_MAX_ERROR_TEXT = 240


@dataclass(frozen=True)
class Delivery:
    """What became of one notification or annotation call."""

    target: str  # "<kind> <host>"
    event: str
    ok: bool
    status: int | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "event": self.event,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def target_name(kind: str, url: str) -> str:
    """``<kind> <host>`` from the URL as the file writes it: never its path or query (a Slack
    webhook's path is its credential), never credentials in it, never a resolved variable."""
    if url.startswith("${") and "://" not in url:
        return f"{kind} {url.split('/', 1)[0]}"
    host = urlsplit(url).netloc.rpartition("@")[2]
    return f"{kind} {host or '?'}"


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    headers: Mapping[str, str]
    payload: Mapping[str, Any]
    verify_tls: bool = True


@dataclass(frozen=True)
class _Job:
    event: str
    run: Callable[[float], Delivery]  # given the seconds it may take


class _Worker:
    """One target's queue and thread: its deliveries go out in the order they were asked for
    (Grafana's end needs its start's id; a webhook sees started before completed)."""

    def __init__(self, name: str, timeout_s: float, record: Callable[[Delivery], None]) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._record = record
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: _Job | None = None
        self._pending: list[_Job] = []
        # Set by close(): no call may run past it.
        self._cutoff: float | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._loop, name=f"announce {name}", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._cutoff is not None:
                log.warning("%s to %s after the game day closed: not sent", job.event, self.name)
                return
            self._pending.append(job)
            self._queue.put(job)

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            with self._lock:
                self._pending.remove(job)
                self._current = job
                cutoff = self._cutoff
            allowed = self.timeout_s
            if cutoff is not None:
                allowed = min(allowed, cutoff - time.monotonic())
            if allowed <= 0:
                delivery = Delivery(
                    self.name,
                    job.event,
                    False,
                    error="not sent: the game day ended while earlier deliveries to this "
                    "target were still waiting for an answer",
                )
            else:
                try:
                    delivery = job.run(allowed)
                except Exception as error:  # a bug here must not reach the game day
                    log.exception("announcing %s to %s failed", job.event, self.name)
                    delivery = Delivery(self.name, job.event, False, error=f"bug: {error!r}")
            with self._lock:
                self._current = None
                if self._abandoned:
                    return  # finish() already counted it as unanswered
            self._record(delivery)

    def finish(self, started: float) -> list[Delivery]:
        """Stop after what is queued, waiting until ``started`` + this target's timeout at most;
        the deliveries that did not end by then, as failures."""
        cutoff = started + self.timeout_s
        with self._lock:
            self._cutoff = cutoff
        self._queue.put(None)
        # A little past the cutoff: the watchdog fires at it, the worker then records.
        self._thread.join(max(0.0, cutoff - time.monotonic()) + 0.5)
        with self._lock:
            late = ([self._current] if self._current else []) + list(self._pending)
            self._pending.clear()
            self._current = None
            self._abandoned = True
        return [
            Delivery(self.name, job.event, False, error="no answer before the game day closed")
            for job in late
        ]


class Announcer:
    """Sends a game day's notifications and Grafana annotations in the background."""

    def __init__(
        self, gameday: GameDay, hide: Redactor, environ: Mapping[str, str] = os.environ
    ) -> None:
        self._gameday = gameday
        self._hide = hide
        self._environ = environ
        self._lock = threading.Lock()
        self._records: list[Delivery] = []
        self._closed: list[dict[str, Any]] | None = None
        self._reported: set[tuple[str, str]] = set()
        self._lock_reported = threading.Lock()
        self._channels = [
            (
                notification,
                _Worker(
                    target_name(notification.kind, notification.url),
                    notification.timeout_s,
                    self._record,
                ),
            )
            for notification in gameday.notifications
        ]
        self._grafana: tuple[Grafana, _Worker] | None = None
        if gameday.grafana is not None:
            grafana = gameday.grafana
            worker = _Worker(target_name("grafana", grafana.url), grafana.timeout_s, self._record)
            self._grafana = (grafana, worker)
        # Grafana's region: the id its start got, and when it started (the worker thread reads
        # and writes the id; the start time is set before the start is queued).
        self._region_id: int | None = None
        self._region_start_ms: int | None = None

    # -- the interface the runner calls ------------------------------------------------------

    def event(self, name: NotificationEvent, summary: Mapping[str, Any]) -> None:
        """Queue ``name`` for every notification that wants it; returns at once."""
        if self._closed is not None:
            log.warning("game-day event %s after the announcer closed: not sent", name)
            return
        # A snapshot: the runner may go on changing its summary while this waits in a queue.
        try:
            snapshot = json.loads(json.dumps(dict(summary), default=str))
        except (TypeError, ValueError) as error:  # a circular summary: a bug, not a reason to stop
            log.exception("the summary of %s cannot be sent as JSON", name)
            snapshot = {"error": f"the summary could not be encoded: {error}"}
        sent_at = time.time()
        for notification, worker in self._channels:
            if notification.events and name not in notification.events:
                continue
            worker.submit(
                _Job(name, self._notify_job(notification, worker.name, name, snapshot, sent_at))
            )

    def region_started(self, at: datetime, text: str) -> None:
        """Queue the Grafana annotation that opens the region at ``at``."""
        if self._grafana is None or self._closed is not None:
            return
        grafana, worker = self._grafana
        self._region_start_ms = _epoch_ms(at)
        body = self._annotation(grafana, text, time_ms=self._region_start_ms)
        worker.submit(_Job("region-started", self._grafana_job(grafana, worker.name, body, None)))

    def region_ended(self, at: datetime, text: str) -> None:
        """Queue the PATCH that closes the region at ``at`` (or, when its start could not be
        annotated, the POST of the whole region)."""
        if self._grafana is None or self._closed is not None:
            return
        grafana, worker = self._grafana
        end_ms = _epoch_ms(at)
        start_ms = self._region_start_ms if self._region_start_ms is not None else end_ms
        whole = self._annotation(grafana, text, time_ms=start_ms, time_end_ms=end_ms)
        patch = {"timeEnd": end_ms, "text": self._hide.text(text)}
        worker.submit(_Job("region-ended", self._grafana_job(grafana, worker.name, whole, patch)))

    def close(self) -> list[dict[str, Any]]:
        """Wait for what is queued (each target at most its timeout from now) and return every
        delivery's record, in the order they ended. Calling it again returns the same records."""
        if self._closed is not None:
            return self._closed
        started = time.monotonic()
        workers = [worker for _, worker in self._channels]
        if self._grafana is not None:
            workers.append(self._grafana[1])
        # Finish the targets side by side: closing takes the longest timeout, not their sum.
        late: list[Delivery] = []
        finishers = [
            threading.Thread(target=lambda w=worker: late.extend(w.finish(started)), daemon=True)
            for worker in workers
        ]
        for finisher in finishers:
            finisher.start()
        for finisher in finishers:
            finisher.join()
        with self._lock:
            for delivery in late:
                self._log_failure(delivery)
            self._records.extend(late)
            self._closed = [delivery.to_json() for delivery in self._records]
        return self._closed

    # -- deliveries -------------------------------------------------------------------------

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            if self._closed is not None:
                return  # close() already counted it as unanswered
            self._records.append(delivery)
        if delivery.ok:
            log.debug("%s to %s: HTTP %s", delivery.event, delivery.target, delivery.status)
        else:
            self._log_failure(delivery)

    def _log_failure(self, delivery: Delivery) -> None:
        """A warning the first time a target fails a given way; the same failure again (a
        missing variable, a dead server, for every event of the day) only at debug level."""
        with self._lock_reported:
            first = (delivery.target, str(delivery.error)) not in self._reported
            self._reported.add((delivery.target, str(delivery.error)))
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%s to %s failed: %s",
            delivery.event,
            delivery.target,
            delivery.error,
        )

    def _notify_job(
        self,
        notification: Notification,
        target: str,
        event: NotificationEvent,
        summary: dict[str, Any],
        sent_at: float,
    ) -> Callable[[float], Delivery]:
        def run(allowed_s: float) -> Delivery:
            used: set[str] = set()
            try:
                url = resolve(notification.url, self._environ, used)
                headers = {
                    name: resolve(value, self._environ, used)
                    for name, value in notification.headers
                }
            except MissingVariable as missing:
                return Delivery(target, event, False, error=_missing(missing.name))
            parts = urlsplit(url)
            if parts.password:
                used.add(parts.password)
            if ENV_REFERENCE.search(notification.url):
                # A URL kept in the environment is a credential (a Slack webhook's is its
                # path): a server echoing the path it was asked for must not show it either.
                used.update(part for part in (parts.path, parts.query) if len(part) > 1)
            hide = self._hiding(used)
            visible = hide.deep(summary)
            if notification.kind == "slack":
                payload = slack_message(self._gameday, event, visible)
            else:
                payload = webhook_event(self._gameday, event, visible, sent_at)
            request = _Request("POST", url, headers, payload, notification.verify_tls)
            return self._call(target, event, hide, request, allowed_s)[0]

        return run

    def _grafana_job(
        self,
        grafana: Grafana,
        target: str,
        post: dict[str, Any],
        patch: dict[str, Any] | None,
    ) -> Callable[[float], Delivery]:
        """The region's start (``patch`` None) or end: PATCH the start's annotation when it was
        made, else POST the whole region."""
        event = "region-started" if patch is None else "region-ended"

        def run(allowed_s: float) -> Delivery:
            token = self._environ.get(grafana.token_env, "").strip()
            if not token:
                return Delivery(target, event, False, error=_missing(grafana.token_env))
            used = {token}
            try:
                base = resolve(grafana.url, self._environ, used).rstrip("/")
            except MissingVariable as missing:
                return Delivery(target, event, False, error=_missing(missing.name))
            hide = self._hiding(used)
            headers = {"Authorization": f"Bearer {token}"}
            if patch is not None and self._region_id is not None:
                url = f"{base}/api/annotations/{quote(str(self._region_id))}"
                request = _Request("PATCH", url, headers, patch)
                return self._call(target, event, hide, request, allowed_s)[0]
            request = _Request("POST", f"{base}/api/annotations", headers, post)
            delivery, answer = self._call(target, event, hide, request, allowed_s)
            if patch is None and answer is not None:
                self._region_id = _annotation_id(answer)
                if self._region_id is None:
                    return Delivery(
                        target,
                        event,
                        False,
                        answer.status,
                        "Grafana's answer has no annotation id: the region cannot be closed",
                        delivery.seconds,
                    )
            return delivery

        return run

    def _call(
        self, target: str, event: str, hide: _Hider, request: _Request, timeout_s: float
    ) -> tuple[Delivery, Answer | None]:
        started = time.monotonic()
        try:
            answer = exchange(
                request.method,
                request.url,
                headers=request.headers,
                body=json.dumps(request.payload, default=str).encode(),
                timeout_s=timeout_s,
                verify_tls=request.verify_tls,
                # As requests and OpenSSL read them: a private CA, an egress proxy in a cluster.
                ca_file=self._environ.get("SSL_CERT_FILE")
                or self._environ.get("REQUESTS_CA_BUNDLE"),
                proxy=proxy_for(request.url, self._environ),
            )
        except DeliveryFailed as failed:
            seconds = time.monotonic() - started
            error = _shorten(hide(str(failed)))
            return Delivery(target, event, False, failed.status, error, seconds), None
        seconds = time.monotonic() - started
        return Delivery(target, event, True, answer.status, None, seconds), answer

    def _hiding(self, resolved: set[str]) -> _Hider:
        return _Hider(self._hide, Redactor(resolved))

    def _annotation(
        self, grafana: Grafana, text: str, time_ms: int, time_end_ms: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "time": time_ms,
            "tags": [*grafana.tags, f"gameday:{self._gameday.name}"],
            "text": self._hide.text(text),
        }
        if time_end_ms is not None:
            body["timeEnd"] = time_end_ms
        if grafana.dashboard_uid is not None:
            body["dashboardUID"] = grafana.dashboard_uid
        if grafana.panel_id is not None:
            body["panelId"] = grafana.panel_id
        return body


class _Hider:
    """The game day's secrets and the values this delivery resolved, hidden together."""

    def __init__(self, *redactors: Redactor) -> None:
        self._redactors = redactors

    def __call__(self, text: str) -> str:
        for redactor in self._redactors:
            text = redactor.text(text)
        return text

    def deep(self, node: Any) -> Any:
        for redactor in self._redactors:
            node = redactor.deep(node)
        return node


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "..."


def _missing(name: str) -> str:
    return f"not sent: ${{{name}}} is empty or not set in the environment"


def _epoch_ms(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("a region's time must be timezone-aware")
    return int(at.timestamp() * 1000)


def _annotation_id(answer: Answer) -> int | None:
    try:
        value = json.loads(answer.body).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
