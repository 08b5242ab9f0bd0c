"""The Bookinfo page probe's arguments, as a newcomer gets them wrong."""

import socket

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.observe.probes import bookinfo_page


def test_the_page_url_printed_by_the_ingress_is_refused_with_the_base_url_to_use():
    # `local up` used to print the ingress as …/productpage; as PRODUCTPAGE_URL it gave a 404.
    with pytest.raises(ActivityFailed) as raised:
        bookinfo_page(url="http://127.0.0.1:9080/productpage")
    assert str(raised.value) == (
        "InvalidInput: url: http://127.0.0.1:9080/productpage ends with /productpage "
        "(give Bookinfo's base URL, http://127.0.0.1:9080: the probe adds /productpage)"
    )


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"url": "localhost:9080"}, "url"),
        ({"url": "http://localhost:9080", "pages": 0}, "pages"),
        ({"url": "http://localhost:9080", "pages": 2.5}, "pages"),
        ({"url": "http://localhost:9080", "concurrency": 0}, "concurrency"),
        ({"url": "http://localhost:9080", "timeout_s": -1}, "timeout_s"),
        ({"url": "http://localhost:9080", "user": ""}, "user"),
    ],
)
def test_bad_arguments_name_their_field(arguments, field):
    with pytest.raises(ActivityFailed, match=f"^InvalidInput: {field}: "):
        bookinfo_page(**arguments)


def test_a_page_nobody_answers_is_a_failed_probe_not_a_deviation():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ActivityFailed, match=r"^PageUnreachable: .*no answer to any of 3 loads"):
        bookinfo_page(url=f"http://127.0.0.1:{port}", pages=3)


def test_each_page_load_runs_in_the_callers_context(monkeypatch):
    # What a tracing control relies on: OpenTelemetry's requests instrumentation wraps
    # Session.send and parents each request's span on the context's current span. The loads
    # run in worker threads, which start with an empty context unless given the caller's.
    from contextvars import ContextVar
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    import requests

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"page")

        def log_message(self, *args):
            pass

    current_span = ContextVar("current_span", default=None)
    seen = []
    send = requests.Session.send

    def traced_send(session, request, **kwargs):
        seen.append(current_span.get())
        return send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", traced_send)
    with ThreadingHTTPServer(("127.0.0.1", 0), Page) as server:
        Thread(target=server.serve_forever, daemon=True).start()
        current_span.set("activity: page-whole-for-others")
        report = bookinfo_page(url=f"http://127.0.0.1:{server.server_port}", pages=6)
        server.shutdown()
    assert report["whole"] == 6
    assert seen == ["activity: page-whole-for-others"] * 6
