"""Bad arguments to the dark-launch leak check: each fails naming the field and the fix, before
a single request is sent (the entries below would answer nothing)."""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.traffic.probes import dark_launch_leaks
from tests.badinput.corpus import edited
from tests.badinput.test_validate import MAX_OUTPUT_CHARS, validate
from tests.conftest import NAMESPACE

# Nothing listens there: a request sent is unreachable, never an error here.
NOWHERE = [{"name": "nowhere", "url": "http://127.0.0.1:9", "kind": "no-sidecar"}]
GOOD = {
    "service": "reviews",
    "hidden_version": "v2",
    "testers": {"headers": {"end-user": "jason"}},
    "namespace": NAMESPACE,
    "entries": NOWHERE,
}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"service": ""}, "service: '' is not a Kubernetes name"),
        ({"service": "Reviews!"}, "service: 'Reviews!' is not a Kubernetes name"),
        ({"namespace": "a/b"}, "namespace: 'a/b' is not a namespace name"),
        ({"hidden_version": None}, "hidden_version: must be a non-empty string"),
        ({"testers": {}}, "testers: must be an object with headers and/or source_labels"),
        ({"testers": {"header": {"end-user": "jason"}}}, "testers: unknown keys ['header']"),
        (
            {"testers": {"headers": {"end-user": 7}}},
            "testers.headers.end-user: must be a non-empty name with a string value (got int)",
        ),
        ({"testers": {"headers": ["cookie"]}}, "testers.headers: must map names to strings"),
        ({"testers": {"headers": {}}}, "testers: names no header and no source label"),
        ({"requests_per_entry": 0}, "requests_per_entry: must be a whole number from 1 to 10000"),
        ({"requests_per_entry": 2.5}, "requests_per_entry: must be a whole number"),
        ({"testers_must_reach": "yes"}, "testers_must_reach: must be true or false"),
        ({"timeout_s": -1}, "timeout_s: must be a number of seconds above 0"),
        ({"served_by": "podname: ("}, "served_by: is not a regular expression"),
        ({"served_by": "podname"}, "served_by: has no group"),
        ({"path": "reviews/0"}, "path: must start with '/'"),
        ({"ingress_path": "api"}, "ingress_path: must start with '/'"),
        ({"via": "productpage"}, "via: must be a list of service names"),
        ({"entries": []}, "entries: must be a non-empty list"),
        ({"entries": [{"url": "ftp://x"}]}, "entries[0].url: must be an http(s) URL"),
        ({"entries": [{"url": 9080}]}, "entries[0].url: must be an http(s) URL, not 9080"),
        (
            {"entries": [{"url": "ftp://me:pw@x"}]},
            "entries[0].url: must be an http(s) URL, not 'ftp://x'",
        ),
        (
            {"entries": [{"url": "http://me:pw@x"}]},
            "entries[0].url: carries credentials (user:password@)",
        ),
        ({"entries": [{"url": "http://x", "kind": "pod"}]}, "entries[0].kind: unknown kind 'pod'"),
        ({"entries": [{"url": "http://x", "hosts": "a"}]}, "entries[0]: unknown keys ['hosts']"),
        ({"entries": [{"url": "http://x", "via": "pp"}]}, "entries[0].via: must be a list"),
        ({"entries": [{"url": "http://x", "host": 7}]}, "entries[0].host: must be a Host header"),
        ({"entries": [{"url": "http://x", "caller_labels": []}]}, "entries[0].caller_labels"),
    ],
)
def test_a_bad_argument_is_named_before_any_request(arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        dark_launch_leaks(**{**GOOD, **arguments})
    assert f"InvalidInput: {expected}" in str(caught.value), caught.value


def test_on_a_cluster_the_entries_must_be_given(api):
    with pytest.raises(ActivityFailed) as caught:
        dark_launch_leaks(**{**GOOD, "entries": None})
    message = str(caught.value)
    assert "entries: not given, and this API is a cluster's" in message
    assert "the ingress URL" in message


def service(api, name, selector):
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 9080}]},
        }
    )


def test_given_entries_on_a_cluster_name_the_services_left_unchecked(api):
    service(api, "reviews-canary", {"app": "reviews", "version": "v2"})
    result = dark_launch_leaks(**{**GOOD, "requests_per_entry": 1})
    assert not result["hidden"]
    assert result["not_checked"] == [
        "other Services selecting the hidden pods: there is no Service reviews to learn their "
        "labels from"
    ]
    service(api, "reviews", {"app": "reviews"})
    result = dark_launch_leaks(**{**GOOD, "requests_per_entry": 1})
    assert not result["hidden"]
    assert result["not_checked"] == [
        "Service reviews-canary selects the hidden pods, and no entry calls it "
        "(Host: reviews-canary)"
    ]
    assert result["entries"][0]["others"]["unreachable"] == 1
    # A check that reached nothing tested nothing.
    assert result["unanswered"] == [
        "nowhere: 1 of 1 requests without the tester match got no answer at http://127.0.0.1:9 "
        "(statuses {'unreachable': 1})"
    ]


def test_an_entry_calling_the_other_service_covers_it(api):
    service(api, "reviews", {"app": "reviews"})
    service(api, "reviews-canary", {"app": "reviews", "version": "v2"})
    canary = {"name": "canary", "url": "http://127.0.0.1:9", "kind": "service",
              "host": "reviews-canary.bookinfo.svc.cluster.local:9080"}  # fmt: skip
    result = dark_launch_leaks(**{**GOOD, "entries": [*NOWHERE, canary], "requests_per_entry": 1})
    assert result["not_checked"] == []
    assert len(result["unanswered"]) == 2  # covered, but nothing there answered


def dark_launch_probe(**arguments):
    """The dark-launch experiment with its hypothesis probe's arguments changed."""

    def edit(experiment):
        (probe,) = experiment["steady-state-hypothesis"]["probes"]
        probe["provider"]["arguments"].update(arguments)

    return edited(edit, "bookinfo-dark-launch-reviews-v2")


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (dark_launch_probe(testers={"header": {}}), "testers: unknown keys ['header']"),
        (dark_launch_probe(requests_per_entry=0), "requests_per_entry: must be a whole number"),
        (dark_launch_probe(served_by="("), "served_by: is not a regular expression"),
        (dark_launch_probe(entries=[{"url": "x"}]), "entries[0].url: must be an http(s) URL"),
        (dark_launch_probe(ingress_path="api"), "ingress_path: must start with '/'"),
    ],
)
def test_validate_names_the_leak_probe_and_field(tmp_path, write, expected):
    result = validate(write(tmp_path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"no-one-but-jason-sees-v2: {expected}" in result.output, result.output[
        :MAX_OUTPUT_CHARS
    ]


def test_a_bad_tester_header_is_named_never_shown():
    secret = {"cookie": "session=0123456789abcdef", "x-team": ["a"]}
    with pytest.raises(ActivityFailed) as caught:
        dark_launch_leaks(**{**GOOD, "testers": {"headers": secret}})
    assert "testers.headers.x-team" in str(caught.value)
    assert "0123456789abcdef" not in str(caught.value)
