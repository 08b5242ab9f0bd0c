"""A game day's notifications and Grafana annotations, against real HTTP servers on 127.0.0.1:
receivers, a Grafana double that checks the token and the body, a server that hangs and one
that trickles. What a runner needs: calls that return at once, a close() bounded by the
timeouts, records that say what failed and why, and no secret anywhere."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from chaosmesh_py.engine.redaction import Redactor
from chaosmesh_py.gameday.announce import Announcer
from chaosmesh_py.gameday.suite import GameDay, Grafana, Notification, Step, load
from tests.conftest import ROOT
from tests.http_doubles import GrafanaDouble, Proxy, Receiver, SilentServer, closed_port_url

EXPERIMENT_SECRET = "experiment-api-key-42"  # a secret of one of the game day's experiments
WEBHOOK_TOKEN = "webhook-token-abcdef"
GRAFANA_TOKEN = "glsa_grafana-service-token"
# close() may run this long past a timeout on a busy machine: thread start, watchdog, join.
SLACK_S = 2.0

FAILED_SUMMARY = {
    "slot": "2026-12-08T10:30:00+01:00",
    "slot_id": "20261208T093000Z",
    "outcome": "fail",
    "reasons": ["ratings delay: steady state after the fault deviated (p95 2.1 s > 1 s)"],
    "experiments": [
        {"title": "ratings delay", "outcome": "fail"},
        {"title": "reviews abort", "outcome": "pass"},
    ],
}


def game_day(
    notifications: tuple[Notification, ...] = (), grafana: Grafana | None = None
) -> GameDay:
    return GameDay(
        name="bookinfo-weekly",
        namespace="bookinfo",
        experiments=(Step(Path("ratings-delay.json")), Step(Path("reviews-abort.json"))),
        source=Path("bookinfo.gameday.yaml"),
        notifications=notifications,
        grafana=grafana,
    )


def announcer(gameday: GameDay, **environ: str) -> Announcer:
    return Announcer(gameday, Redactor([EXPERIMENT_SECRET]), environ)


def test_a_webhook_gets_chaos_toolkits_event_shape_with_headers_read_when_sent():
    with Receiver() as receiver:
        hook = Notification(
            "http",
            receiver.url + "/hooks/chaos",
            headers=(("Authorization", "Bearer ${HOOK_TOKEN}"), ("X-Team", "sre")),
        )
        environ: dict[str, str] = {}
        announce = Announcer(game_day((hook,)), Redactor([EXPERIMENT_SECRET]), environ)
        # Read when sending, not when the announcer was made: a rotated token is picked up.
        environ["HOOK_TOKEN"] = WEBHOOK_TOKEN
        announce.event("gameday-failed", FAILED_SUMMARY)
        records = announce.close()

    [request] = receiver.received
    assert request.method == "POST" and request.path == "/hooks/chaos"
    assert request.headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert request.headers["X-Team"] == "sre"
    assert request.headers["Content-Type"] == "application/json"
    body = request.body
    assert body["name"] == "gameday-failed" and body["phase"] == "gameday"
    assert abs(body["ts"] - time.time()) < 60
    assert body["payload"]["gameday"] == "bookinfo-weekly"
    assert body["payload"]["namespace"] == "bookinfo"
    assert body["payload"]["experiments"] == FAILED_SUMMARY["experiments"]
    assert body["error"] == FAILED_SUMMARY["reasons"][0]
    [record] = records
    assert record["target"] == f"http {receiver.url.removeprefix('http://')}"
    assert record["event"] == "gameday-failed"
    assert record["ok"] is True and record["status"] == 200 and record["error"] is None
    assert 0 <= record["seconds"] < 5


def test_slack_gets_one_readable_line_with_nothing_that_becomes_a_link_or_a_mention():
    summary = {
        **FAILED_SUMMARY,
        "experiments": [
            {"title": "<!channel> ratings & reviews", "outcome": "fail"},
            {"title": "reviews abort", "outcome": "pass"},
        ],
        "reasons": ["see <https://evil.example|this>", *FAILED_SUMMARY["reasons"]],
    }
    with Receiver() as receiver:
        slack = Notification("slack", receiver.url + "/services/T000/B000/XXXX")
        announce = announcer(game_day((slack,)))
        announce.event("gameday-failed", summary)
        assert announce.close()[0]["ok"]

    [request] = receiver.received
    text = request.body["text"]
    assert "\n" not in text
    assert text.startswith(":x: Game day bookinfo-weekly failed")
    assert "slot 2026-12-08T10:30:00+01:00" in text
    assert "1/2 experiments passed, 1 fail" in text
    section, context = request.body["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    reasons = context["elements"][0]["text"]
    assert "&lt;https://evil.example|this&gt;" in reasons
    assert "p95 2.1 s &gt; 1 s" in reasons
    assert "<" not in str(request.body)


def test_slack_counts_experiments_an_abort_kept_from_running():
    summary = {
        "slot": None,
        "outcome": "aborted",
        "reasons": ["abort condition checkout-errors: 0.07 > 0.05 for 30 s"],
        "experiments": [{"title": "ratings delay", "outcome": "fail"}],
    }
    with Receiver() as receiver:
        announce = announcer(game_day((Notification("slack", receiver.url),)))
        announce.event("gameday-aborted", summary)
        announce.close()
    text = receiver.received[0].body["text"]
    assert "run by hand" in text
    assert "0/2 experiments passed, 1 fail, 1 not-run (outcome: aborted)" in text
    assert text.endswith("abort condition checkout-errors: 0.07 &gt; 0.05 for 30 s")


def test_a_notification_gets_only_the_events_it_names():
    with Receiver() as receiver:
        hook = Notification("http", receiver.url, events=frozenset({"gameday-failed"}))
        announce = announcer(game_day((hook,)))
        announce.event("gameday-started", {"slot": None})
        announce.event("experiment-started", {"experiment": "ratings delay"})
        announce.event("gameday-failed", FAILED_SUMMARY)
        records = announce.close()
    assert [r.body["name"] for r in receiver.received] == ["gameday-failed"]
    assert [r["event"] for r in records] == ["gameday-failed"]


def test_grafana_gets_a_region_from_the_first_injection_to_the_last_rollback():
    started = datetime(2026, 12, 8, 9, 30, 5, tzinfo=UTC)
    ended = started + timedelta(minutes=12, seconds=30)
    with GrafanaDouble(GRAFANA_TOKEN) as grafana:
        settings = Grafana(
            grafana.url + "/", "GRAFANA_TOKEN", dashboard_uid="istio-mesh", panel_id=4
        )
        announce = announcer(game_day(grafana=settings), GRAFANA_TOKEN=GRAFANA_TOKEN)
        announce.region_started(started, "game day bookinfo-weekly: running")
        announce.region_ended(ended, "game day bookinfo-weekly: fail (1/2 passed)")
        records = announce.close()

    assert grafana.refusals == []
    assert [(r.method, r.path) for r in grafana.received] == [
        ("POST", "/api/annotations"),
        ("PATCH", "/api/annotations/1"),
    ]
    assert grafana.annotations[1] == {
        "time": int(started.timestamp() * 1000),
        "timeEnd": int(ended.timestamp() * 1000),
        "tags": ["chaos", "gameday", "gameday:bookinfo-weekly"],
        "text": "game day bookinfo-weekly: fail (1/2 passed)",
        "dashboardUID": "istio-mesh",
        "panelId": 4,
    }
    assert [(r["event"], r["ok"], r["status"]) for r in records] == [
        ("region-started", True, 200),
        ("region-ended", True, 200),
    ]


def test_a_region_whose_start_grafana_refused_is_posted_whole_at_its_end():
    started = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
    ended = started + timedelta(minutes=5)
    with GrafanaDouble(GRAFANA_TOKEN) as grafana:
        environ = {"GRAFANA_TOKEN": "expired-token-000"}
        announce = Announcer(
            game_day(grafana=Grafana(grafana.url, "GRAFANA_TOKEN")), Redactor([]), environ
        )
        announce.region_started(started, "running")
        grafana.wait_for(1)
        environ["GRAFANA_TOKEN"] = GRAFANA_TOKEN  # rotated meanwhile
        announce.region_ended(ended, "done")
        records = announce.close()

    assert records[0]["ok"] is False and records[0]["status"] == 401
    assert records[0]["error"] == 'HTTP 401 Unauthorized: {"message": "invalid API key"}'
    assert records[1]["ok"] is True
    assert grafana.annotations == {
        1: {
            "time": int(started.timestamp() * 1000),
            "timeEnd": int(ended.timestamp() * 1000),
            "tags": ["chaos", "gameday", "gameday:bookinfo-weekly"],
            "text": "done",
        }
    }


def test_a_missing_grafana_token_is_recorded_for_each_call_and_logged_once(caplog):
    with GrafanaDouble(GRAFANA_TOKEN) as grafana:
        announce = announcer(game_day(grafana=Grafana(grafana.url, "GRAFANA_TOKEN")))
        with caplog.at_level(logging.WARNING, logger="chaosmesh_py.gameday.announce"):
            announce.region_started(datetime.now(UTC), "running")
            announce.region_ended(datetime.now(UTC), "done")
            records = announce.close()
    assert grafana.received == []
    assert [(r["event"], r["ok"], r["error"]) for r in records] == [
        (
            "region-started",
            False,
            "not sent: ${GRAFANA_TOKEN} is empty or not set in the environment",
        ),
        (
            "region-ended",
            False,
            "not sent: ${GRAFANA_TOKEN} is empty or not set in the environment",
        ),
    ]
    warnings = [r.getMessage() for r in caplog.records if "GRAFANA_TOKEN" in r.getMessage()]
    assert len(warnings) == 1


def test_a_hanging_server_delays_no_call_and_close_waits_only_its_timeout():
    timeout_s = 1.0
    with SilentServer() as hanging, Receiver() as slack_server:
        hook = Notification("http", hanging.url + "/hook", timeout_s=timeout_s)
        slack = Notification("slack", slack_server.url, timeout_s=timeout_s)
        announce = announcer(game_day((hook, slack)))
        started = time.monotonic()
        announce.event("gameday-started", {"slot": None})
        announce.event("experiment-started", {"experiment": "ratings delay"})
        returned_s = time.monotonic() - started
        # The other target is not held up by the one that hangs.
        assert len(slack_server.wait_for(2, timeout_s=timeout_s)) == 2
        announce.event("gameday-completed", {"outcome": "pass"})
        closing = time.monotonic()
        records = announce.close()
        close_s = time.monotonic() - closing

    assert returned_s < 0.05
    assert close_s <= timeout_s + SLACK_S
    hook_records = [r for r in records if r["target"].startswith("http ")]
    assert hook_records[0] == {
        "target": f"http {hanging.url.removeprefix('http://')}",
        "event": "gameday-started",
        "ok": False,
        "status": None,
        "error": f"no complete answer within {timeout_s:g} s",
        "seconds": pytest.approx(timeout_s, abs=SLACK_S),
    }
    assert {r["event"] for r in hook_records} == {
        "gameday-started",
        "experiment-started",
        "gameday-completed",
    }
    assert all(not r["ok"] and r["error"] for r in hook_records)
    assert [r["ok"] for r in records if r["target"].startswith("slack ")] == [True] * 3


def test_a_trickling_server_is_cut_off_at_the_timeout_though_every_read_gets_a_byte():
    timeout_s = 1.0
    with SilentServer(trickle_interval_s=0.1) as trickling:
        announce = announcer(game_day((Notification("http", trickling.url, timeout_s=timeout_s),)))
        started = time.monotonic()
        announce.event("gameday-started", {"slot": None})
        assert time.monotonic() - started < 0.05
        [record] = announce.close()
        total_s = time.monotonic() - started
    assert trickling.accepted == 1
    assert record["error"] == f"no complete answer within {timeout_s:g} s"
    assert timeout_s * 0.9 <= record["seconds"] <= timeout_s + SLACK_S
    assert total_s <= timeout_s + SLACK_S


def test_unreachable_targets_are_recorded_with_the_reason_never_raised():
    refused = closed_port_url()
    notifications = (
        Notification("http", refused + "/hook"),
        Notification("slack", "ftp://chat.example/hook"),
        Notification("http", "${HOOK_URL}"),
    )
    announce = announcer(game_day(notifications))
    announce.event("gameday-started", {"slot": None})
    records = announce.close()
    by_target = {r["target"]: r for r in records}
    assert by_target[f"http {refused.removeprefix('http://')}"]["error"] == "connection refused"
    assert by_target["slack chat.example"]["error"] == "the URL is not http(s)://host/..."
    assert by_target["http ${HOOK_URL}"]["error"] == (
        "not sent: ${HOOK_URL} is empty or not set in the environment"
    )
    assert not any(r["ok"] for r in records)


def test_no_secret_reaches_a_record_a_log_line_or_a_payload(caplog):
    """The resolved header token, the secret part of a Slack URL, the Grafana token and an
    experiment's secret, against servers that echo what they were sent in their errors."""
    slack_secret = "T0001/B0002/slack-webhook-secret"

    def echo_failure(request):
        # Padded so that a record's error, cut at 240 characters, would cut the secret in two.
        echoed = request.headers.get("X-Key") or request.path
        return 500, {"message": "rejected " + "x" * 170 + echoed, "body": request.body}

    with Receiver(echo_failure) as failing, GrafanaDouble(GRAFANA_TOKEN) as grafana:
        notifications = (
            Notification("http", failing.url, headers=(("X-Key", "${HOOK_TOKEN}"),)),
            Notification("slack", "${SLACK_URL}"),
        )
        environ = {
            "HOOK_TOKEN": WEBHOOK_TOKEN,
            "SLACK_URL": f"{failing.url}/services/{slack_secret}",
            "GRAFANA_TOKEN": GRAFANA_TOKEN,
        }
        gameday = game_day(notifications, Grafana(grafana.url + "/nowhere", "GRAFANA_TOKEN"))
        announce = Announcer(gameday, Redactor([EXPERIMENT_SECRET]), environ)
        summary = {
            "slot": None,
            "outcome": "fail",
            "reasons": [f"probe said: token={EXPERIMENT_SECRET}"],
            "experiments": [{"title": f"uses {EXPERIMENT_SECRET}", "outcome": "fail"}],
        }
        with caplog.at_level(logging.DEBUG, logger="chaosmesh_py.gameday"):
            announce.event("gameday-failed", summary)
            announce.region_started(datetime.now(UTC), f"running with {EXPERIMENT_SECRET}")
            records = announce.close()

    assert len(records) == 3 and not any(r["ok"] for r in records)
    assert all(r["error"].startswith("HTTP 500") for r in records if "grafana" not in r["target"])
    assert "***" in str(records)  # the servers' echoes were there, hidden
    assert "slack ${SLACK_URL}" in {r["target"] for r in records}
    seen = str(records) + caplog.text
    for secret in (WEBHOOK_TOKEN, slack_secret, GRAFANA_TOKEN, EXPERIMENT_SECRET):
        assert secret[:10] not in seen
    payloads = str([request.body for request in failing.received + grafana.received])
    assert EXPERIMENT_SECRET not in payloads
    assert "probe said: token=***" in payloads


def test_close_is_final_and_idempotent():
    with Receiver() as receiver:
        announce = announcer(game_day((Notification("http", receiver.url),)))
        announce.event("gameday-started", {"slot": None})
        first = announce.close()
        announce.event("gameday-completed", {"outcome": "pass"})
        assert announce.close() == first
    assert [r.body["name"] for r in receiver.received] == ["gameday-started"]


def test_an_announcer_with_nowhere_to_announce_closes_at_once():
    announce = announcer(game_day())
    announce.event("gameday-started", {"slot": None})
    announce.region_started(datetime.now(UTC), "running")
    started = time.monotonic()
    assert announce.close() == []
    assert time.monotonic() - started < 0.5


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A CA and a certificate for 127.0.0.1 it signed (the local mesh's own kind)."""
    from chaosmesh_py.localmesh.credentials import issue

    return issue(tmp_path_factory.mktemp("tls"))


def test_https_trusts_the_system_cas_or_the_ones_the_environment_names(tls):
    with Receiver(tls=tls) as receiver:
        unknown_ca = Notification("http", receiver.url + "/a")
        unchecked = Notification("http", receiver.url + "/b", verify_tls=False)
        records = {}
        for environ in ({}, {"SSL_CERT_FILE": str(tls.ca_file)}):
            announce = Announcer(game_day((unknown_ca, unchecked)), Redactor([]), environ)
            announce.event("gameday-started", {"slot": None})
            records[bool(environ)] = [(r["ok"], r["error"]) for r in announce.close()]
    assert sorted(records[False], key=str) == [
        (
            False,
            "TLS: the server's certificate failed verification (unable to get local "
            "issuer certificate)",
        ),
        (True, None),
    ]
    assert records[True] == [(True, None), (True, None)]
    assert sorted(r.path for r in receiver.received) == ["/a", "/b", "/b"]


def test_a_tls_handshake_that_never_comes_is_cut_off_at_the_timeout():
    with SilentServer() as silent:
        url = silent.url.replace("http://", "https://")
        announce = announcer(game_day((Notification("slack", url, timeout_s=1.0),)))
        started = time.monotonic()
        announce.event("gameday-started", {"slot": None})
        [record] = announce.close()
    assert record["error"] == "could not connect within 1 s"
    assert time.monotonic() - started <= 1.0 + SLACK_S


def test_deliveries_go_through_the_proxy_the_environment_names_unless_exempted(tls):
    proxy_password = "proxy-password-123"
    with (
        Receiver(tls=tls) as secure,
        Receiver() as plain,
        Receiver() as nearby,
        Proxy(password=proxy_password) as proxy,
    ):
        nearby_url = nearby.url.replace("127.0.0.1", "localhost")
        notifications = (
            Notification("slack", secure.url + "/services/x"),
            Notification("http", plain.url + "/hook?team=sre"),
            Notification("http", nearby_url + "/exempt"),
        )
        with_credentials = proxy.url.replace("http://", f"http://user:{proxy_password}@")
        environ = {
            "HTTPS_PROXY": with_credentials,
            "http_proxy": with_credentials,
            "NO_PROXY": "example.com,.localhost,localhost",
            "SSL_CERT_FILE": str(tls.ca_file),
        }
        announce = Announcer(game_day(notifications), Redactor([]), environ)
        announce.event("gameday-started", {"slot": None})
        records = announce.close()
        refused = Announcer(
            game_day(notifications[:1]),
            Redactor([]),
            {**environ, "HTTPS_PROXY": proxy.url.replace("http://", "http://user:wrong-pass@")},
        )
        refused.event("gameday-started", {"slot": None})
        [refusal] = refused.close()

    assert [r["ok"] for r in records] == [True, True, True]
    basic = "Basic dXNlcjpwcm94eS1wYXNzd29yZC0xMjM="  # user:proxy-password-123
    secure_port = secure.url.rsplit(":", 1)[1]
    assert sorted(proxy.seen[:2]) == sorted(
        [
            (f"CONNECT 127.0.0.1:{secure_port} HTTP/1.0", basic),
            (f"POST {plain.url}/hook?team=sre HTTP/1.1", basic),
        ]
    )
    assert len(secure.received) == len(plain.received) == len(nearby.received) == 1
    assert refusal["error"].startswith(
        "the proxy refused the tunnel: 407 Proxy Authentication Required (through the proxy"
    )
    assert "wrong-pass" not in str(refusal) and proxy_password not in str(records)


def test_a_game_day_file_as_documented_announces_where_it_says(tmp_path):
    """The file a team writes (docs/gameday.md's example), read by ``load``, to real servers."""
    with Receiver() as chat, Receiver() as hooks, GrafanaDouble(GRAFANA_TOKEN) as grafana:
        document = {
            "name": "bookinfo-weekly",
            "namespace": "bookinfo",
            "experiments": [{"path": str(ROOT / "experiments/bookinfo-ratings-delay.json")}],
            "notifications": [
                {
                    "type": "slack",
                    "url": "${SLACK_WEBHOOK_URL}",
                    "events": ["gameday-failed", "gameday-aborted", "gameday-skipped"],
                },
                {
                    "type": "http",
                    "url": hooks.url + "/chaos",
                    "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"},
                    "timeout": "3s",
                },
            ],
            "grafana": {
                "url": grafana.url,
                "tokenEnv": "GRAFANA_TOKEN",
                "dashboardUid": "istio-mesh",
                "panelId": 4,
            },
        }
        path = tmp_path / "gameday.yaml"
        path.write_text(yaml.safe_dump(document))
        environ = {
            "SLACK_WEBHOOK_URL": chat.url + "/services/T1/B2/secret-part",
            "HOOK_TOKEN": WEBHOOK_TOKEN,
            "GRAFANA_TOKEN": GRAFANA_TOKEN,
        }
        announce = Announcer(load(path), Redactor([]), environ)
        announce.event("gameday-started", {"slot": None})
        announce.region_started(datetime.now(UTC), "running")
        announce.region_ended(datetime.now(UTC), "fail")
        announce.event("gameday-failed", FAILED_SUMMARY)
        records = announce.close()

    assert all(record["ok"] for record in records) and len(records) == 5
    assert [r.body["name"] for r in hooks.received] == ["gameday-started", "gameday-failed"]
    assert hooks.received[0].headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert [r.path for r in chat.received] == ["/services/T1/B2/secret-part"]
    assert grafana.annotations[1]["dashboardUID"] == "istio-mesh"
    assert grafana.annotations[1]["text"] == "fail"


def test_credentials_in_a_url_are_sent_as_basic_auth_and_shown_nowhere(caplog):
    def moved(request):
        return 302, {"location": "elsewhere"}

    with Receiver() as receiver, Receiver(moved) as moving:
        notifications = (
            Notification("http", receiver.url.replace("://", "://chaos:hook-password-7@")),
            Notification("http", moving.url.replace("://", "://chaos:hook-password-7@")),
        )
        announce = announcer(game_day(notifications))
        with caplog.at_level(logging.DEBUG, logger="chaosmesh_py.gameday"):
            announce.event("gameday-started", {"slot": None})
            records = sorted(announce.close(), key=lambda r: r["ok"])
    assert receiver.received[0].headers["Authorization"] == "Basic Y2hhb3M6aG9vay1wYXNzd29yZC03"
    assert records[0]["status"] == 302
    assert records[0]["error"].startswith("HTTP 302 Found (redirects are not followed)")
    assert records[1]["ok"] and records[1]["target"] == f"http {receiver.url[7:]}"
    assert "hook-password-7" not in str(records) + caplog.text


def test_an_unusable_ca_file_or_header_is_a_record_not_a_crash(tls):
    with Receiver(tls=tls) as secure, Receiver() as plain:
        notifications = (
            Notification("http", secure.url),
            Notification("http", plain.url, headers=(("X-Token", "${SPLIT_TOKEN}"),)),
        )
        environ = {
            "SSL_CERT_FILE": "/nonexistent/ca.pem",
            "SPLIT_TOKEN": "first-half\nsecond-half",
        }
        announce = Announcer(game_day(notifications), Redactor([]), environ)
        announce.event("gameday-started", {"slot": None})
        errors = sorted(r["error"] for r in announce.close())
    assert errors == [
        "a header name or value holds a line break or another control character",
        "the CA file /nonexistent/ca.pem cannot be used: [Errno 2] No such file or directory",
    ]
    assert secure.received == plain.received == []


def test_a_proxy_that_never_answers_is_cut_off_at_the_timeout():
    with SilentServer() as silent_proxy:
        hook = Notification("http", "https://hooks.example.com/chaos", timeout_s=1.0)
        announce = Announcer(game_day((hook,)), Redactor([]), {"HTTPS_PROXY": silent_proxy.url})
        started = time.monotonic()
        announce.event("gameday-started", {"slot": None})
        [record] = announce.close()
    proxy = silent_proxy.url.removeprefix("http://")
    assert record["error"] == f"could not connect within 1 s (through the proxy {proxy})"
    assert record["target"] == "http hooks.example.com"
    assert time.monotonic() - started <= 1.0 + SLACK_S
