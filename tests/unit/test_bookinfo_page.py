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
