"""Istio's webhook rules for the security kinds (istio/security_validation.py), as
validation.admission_errors applies them to every object the project is about to send: cases
after istio/istio pkg/config/validation (ValidatePeerAuthentication,
ValidateAuthorizationPolicy, validateJwtRule), written here in our own words."""

import pytest

from chaosmesh_py.istio.validation import admission_errors

SELECTOR = {"selector": {"matchLabels": {"app": "ratings"}}}
KEYS = '{"keys": [{"kty": "RSA", "e": "AQAB", "n": "xAE7"}]}'


def errors(kind, spec):
    return admission_errors(kind, {"kind": kind, "spec": spec})


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("PeerAuthentication", {"mtls": {"mode": "STRICT"}}),
        ("PeerAuthentication", {**SELECTOR, "portLevelMtls": {"9080": {"mode": "DISABLE"}}}),
        ("AuthorizationPolicy", {"action": "DENY", "rules": [{}]}),
        ("AuthorizationPolicy", {"action": "ALLOW"}),  # no rules: denies all, but valid
        (
            "AuthorizationPolicy",
            {
                "action": "DENY",
                "rules": [
                    {
                        "from": [{"source": {"ipBlocks": ["10.0.0.0/8", "192.168.1.7"]}}],
                        "to": [{"operation": {"methods": ["GET"], "paths": ["/x"]}}],
                    }
                ],
            },
        ),
        ("RequestAuthentication", {"jwtRules": [{"issuer": "a@b.c", "jwks": KEYS}]}),
        ("RequestAuthentication", {"jwtRules": [{"jwksUri": "https://k.example/j.json"}]}),
    ],
)
def test_istio_admits(kind, spec):
    assert errors(kind, spec) == []


@pytest.mark.parametrize(
    ("kind", "spec", "expected"),
    [
        (
            "PeerAuthentication",
            {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"9080": {"mode": "DISABLE"}}},
            "mesh/namespace peer authentication cannot have port level mTLS",
        ),
        ("PeerAuthentication", {**SELECTOR, "portLevelMtls": {}}, "must have at least one"),
        (
            "PeerAuthentication",
            {**SELECTOR, "portLevelMtls": {"0": {"mode": "DISABLE"}}},
            "must be in range 1..65535",
        ),
        ("AuthorizationPolicy", {"action": "DENY"}, "DENY action without `rules`"),
        ("AuthorizationPolicy", {"rules": [{"from": []}]}, "`from` must not be empty"),
        ("AuthorizationPolicy", {"rules": [{"from": [{"source": {}}]}]}, "`from.source`"),
        (
            "AuthorizationPolicy",
            {"rules": [{"from": [{"source": {"principals": [""]}}]}]},
            "empty value not allowed, found in principals",
        ),
        (
            "AuthorizationPolicy",
            {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/40"]}}]}]},
            "bad IP (10.0.0.0/40)",
        ),
        ("AuthorizationPolicy", {"rules": [{"to": [{"operation": {}}]}]}, "`to.operation`"),
        (
            "RequestAuthentication",
            {"jwtRules": [{"audiences": [""], "issuer": "a@b.c"}]},
            "audience must be non-empty",
        ),
        ("RequestAuthentication", {"jwtRules": [{}]}, "issuer or jwksUri must be non-empty"),
        (
            "RequestAuthentication",
            {"jwtRules": [{"issuer": "a@b.c", "jwksUri": "ftp://k.example/j"}]},
            "URI scheme 'ftp' is not supported",
        ),
        (
            "RequestAuthentication",
            {"jwtRules": [{"issuer": "a@b.c", "jwks": "{"}]},
            "jwks parse error",
        ),
        (
            "RequestAuthentication",
            {"jwtRules": [{"issuer": "a@b.c", "fromHeaders": [{"prefix": "Bearer "}]}]},
            "location header name must be non-empty",
        ),
    ],
)
def test_istio_refuses(kind, spec, expected):
    found = errors(kind, spec)
    assert any(expected in e for e in found), found
