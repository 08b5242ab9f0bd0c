"""Security changes through the Kubernetes API double with the real `kubernetes` client, as on a
cluster: owned policies created exactly (ledger first) and deleted with preconditions, an
existing policy of the same scope overridden and restored exactly, conflicts kept, objects of
others never touched, and `chaosmesh rollback --run` removing all of it."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.control import roll_back
from chaosmesh_py.engine import ledger
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.security.actions import (
    deny_requests,
    make_jwks_unreachable,
    require_jwt,
    set_mtls_mode,
)
from chaosmesh_py.security.rollbacks import remove_security_changes
from tests.conftest import NAMESPACE, leftover_faults
from tests.integration.test_cleanup import chaosmesh
from tests.integration.test_inject_rollback import writes
from tests.integration.test_upstream_fault import pod

SECURITY = "security.istio.io/v1"
PEER = (SECURITY, "PeerAuthentication")
POLICY = (SECURITY, "AuthorizationPolicy")
REQUEST_AUTHN = (SECURITY, "RequestAuthentication")
REVIEWS = "cluster.local/ns/bookinfo/sa/bookinfo-reviews"
JWKS = {"keys": [{"kty": "RSA", "e": "AQAB", "n": "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX"}]}


@pytest.fixture
def pods(api):
    pod(api, "ratings-v1-6b8f-a1", app="ratings", version="v1")
    pod(api, "reviews-v2-5c4b-c3", app="reviews", version="v2")
    pod(api, "productpage-v1-7d9f-b2", app="productpage", version="v1")
    return api


def team_policy(api, kind, name, spec, **metadata):
    """An object of "another team": created before the run, compared byte for byte after."""
    api.create(
        {
            "apiVersion": SECURITY,
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, **metadata},
            "spec": spec,
        }
    )
    return _frozen(api.get(SECURITY, kind, NAMESPACE, name))


def _frozen(obj):
    """What must not change: everything but the server's bookkeeping of our writes (the
    resourceVersion, generation and managedFields they bumped)."""
    bookkeeping = ("resourceVersion", "generation", "managedFields")
    metadata = {k: v for k, v in obj["metadata"].items() if k not in bookkeeping}
    return json.dumps({**obj, "metadata": metadata}, sort_keys=True)


def test_a_namespace_without_a_policy_gets_an_owned_one_deleted_at_rollback(
    pods, configuration, ledger_dir
):
    report = set_mtls_mode(mode="STRICT", namespace=NAMESPACE, configuration=configuration)
    (created,) = pods.list(*PEER)
    assert report["created"] == f"{NAMESPACE}/{created['metadata']['name']}"
    assert created["spec"] == {"mtls": {"mode": "STRICT"}}
    assert report["effect"]["verified"] is False
    assert "not checked in the data plane" in report["effect"]["checked"]
    intent, outcome = ledger.Ledger(ledger_dir, configuration["chaosmesh_run_id"]).entries()[:2]
    assert (intent.event, intent.op, outcome.detail["result"]) == ("intent", "inject", "applied")

    removed = remove_security_changes(namespace=NAMESPACE, configuration=configuration)
    assert [entry["deleted"] for entry in removed["removed"]] == [True]
    assert pods.list(*PEER) == []
    assert (
        remove_security_changes(namespace=NAMESPACE, configuration=configuration)["removed"] == []
    )


def test_an_existing_namespace_policy_is_overridden_not_shadowed_and_restored_exactly(
    pods, configuration
):
    # Istio applies the oldest namespace-wide policy: a second one would change nothing.
    before = team_policy(pods, "PeerAuthentication", "default", {"mtls": {"mode": "PERMISSIVE"}})
    report = set_mtls_mode(mode="STRICT", namespace=NAMESPACE, configuration=configuration)
    assert report["overridden"] == f"{NAMESPACE}/default"
    assert report["fields"] == [
        {"field": "spec.mtls.mode", "wrote": "STRICT", "replaced": "PERMISSIVE"}
    ]
    (only,) = pods.list(*PEER)
    assert only["spec"]["mtls"]["mode"] == "STRICT"
    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"] is True
    assert _frozen(pods.get(*PEER, NAMESPACE, "default")) == before


def test_a_mode_another_writer_changed_meanwhile_stays_theirs_as_a_conflict(pods, configuration):
    team_policy(pods, "PeerAuthentication", "default", {"mtls": {"mode": "PERMISSIVE"}})
    set_mtls_mode(mode="STRICT", namespace=NAMESPACE, configuration=configuration)
    theirs = pods.get(*PEER, NAMESPACE, "default")
    theirs["spec"]["mtls"]["mode"] = "DISABLE"
    pods.replace(theirs)
    removed = remove_security_changes(namespace=NAMESPACE, configuration=configuration)
    (entry,) = removed["removed"]
    assert entry["conflicts"][0]["field"] == "spec.mtls.mode"
    assert entry["conflicts"][0]["now"] == "DISABLE"
    assert pods.get(*PEER, NAMESPACE, "default")["spec"]["mtls"]["mode"] == "DISABLE"
    assert leftover_faults(pods) == []


def test_a_workload_policy_with_port_modes_is_created_for_pods_that_exist(pods, configuration):
    set_mtls_mode(
        mode="STRICT",
        namespace=NAMESPACE,
        workload_labels={"app": "ratings"},
        port_modes={"9080": "PERMISSIVE"},
        configuration=configuration,
    )
    (created,) = pods.list(*PEER)
    assert created["spec"] == {
        "mtls": {"mode": "STRICT"},
        "selector": {"matchLabels": {"app": "ratings"}},
        "portLevelMtls": {"9080": {"mode": "PERMISSIVE"}},
    }
    roll_back(run_for(configuration))
    assert pods.list(*PEER) == []


def test_deny_requests_creates_a_deny_policy_and_dry_run_annotates_it(pods, configuration):
    theirs = team_policy(
        pods,
        "AuthorizationPolicy",
        "team-allow",
        {"action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
    )
    deny_requests(
        destination_labels={"app": "ratings"},
        namespace=NAMESPACE,
        sources={"principals": [REVIEWS]},
        paths=["/ratings/*"],
        methods=["GET"],
        configuration=configuration,
    )
    deny_requests(
        destination_labels={"app": "ratings"},
        namespace=NAMESPACE,
        sources={"namespaces": ["bookinfo"]},
        dry_run=True,
        configuration=configuration,
    )
    ours = [p for p in pods.list(*POLICY) if p["metadata"]["name"] != "team-allow"]
    by_dry_run = {(p["metadata"].get("annotations") or {}).get("istio.io/dry-run"): p for p in ours}
    assert by_dry_run[None]["spec"] == {
        "selector": {"matchLabels": {"app": "ratings"}},
        "action": "DENY",
        "rules": [
            {
                "from": [{"source": {"principals": [REVIEWS]}}],
                "to": [{"operation": {"paths": ["/ratings/*"], "methods": ["GET"]}}],
            }
        ],
    }
    assert by_dry_run["true"]["spec"]["rules"] == [
        {"from": [{"source": {"namespaces": ["bookinfo"]}}]}
    ]
    done = chaosmesh("rollback", "--run", configuration["chaosmesh_run_id"])
    assert done.returncode == 0, done.stderr
    assert [p["metadata"]["name"] for p in pods.list(*POLICY)] == ["team-allow"]
    assert _frozen(pods.get(*POLICY, NAMESPACE, "team-allow")) == theirs


def test_require_jwt_creates_the_authentication_and_the_token_required_deny(pods, configuration):
    report = require_jwt(
        workload_labels={"app": "productpage"},
        namespace=NAMESPACE,
        issuer="testing@secure.istio.io",
        jwks=JWKS,
        audiences=["bookinfo"],
        from_headers=["x-jwt"],
        configuration=configuration,
    )
    (authn,) = pods.list(*REQUEST_AUTHN)
    assert authn["spec"] == {
        "selector": {"matchLabels": {"app": "productpage"}},
        "jwtRules": [
            {
                "issuer": "testing@secure.istio.io",
                "jwks": json.dumps(JWKS, separators=(",", ":")),
                "audiences": ["bookinfo"],
                "fromHeaders": [{"name": "x-jwt"}],
            }
        ],
    }
    (policy,) = pods.list(*POLICY)
    assert report["authorization_policy"] == f"{NAMESPACE}/{policy['metadata']['name']}"
    assert policy["spec"]["rules"] == [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]
    assert policy["spec"]["action"] == "DENY"
    remove_security_changes(namespace=NAMESPACE, configuration=configuration)
    assert pods.list(*REQUEST_AUTHN) == pods.list(*POLICY) == []


def test_a_jwks_made_unreachable_is_restored_exactly(pods, configuration):
    before = team_policy(
        pods,
        "RequestAuthentication",
        "jwt-example",
        {
            "jwtRules": [
                {"issuer": "https://issuer.example.com", "jwksUri": "https://issuer.example.com/k"},
                {"issuer": "other@example.com", "jwks": json.dumps(JWKS)},
            ]
        },
    )
    report = make_jwks_unreachable(
        request_authentication="jwt-example",
        namespace=NAMESPACE,
        issuer="https://issuer.example.com",
        configuration=configuration,
    )
    assert report["replaced"] == "https://issuer.example.com/k"
    rules = pods.get(*REQUEST_AUTHN, NAMESPACE, "jwt-example")["spec"]["jwtRules"]
    assert rules[0]["jwksUri"] == "http://127.0.0.1:1/chaosmesh/unreachable/jwks.json"
    assert rules[1] == {"issuer": "other@example.com", "jwks": json.dumps(JWKS)}
    roll_back(run_for(configuration))
    assert _frozen(pods.get(*REQUEST_AUTHN, NAMESPACE, "jwt-example")) == before


def test_an_inline_jwks_cannot_be_made_unreachable_and_nothing_is_written(pods, configuration):
    team_policy(
        pods,
        "RequestAuthentication",
        "inline",
        {"jwtRules": [{"issuer": "other@example.com", "jwks": json.dumps(JWKS)}]},
    )
    pods.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        make_jwks_unreachable(
            request_authentication="inline", namespace=NAMESPACE, configuration=configuration
        )
    assert "request_authentication: RequestAuthentication bookinfo/inline carries the keys" in (
        str(caught.value)
    )
    assert writes(pods) == []


def test_a_run_certificate_request_is_deleted_by_halt_and_anothers_is_kept(pods, configuration):
    """A certificate request (a labelled ConfigMap) is an owned object like a policy: halt
    deletes the run's, never one of another team that looks the same."""
    from chaosmesh_py.engine import ownership
    from chaosmesh_py.engine.run import run_for as run_of
    from chaosmesh_py.kube import CONFIG_MAP, Kube
    from chaosmesh_py.security.certificates import CERTIFICATE_LABEL

    labels = {CERTIFICATE_LABEL: "true"}
    data = {"selector": json.dumps({"app": "ratings"}), "state": "expired"}
    pods.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "team-expiry", "namespace": NAMESPACE, "labels": labels},
            "data": data,
        }
    )
    theirs = _frozen(pods.get("v1", "ConfigMap", NAMESPACE, "team-expiry"))
    created = ownership.create_object(
        Kube.connect(None),
        run_of(configuration),
        kind=CONFIG_MAP,
        namespace=NAMESPACE,
        spec=data,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        labels=labels,
    )
    ours = pods.get("v1", "ConfigMap", NAMESPACE, created["name"])
    assert ours["data"] == data and ours["metadata"]["labels"][CERTIFICATE_LABEL] == "true"
    done = chaosmesh("halt", "--json")
    assert done.returncode == 0, done.stdout
    assert pods.get("v1", "ConfigMap", NAMESPACE, created["name"]) is None
    assert _frozen(pods.get("v1", "ConfigMap", NAMESPACE, "team-expiry")) == theirs
    assert leftover_faults(pods) == []
