"""RequestAuthentication on the local mesh, through the real Envoy: istiod's jwt_authn filter on
each pod's inbound, with keys from the mesh's own JWT issuer fetched by the local istiod."""

import json

import pytest

from chaosmesh_py.istio import status
from chaosmesh_py.localmesh.jwt_issuer import ISSUER
from tests.local.security_helpers import (
    authorization_policy,
    bearer,
    delete,
    from_sidecar,
    issuer,
    request_authentication,
    send,
    settle,
    stranger_key,
    to_pod,
    token,
)

pytestmark = pytest.mark.slow

HTTPBIN = {"matchLabels": {"app": "httpbin"}}
DENIED = (403, "RBAC: access denied")


def require_jwt(mesh, *, jwks_uri=None, **rule):
    request_authentication(
        mesh,
        "httpbin-jwt",
        {
            "selector": HTTPBIN,
            "jwtRules": [
                {
                    "issuer": ISSUER,
                    "jwksUri": jwks_uri or issuer(mesh)["jwks_uri"],
                    "audiences": ["httpbin"],
                    **rule,
                }
            ],
        },
    )


def call(mesh, headers=None, path="/headers"):
    return from_sidecar(mesh, "httpbin", path, headers=headers)


def test_the_mesh_info_names_its_issuer_and_the_key_file_is_private(mesh):
    info = issuer(mesh)
    assert info["issuer"] == ISSUER
    assert info["jwks_uri"].startswith("http://127.0.0.1:")
    mode = __import__("os").stat(info["private_key_file"]).st_mode & 0o777
    assert mode == 0o600
    assert "PRIVATE KEY" not in json.dumps(mesh.info())


def test_token_states_answer_as_envoy_does(mesh):
    require_jwt(mesh)
    assert call(mesh, bearer(token(mesh)))[0] == 200
    assert call(mesh, bearer(token(mesh, expires_in_s=-300))) == (401, "Jwt is expired")
    assert call(mesh, bearer(token(mesh, key=stranger_key()))) == (401, "Jwt verification fails")
    wrong_issuer = token(mesh, iss="https://somebody.else")
    assert call(mesh, bearer(wrong_issuer)) == (401, "Jwt issuer is not configured")
    wrong_audience = token(mesh, audience="reviews")
    assert call(mesh, bearer(wrong_audience)) == (403, "Audiences in Jwt are not allowed")


def test_a_request_without_a_token_passes_until_a_policy_requires_a_request_principal(mesh):
    """The missing-token trap: RequestAuthentication alone refuses bad tokens, not absent ones."""
    require_jwt(mesh)
    assert call(mesh)[0] == 200
    authorization_policy(
        mesh,
        "require-jwt",
        {
            "selector": HTTPBIN,
            "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
        },
    )
    assert call(mesh) == DENIED
    assert call(mesh, bearer(token(mesh)))[0] == 200


def test_request_principals_match_iss_slash_sub(mesh):
    require_jwt(mesh)
    authorization_policy(
        mesh,
        "only-alice",
        {
            "selector": HTTPBIN,
            "rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/alice"]}}]}],
        },
    )
    assert call(mesh, bearer(token(mesh, subject="alice")))[0] == 200
    assert call(mesh, bearer(token(mesh, subject="bob"))) == DENIED


def test_claims_conditions_plain_and_nested_and_list_valued(mesh):
    require_jwt(mesh)
    authorization_policy(
        mesh,
        "group-and-tier",
        {
            "selector": HTTPBIN,
            "rules": [
                {
                    "when": [
                        {"key": "request.auth.claims[groups]", "values": ["group1"]},
                        {"key": "request.auth.claims[account][tier]", "values": ["gold"]},
                    ]
                }
            ],
        },
    )
    good = token(mesh, groups=["group2", "group1"], account={"tier": "gold"})
    assert call(mesh, bearer(good))[0] == 200
    wrong_group = token(mesh, groups=["group2"], account={"tier": "gold"})
    assert call(mesh, bearer(wrong_group)) == DENIED
    wrong_tier = token(mesh, groups="group1", account={"tier": "silver"})
    assert call(mesh, bearer(wrong_tier)) == DENIED


def test_an_unreachable_jwks_refuses_every_token(mesh):
    """istiod's fail-closed key: nobody holds it, so even a good token fails verification."""
    require_jwt(mesh, jwks_uri="http://127.0.0.1:1/jwks.json")
    assert call(mesh, bearer(token(mesh))) == (401, "Jwt verification fails")
    assert call(mesh)[0] == 200  # no token: still passes
    delete(mesh, "RequestAuthentication", "httpbin-jwt")
    require_jwt(mesh)  # reachable again: the same token verifies
    assert call(mesh, bearer(token(mesh)))[0] == 200


def test_a_jwks_uri_that_serves_no_jwks_counts_as_unreachable(mesh):
    not_jwks = f"{mesh.info()['workloads']['httpbin-v1']['app_url']}/headers"
    require_jwt(mesh, jwks_uri=not_jwks)
    assert call(mesh, bearer(token(mesh))) == (401, "Jwt verification fails")


def test_inline_jwks_is_used_as_is(mesh):
    import urllib.request

    with urllib.request.urlopen(issuer(mesh)["jwks_uri"], timeout=5) as response:
        jwks = response.read().decode()
    request_authentication(
        mesh,
        "inline",
        {"selector": HTTPBIN, "jwtRules": [{"issuer": ISSUER, "jwks": jwks}]},
    )
    assert call(mesh, bearer(token(mesh)))[0] == 200
    assert call(mesh, bearer(token(mesh, key=stranger_key()))) == (401, "Jwt verification fails")


def test_the_token_is_removed_unless_forward_original_token(mesh):
    require_jwt(mesh)
    seen = json.loads(call(mesh, bearer(token(mesh)))[1])["headers"]
    assert "authorization" not in {k.lower() for k in seen}
    delete(mesh, "RequestAuthentication", "httpbin-jwt")
    require_jwt(mesh, forwardOriginalToken=True)
    seen = json.loads(call(mesh, bearer(token(mesh)))[1])["headers"]
    assert "authorization" in {k.lower() for k in seen}


def test_from_headers_with_a_prefix_and_from_params(mesh):
    require_jwt(
        mesh,
        fromHeaders=[{"name": "x-jwt-assertion", "prefix": "Token "}],
        fromParams=["access_token"],
    )
    good = token(mesh)
    assert call(mesh, {"x-jwt-assertion": f"Token {good}"})[0] == 200
    assert call(mesh, path=f"/headers?access_token={good}")[0] == 200
    bad = token(mesh, key=stranger_key())
    assert call(mesh, {"x-jwt-assertion": f"Token {bad}"}) == (401, "Jwt verification fails")
    # The default location is no longer read: a token there is as good as none.
    assert call(mesh, bearer(bad))[0] == 200


def test_two_request_authentications_on_one_pod_merge(mesh):
    """istiod merges every jwtRule that applies: a token of either issuer verifies."""
    require_jwt(mesh)
    import urllib.request

    with urllib.request.urlopen(issuer(mesh)["jwks_uri"], timeout=5) as response:
        jwks = response.read().decode()
    request_authentication(
        mesh,
        "second-issuer",
        {"selector": HTTPBIN, "jwtRules": [{"issuer": "https://second.example", "jwks": jwks}]},
    )
    assert call(mesh, bearer(token(mesh)))[0] == 200
    assert call(mesh, bearer(token(mesh, iss="https://second.example")))[0] == 200
    third = token(mesh, iss="https://third.example")
    assert call(mesh, bearer(third)) == (401, "Jwt issuer is not configured")


def test_a_client_without_a_sidecar_meets_the_same_filter(mesh):
    require_jwt(mesh)
    settle(mesh)
    assert to_pod(mesh, "httpbin-v1", "/get", headers=bearer(token(mesh, expires_in_s=-300))) == (
        401,
        "Jwt is expired",
    )


def test_an_inline_jwks_envoy_refuses_is_reported_on_the_status_and_the_rest_runs(mesh):
    request_authentication(
        mesh,
        "broken",
        {"selector": HTTPBIN, "jwtRules": [{"issuer": ISSUER, "jwks": '{"keys": []}'}]},
    )
    stored = mesh.api.get("security.istio.io/v1", "RequestAuthentication", "bookinfo", "broken")
    reason = status.rejection(stored, stored["metadata"]["generation"])
    assert reason is not None and "jwks" in reason.lower()
    # Envoy runs the mesh without it: no jwt_authn on httpbin, requests pass.
    assert call(mesh, bearer(token(mesh, key=stranger_key())))[0] == 200


def test_a_rule_without_keys_is_said_unsupported_and_refuses_every_token(mesh):
    request_authentication(
        mesh,
        "discovery",
        {"selector": HTTPBIN, "jwtRules": [{"issuer": ISSUER}]},
    )
    stored = mesh.api.get("security.istio.io/v1", "RequestAuthentication", "bookinfo", "discovery")
    assert "OpenID discovery" in (status.not_supported(stored) or "")
    assert call(mesh, bearer(token(mesh))) == (401, "Jwt verification fails")


def test_a_request_authentication_on_the_ingress_gateway(mesh):
    """istio.io's JWT task at the edge: the gateway verifies, a missing token passes."""
    request_authentication(
        mesh,
        "ingress-jwt",
        {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "jwtRules": [{"issuer": ISSUER, "jwksUri": issuer(mesh)["jwks_uri"]}],
        },
        namespace="istio-system",
    )
    page = f"{mesh.info()['ingress_url']}/productpage"
    expired = bearer(token(mesh, expires_in_s=-300))
    assert send(page, headers=expired) == (401, "Jwt is expired")
    assert send(page, headers=bearer(token(mesh)), timeout=10)[0] == 200
    assert send(page, timeout=10)[0] == 200
