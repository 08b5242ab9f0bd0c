"""The pure parts of the dark-launch check and of the local mesh's client-without-sidecar
paths: who counts as the hidden version, how a result is judged (PeerAuthentication's mode:
tests/unit/test_peer_authentication.py)."""

import re

import pytest

from chaosmesh_py.traffic import leaks
from chaosmesh_py.traffic.entries import Entry


@pytest.mark.parametrize(
    ("server", "hidden"),
    [
        ("reviews-v2", True),
        ("reviews-v2-5b9c7d8f4-x2x7q", True),  # a Deployment's pod
        ("reviews-v1", False),
        ("reviews-v20", False),  # another version, not a pod of v2
        ("reviews-v2canary", False),
    ],
)
def test_the_hidden_version_is_its_name_or_a_pod_named_after_it(server, hidden):
    assert leaks.is_hidden(server, "reviews-v2") is hidden


CHECK = leaks.Check(
    service="reviews",
    hidden_version="v2",
    hidden_name="reviews-v2",
    testers=leaks.Testers(headers={"cookie": "session=s3cret"}),
    served_by=re.compile(leaks.PODNAME_PATTERN),
    requests_per_entry=10,
    timeout_s=1.0,
    concurrency=1,
)
INGRESS = Entry("ingress", "ingress", "http://in", "/p", via=("productpage",))
CALLER = Entry("in-mesh caller productpage-v1", "sidecar", "http://pp", "/r",
                     caller_labels={"app": "productpage"})  # fmt: skip


def sample(hidden=0, served=None, closed=0, unidentified=0, requests=10):
    statuses = {"200": requests - closed, "closed": closed}
    return leaks.Sample(
        requests,
        hidden,
        served or {},
        closed,
        0,
        unidentified,
        {k: n for k, n in statuses.items() if n},
    )


def test_a_clean_result_is_hidden_and_one_that_checked_nothing_is_not():
    clean = leaks.judge(CHECK, [(INGRESS, sample(served={"reviews-v1": 10}), None)], [])
    assert clean["hidden"] and clean["findings"] == 0
    nothing = leaks.judge(CHECK, [], [])
    assert not nothing["hidden"]
    assert nothing["not_checked"] == ["nothing: no entry was checked"]


def test_answers_that_name_no_server_fail_the_check_rather_than_being_guessed():
    result = leaks.judge(
        CHECK, [(INGRESS, sample(unidentified=3, served={"reviews-v1": 7}), None)], []
    )
    assert not result["hidden"]
    assert result["unidentified"][0].startswith("ingress: 3 of 10 requests without the tester")


def test_a_gap_at_the_ingress_names_the_hop_and_never_the_header_value():
    result = leaks.judge(
        CHECK,
        [
            (INGRESS, None, sample(served={"reviews-v1": 10})),
            (CALLER, None, sample(hidden=10, served={"reviews-v2": 10})),
        ],
        [],
    )
    (gap,) = result["tester_gaps"]
    assert "the tester match (header cookie) is lost at productpage -> reviews" in gap
    assert "productpage does not propagate it" in gap
    assert "s3cret" not in str(result)


def test_with_several_hops_the_gap_names_the_ones_it_may_be_and_blames_none():
    ingress = Entry("ingress", "ingress", "http://in", "/p", via=("productpage", "reviews"))
    check = leaks.Check(**{**CHECK.__dict__, "service": "ratings", "hidden_name": "ratings-v2"})
    caller = Entry("in-mesh caller reviews-v1", "sidecar", "http://r", "/r",
                         caller_labels={"app": "reviews"})  # fmt: skip
    result = leaks.judge(
        check,
        [(ingress, None, sample()), (caller, None, sample(hidden=10, served={"ratings-v2": 10}))],
        [],
    )
    (gap,) = result["tester_gaps"]
    assert "lost at one of the hops ingress -> productpage -> reviews -> ratings" in gap
    assert "from reviews-v1's sidecar it reaches ratings-v2" in gap
    assert "does not propagate" not in gap


def test_when_no_caller_reaches_it_either_the_routing_is_what_fails():
    result = leaks.judge(
        CHECK,
        [(INGRESS, None, sample(served={"reviews-v1": 10})), (CALLER, None, sample())],
        [],
    )
    assert result["tester_gaps"][0].endswith(
        "sent straight to reviews from a sidecar they do not reach it either"
    )


def test_it_asks_the_api_only_to_list_the_namespaces_services():
    from chaosmesh_py.engine.access import Access, declared

    needs = declared("chaosmesh_py.traffic.probes", "dark_launch_leaks")
    assert needs is not None
    assert list(needs({"namespace": "shop"})) == [Access("list", "", "services", "shop")]


def test_only_a_client_without_a_sidecar_may_be_closed_on():
    no_sidecar = Entry("no-sidecar client via Service reviews", "no-sidecar", "http://k", "/r")
    strict = leaks.judge(CHECK, [(no_sidecar, sample(closed=10), None)], [])
    assert strict["hidden"], strict  # STRICT mTLS: plain text closed at the pod
    silent = leaks.judge(CHECK, [(CALLER, sample(closed=10), None)], [])
    assert silent["unanswered"] == [
        "in-mesh caller productpage-v1: 10 of 10 requests without the tester match got no "
        "answer at http://pp (statuses {'closed': 10})"
    ]


def test_a_local_mesh_started_by_an_older_chaosmesh_is_named_with_the_fix():
    from chaosmesh_py.errors import InvalidInput
    from chaosmesh_py.traffic.entries import discover_entries

    old = {"services": {"reviews": {"host": "reviews:9080"}}, "workloads": {}}
    with pytest.raises(InvalidInput, match=r"older chaosmesh.*restart it"):
        discover_entries(
            old, [], service="reviews", hidden_version="v2", path="/", ingress_path=None, via=[]
        )
