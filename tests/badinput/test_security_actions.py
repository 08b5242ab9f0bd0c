"""The corpus for security changes: each bad input is a clear error naming the field, before any
request (the arguments) or before any write (a selector that picks no Pod, a JWKS rule that is
inline, a certificate on a cluster); `chaosmesh validate` exits 2 and `chaos run` stops before
anything is written."""

import json

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.security import actions
from tests.conftest import NAMESPACE, python_activity
from tests.e2e.test_chaos_run import CONTROL, chaos, delay_action, write_experiment
from tests.integration.test_inject_rollback import writes
from tests.integration.test_upstream_fault import pod

SECURITY = "security.istio.io/v1"
AT = {"namespace": NAMESPACE}
RATINGS = {**AT, "workload_labels": {"app": "ratings"}}
REVIEWS = "cluster.local/ns/bookinfo/sa/bookinfo-reviews"
JWT = {**AT, "workload_labels": {"app": "productpage"}, "issuer": "testing@secure.istio.io"}
KEY = {"kty": "RSA", "e": "AQAB", "n": "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX"}


def deny(**arguments):
    return ("deny_requests", {**AT, "destination_labels": {"app": "ratings"}, **arguments})


REFUSED_BEFORE_ANY_REQUEST = [
    # mTLS modes
    pytest.param(
        ("set_mtls_mode", {**AT, "mode": "STRICTEST"}),
        "mode: 'STRICTEST' is not an mTLS mode (use one of STRICT, PERMISSIVE, DISABLE",
        id="unknown-mode",
    ),
    pytest.param(("set_mtls_mode", {**AT, "mode": 1}), "mode: 1 is not an mTLS mode", id="mode-1"),
    pytest.param(
        ("set_mtls_mode", {**AT, "mode": "STRICT", "port_modes": {"9080": "DISABLE"}}),
        "port_modes: Istio takes port-level mTLS only from a policy that selects workloads",
        id="port-modes-without-labels",
    ),
    pytest.param(
        ("set_mtls_mode", {**RATINGS, "mode": "STRICT", "port_modes": {"70000": "DISABLE"}}),
        "port_modes: port '70000' is not a port number from 1 to 65535",
        id="port-70000",
    ),
    pytest.param(
        ("set_mtls_mode", {**RATINGS, "mode": "STRICT", "port_modes": {"9080": "OFF"}}),
        "port_modes.9080: 'OFF' is not an mTLS mode",
        id="port-mode-unknown",
    ),
    pytest.param(
        ("set_mtls_mode", {"mode": "STRICT", "namespace": "istio-system"}),
        "namespace: 'istio-system' is protected",
        id="mesh-wide-not-allowed",
    ),
    pytest.param(
        ("set_mtls_mode", {**AT, "mode": "STRICT", "workload_labels": {}}),
        "workload_labels: must be a non-empty map",
        id="labels-empty",
    ),
    # DENY policies
    pytest.param(
        deny(sources={"principals": [""]}),
        "sources.principals: holds '': empty values are not allowed",
        id="principal-empty",
    ),
    pytest.param(
        deny(sources={"principals": ["spiffe://" + REVIEWS]}),
        "never matches: istiod adds spiffe:// itself",
        id="principal-spiffe",
    ),
    pytest.param(
        deny(sources={"principals": ["cluster.local/ns/*/sa/reviews"]}),
        "Istio takes '*' only as a prefix or a suffix",
        id="principal-inner-wildcard",
    ),
    pytest.param(
        deny(sources={"principals": ["bookinfo-reviews"]}),
        "'bookinfo-reviews' is not a principal: <trust domain>/ns/<namespace>/sa/<account>",
        id="principal-bare-account",
    ),
    pytest.param(
        deny(sources={"principal": [REVIEWS]}),
        "sources: 'principal' is not a source field",
        id="source-field-misspelt",
    ),
    pytest.param(
        deny(sources={"namespaces": ["Book_Info"]}),
        "sources.namespaces: 'Book_Info' is not a namespace name",
        id="namespace-malformed",
    ),
    pytest.param(
        deny(sources={"ipBlocks": ["10.0.0.0/33"]}),
        "sources.ipBlocks: '10.0.0.0/33' is not an IP address or CIDR range",
        id="ip-block-malformed",
    ),
    pytest.param(
        deny(sources={"notIpBlocks": "300.1.1.1"}),
        "sources.notIpBlocks: '300.1.1.1' is not an IP address",
        id="not-ip-block-malformed",
    ),
    pytest.param(
        deny(methods=["get"]),
        "methods: 'get' never matches",
        id="method-lower-case",
    ),
    pytest.param(deny(methods=[]), "methods: must be a non-empty list", id="methods-empty"),
    pytest.param(
        deny(paths=["ratings/1"]),
        "paths: 'ratings/1' never matches: a request path starts with '/'",
        id="path-relative",
    ),
    pytest.param(deny(dry_run="yes"), "dry_run: must be true or false", id="dry-run-string"),
    pytest.param(
        deny(verify={"from": "reviews-v2", "path": "/x"}),
        "verify.to: must be a non-empty string",
        id="verify-without-to",
    ),
    pytest.param(
        deny(destination_labels={"app": 1}),
        "destination_labels.app: must be a label value",
        id="destination-label-number",
    ),
    # JWT
    pytest.param(
        ("require_jwt", {**JWT, "jwks": "not json"}),
        "jwks: is not JSON: not a JWKS",
        id="jwks-not-json",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "jwks": {"key": [KEY]}}),
        'jwks: is not a JWKS: it needs a "keys" list',
        id="jwks-no-keys",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "jwks": json.dumps({"keys": [{"n": "x", "e": "AQAB"}]})}),
        'jwks.keys[0]: is not a JWK: every key needs its "kty"',
        id="jwks-key-without-kty",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "jwks": {"keys": [{**KEY, "d": "secret"}]}}),
        "jwks.keys[0]: is a private key",
        id="jwks-private-key",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "jwks_uri": "ftp://keys.example.com/jwks.json"}),
        "jwks_uri: 'ftp://keys.example.com/jwks.json' is not an http(s) URL",
        id="jwks-uri-ftp",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "issuer": "my issuer"}),
        "issuer: 'my issuer' is neither an http(s) URL nor a name@host",
        id="issuer-words",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "issuer": "https://"}),
        "issuer: 'https://' is not an http(s) URL",
        id="issuer-no-host",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "jwks": {"keys": [KEY]}, "jwks_uri": "https://k.example/j"}),
        "jwks/jwks_uri: give one of them, not both",
        id="jwks-and-uri",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "audiences": [""]}),
        "audiences: holds '': empty values are not allowed",
        id="audience-empty",
    ),
    pytest.param(
        ("require_jwt", {**JWT, "from_headers": ["x jwt"]}),
        "from_headers: 'x jwt' is not a header name",
        id="header-name",
    ),
    pytest.param(
        ("make_jwks_unreachable", {**AT, "request_authentication": "Not_A_Name"}),
        "request_authentication: 'Not_A_Name' is not a resource name",
        id="request-authentication-name",
    ),
    # certificates
    pytest.param(
        ("expire_certificate", {**AT, "workload_labels": None}),
        "workload_labels: must name the pods whose certificate changes",
        id="certificate-without-labels",
    ),
]


@pytest.mark.parametrize(("call", "expected"), REFUSED_BEFORE_ANY_REQUEST)
def test_refused_before_any_request(api, configuration, call, expected):
    name, arguments = call
    with pytest.raises(ActivityFailed) as caught:
        getattr(actions, name)(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert api.request_log == []


@pytest.mark.parametrize(("call", "expected"), REFUSED_BEFORE_ANY_REQUEST)
def test_the_argument_checks_refuse_the_same_without_a_request(api, call, expected):
    name, arguments = call
    with pytest.raises(Exception) as caught:
        actions.check_arguments(name, arguments, {})
    assert expected in str(caught.value)
    assert api.request_log == []


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("set_mtls_mode", {**AT, "mode": "STRICT", "workload_labels": {"app": "ratingz"}}),
        ("deny_requests", {**AT, "destination_labels": {"app": "ratingz"}}),
        ("require_jwt", {**JWT, "workload_labels": {"app": "ratingz"}}),
    ],
    ids=["mtls", "deny", "jwt"],
)
def test_a_policy_for_a_workload_that_does_not_exist_is_refused_before_any_write(
    api, configuration, name, arguments
):
    pod(api, "ratings-v1-6b8f-a1", app="ratings", version="v1")
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        getattr(actions, name)(configuration=configuration, **arguments)
    message = str(caught.value)
    assert "_labels: no Pod in namespace 'bookinfo' carries app=ratingz" in message
    assert "pods there carry: app=ratings,version=v1" in message
    assert writes(api) == []
    for kind in ("PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication"):
        assert api.list(SECURITY, kind) == []


def test_a_certificate_on_a_cluster_is_refused_before_any_write(api, configuration):
    pod(api, "ratings-v1-6b8f-a1", app="ratings", version="v1")
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        actions.expire_certificate(configuration=configuration, **RATINGS)
    assert "workload_labels: certificates can be expired only on the local mesh" in str(
        caught.value
    )
    assert writes(api) == []
    assert api.list("v1", "ConfigMap", NAMESPACE) == []


def test_a_missing_request_authentication_lists_those_that_exist(api, configuration):
    with pytest.raises(ActivityFailed) as caught:
        actions.make_jwks_unreachable(
            request_authentication="jwt-example", configuration=configuration, **AT
        )
    assert "request_authentication: no RequestAuthentication 'jwt-example'" in str(caught.value)
    assert "existing: (none)" in str(caught.value)
    assert writes(api) == []


def _security_action(**arguments):
    return python_activity(
        "deny-ratings",
        "chaosmesh_py.security.actions",
        "deny_requests",
        **{"destination_labels": {"app": "ratings"}, "namespace": "${namespace}", **arguments},
    )


def test_validate_exits_2_naming_the_field(tmp_path):
    path = write_experiment(
        tmp_path,
        [delay_action(), _security_action(sources={"principals": ["spiffe://" + REVIEWS]})],
        controls=(CONTROL,),
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "deny-ratings: sources.principals: 'spiffe://" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_chaos_run_stops_before_anything_is_written(api, tmp_path):
    path = write_experiment(
        tmp_path, [delay_action(), _security_action(methods=["get"])], controls=(CONTROL,)
    )
    api.request_log.clear()
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 1, done.stderr
    assert "deny-ratings: methods: 'get' never matches" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert json.loads(journal_path.read_text())["run"] == []
    assert writes(api) == []
    assert api.list(SECURITY, "AuthorizationPolicy") == []
