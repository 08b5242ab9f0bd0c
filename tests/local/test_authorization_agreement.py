"""The local mesh's RBAC translation agrees with Istio's semantics, cell by cell: for a grid of
real requests (callers with and without a certificate, paths, methods, headers, tokens), what
the real Envoy answers equals what ``chaosmesh_py.istio.authorization.decide`` says Istio does."""

import itertools

import pytest

from chaosmesh_py.istio.authorization import RequestFacts, decide
from chaosmesh_py.localmesh.jwt_issuer import ISSUER
from tests.local.security_helpers import (
    authorization_policy,
    bearer,
    from_sidecar,
    issuer,
    request_authentication,
    to_pod,
    token,
)

pytestmark = pytest.mark.slow

HTTPBIN = {"matchLabels": {"app": "httpbin"}}
SLEEP = "cluster.local/ns/bookinfo/sa/sleep"

# Two realistic postures: a mix of ALLOW and DENY rules over every kind of field, and a
# deny-first posture with a mesh-wide DENY and no ALLOW.
SCENARIOS = {
    "allow-and-deny": [
        (
            "deny-delay-from-outside",
            {
                "selector": HTTPBIN,
                "action": "DENY",
                "rules": [
                    {
                        "from": [{"source": {"notNamespaces": ["bookinfo"]}}],
                        "to": [{"operation": {"paths": ["/delay/*"]}}],
                    }
                ],
            },
        ),
        (
            "deny-mallory-posts",
            {
                "selector": HTTPBIN,
                "action": "DENY",
                "rules": [
                    {
                        "to": [{"operation": {"methods": ["POST"]}}],
                        "when": [{"key": "request.headers[x-user]", "values": ["mallory"]}],
                    }
                ],
            },
        ),
        (
            "allow-some",
            {
                "selector": HTTPBIN,
                "rules": [
                    {
                        "from": [{"source": {"principals": [SLEEP]}}],
                        "to": [{"operation": {"paths": ["/headers", "/get"]}}],
                    },
                    {"from": [{"source": {"requestPrincipals": [f"{ISSUER}/alice"]}}]},
                    {
                        "to": [{"operation": {"methods": ["GET"], "paths": ["/status/*"]}}],
                        "when": [{"key": "request.auth.claims[groups]", "values": ["admins"]}],
                    },
                ],
            },
        ),
        (
            "allow-bookinfo-gets",
            {
                "selector": HTTPBIN,
                "rules": [
                    {
                        "from": [{"source": {"namespaces": ["bookinfo"]}}],
                        "to": [{"operation": {"methods": ["GET"], "notPaths": ["/headers"]}}],
                    }
                ],
            },
        ),
    ],
    "deny-first": [
        (
            "deny-plain-text-posts",
            {
                "action": "DENY",
                "rules": [
                    {
                        "from": [{"source": {"notPrincipals": ["*"]}}],
                        "to": [{"operation": {"notMethods": ["GET"]}}],
                    }
                ],
            },
        ),
        (
            "deny-productpage-status",
            {
                "selector": HTTPBIN,
                "action": "DENY",
                "rules": [
                    {
                        "from": [
                            {"source": {"principals": ["*/sa/bookinfo-productpage"]}},
                            {"source": {"requestPrincipals": ["*/bob"]}},
                        ],
                        "to": [{"operation": {"paths": ["/status/*"]}}],
                    }
                ],
            },
        ),
    ],
}
CALLERS = ("sleep", "productpage-v1", None)  # None: a client without a sidecar, plain text
PATHS = ("/headers", "/get", "/status/200", "/delay/0")
METHODS = ("GET", "POST")
USERS = (None, "mallory")
TOKENS = (None, ("alice", ["users"]), ("bob", ["admins"]))


SHADOW_DENIED = (
    "rbac.istio_dry_run_deny_.shadow_denied",
    "rbac.istio_dry_run_allow_.shadow_denied",
)


@pytest.mark.parametrize("dry_run", [False, True], ids=["enforced", "dry-run"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_envoy_decides_as_istio_does_on_every_cell(mesh, scenario, dry_run):
    """Enforced: Envoy's answer is Istio's decision. Dry run: every request passes, and the
    shadow counters say "denied" exactly where Istio would deny were the policies enforced."""
    policies = SCENARIOS[scenario]
    annotations = {"istio.io/dry-run": "true"} if dry_run else None
    request_authentication(
        mesh,
        "httpbin-jwt",
        {
            "selector": HTTPBIN,
            "jwtRules": [{"issuer": ISSUER, "jwksUri": issuer(mesh)["jwks_uri"]}],
        },
    )
    namespace_of = {"istio-system": "istio-system"}
    for name, spec in policies:
        namespace = "bookinfo" if "selector" in spec else "istio-system"
        namespace_of[name] = namespace
        authorization_policy(mesh, name, spec, namespace=namespace, annotations=annotations)
    resources = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {
                "name": name,
                "namespace": namespace_of[name],
                **({"annotations": annotations} if annotations else {}),
            },
            "spec": spec,
        }
        for name, spec in policies
    ]
    info = mesh.info()["workloads"]
    tokens = {
        None: None,
        **{
            subject: token(mesh, subject=subject, audience="any", groups=groups)
            for subject, groups in (t for t in TOKENS if t)
        },
    }
    differences = []
    cells = 0
    allowed = 0
    for caller, path, method, user, held in itertools.product(
        CALLERS, PATHS, METHODS, USERS, TOKENS
    ):
        subject = held[0] if held else None
        headers = {
            **({"x-user": user} if user else {}),
            **(bearer(tokens[subject]) if subject else {}),
        }
        before = shadow_denials(mesh)
        if caller is None:
            answer = to_pod(mesh, "httpbin-v1", path, method=method, headers=headers)
        else:
            answer = from_sidecar(
                mesh, "httpbin", path, workload=caller, method=method, headers=headers
            )
        envoy_allowed = answer != (403, "RBAC: access denied")
        if dry_run:
            assert envoy_allowed, (caller, method, path)  # never enforced
            envoy_allowed = shadow_denials(mesh) == before
        facts = RequestFacts(
            namespace="bookinfo",
            labels={"app": "httpbin", "version": "v1"},
            port=8000,
            source_principal=info[caller]["principal"] if caller else None,
            source_namespace="bookinfo" if caller else None,
            source_ip="127.0.0.1",
            method=method,
            path=path,
            headers={"x-user": user} if user else {},
            request_principal=f"{ISSUER}/{subject}" if subject else None,
            claims={"iss": ISSUER, "sub": subject, "groups": held[1]} if held else None,
        )
        decision = decide(resources, facts, enforce_dry_run=dry_run)
        cells += 1
        allowed += envoy_allowed
        if decision.allowed != envoy_allowed:
            differences.append((caller, method, path, user, subject, answer[0], decision.reason))
    assert cells == 3 * 4 * 2 * 2 * 3
    assert 0.1 * cells < allowed < 0.9 * cells  # a grid that tells allowed from denied
    assert not differences, differences


def shadow_denials(mesh):
    """Shadow denials counted on httpbin's inbounds (v1 and v2: a caller's sidecar picks one)."""
    stats = mesh.envoy.stats(r"shadow_denied")
    workloads = mesh.info()["workloads"]
    return sum(
        stats.get(f"http.{workloads[w]['inbound_stat_prefix']}.{name}", 0)
        for w in ("httpbin-v1", "httpbin-v2")
        for name in SHADOW_DENIED
    )
