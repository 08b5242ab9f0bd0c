"""RequestAuthentication -> Envoy's ``jwt_authn`` HTTP filter, as istiod builds it for an inbound.

Pure. After istio/istio ``pilot/pkg/security/authn/policy_applier.go`` (``newPolicyApplier``,
``convertToEnvoyJwtConfig``) and ``pilot/pkg/model/jwks_resolver.go``:

- The RequestAuthentications that attach to the pod (as AuthorizationPolicies:
  ``authorization.policies_for``) merge: all their ``jwtRules``, sorted by issuer (stable).
- Rule ``i`` is provider ``origins-<i>``: ``issuer``, ``audiences``, ``forward``
  (``forwardOriginalToken``), ``from_headers`` (``name`` + ``value_prefix``), ``from_params``,
  ``from_cookies``, ``forward_payload_header`` (``outputPayloadToHeader``), ``claim_to_headers``
  (``outputClaimToHeaders``), ``payload_in_metadata: payload`` (what AuthorizationPolicy's
  ``requestPrincipals`` and ``request.auth.claims`` read) with ``scope`` and ``permission``
  (and ``spaceDelimitedClaims``) normalised as space-delimited, and the JWKS inlined as
  ``local_jwks`` (istiod's default fetch mode, ``istiod``).
- One rule for prefix ``/``: with one provider, ``requires_any [origins-0, allow_missing]``;
  with several, ``requires_any [origins-0, ..., origins-n, requires_all [each requires_any
  [origins-i, allow_missing]]]``. So a token that fails verification is refused with 401 and a
  request with **no token passes**: only an AuthorizationPolicy requiring ``requestPrincipals``
  refuses it (the missing-token trap). ``bypass_cors_preflight`` as istiod.

JWKS: ``jwks`` inline is used as it is; ``jwksUri`` is fetched by the local "istiod" (the mesh's
control loop, ``chaosmesh_py.localmesh.jwks``) and passed in as ``fetched``; a URI whose fetch
failed (or is absent) gets istiod's ``PublicOnlyJwks``: a real RSA key whose private half was
discarded, so every token is refused with "Jwt verification fails" (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_py.localmesh.authorization import (
    JWT_FILTER,
    JWT_PAYLOAD,
    policy_attachment_problems,
)
from chaosmesh_py.localmesh.envoy import JsonDict

JWT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
SPACE_DELIMITED_CLAIMS = ("permission", "scope")  # istiod's defaults, always normalised
# istiod's PublicOnlyJwks (pilot/pkg/model/jwks_resolver.go): the key nobody holds.
PUBLIC_ONLY_JWKS = (
    '{"keys":[{"kty":"RSA","e":"AQAB","n":"0xObjM0UvS_oaazjpEYlAbwctEJ4L8pH3OuTb7qth7gUwqet-EzQB4dg'
    "FdvSdMgrLnSncQGRjpEYz3F3viIbH-3EN3TxSlPNviHxeOdyiBVfumN8dMxbLvVJUpfNOnvmMxJcl-8NNjAwcOjk4otSAL"
    "aYgYYyOPyvKtgVdrQr-FoubWX4yrjxW-MJ2-7OBeepUUNOsVwGV23YX03sVkkyvY3otRflkBcY3_HKpBxJl9wk2GyOShN4"
    "_PNUF9-vwfnvOXMbCDX-w4PTef4geeb_GiT40YCKHTKMSPVanGRn5GExIWmki-mmqh94-mPTJyBR74ShspL3BxPZitDL574"
    'T1w"}]}'
)


def unsupported(request_authentication: Mapping[str, Any]) -> list[str]:
    """What of a RequestAuthentication the local mesh does not apply, one phrase each."""
    spec = request_authentication.get("spec") or {}
    problems = list(policy_attachment_problems(request_authentication))
    for index, rule in enumerate(spec.get("jwtRules") or []):
        if not rule.get("jwks") and not rule.get("jwksUri"):
            problems.append(
                f"jwtRules[{index}]: OpenID discovery of the issuer's keys (no jwksUri): every "
                "token for it is refused"
            )
    return problems


def jwks_uris(request_authentications: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every ``jwksUri`` the local istiod has to fetch (rules with inline ``jwks`` need none)."""
    uris = {
        str(rule["jwksUri"])
        for resource in request_authentications
        for rule in (resource.get("spec") or {}).get("jwtRules") or []
        if rule.get("jwksUri") and not rule.get("jwks")
    }
    return sorted(uris)


def jwt_filter(
    request_authentications: Sequence[Mapping[str, Any]],
    fetched: Mapping[str, str | None],
) -> JsonDict | None:
    """The ``jwt_authn`` filter for the RequestAuthentications that apply to one sidecar
    (``authorization.policies_for``), None without any rule. ``fetched``: each ``jwksUri``'s
    JWKS as fetched, None where the fetch failed."""
    rules = [
        rule
        for resource in request_authentications
        for rule in (resource.get("spec") or {}).get("jwtRules") or []
    ]
    if not rules:
        return None
    rules.sort(key=lambda rule: str(rule.get("issuer") or ""))
    providers: dict[str, JsonDict] = {}
    each: list[JsonDict] = []
    for index, rule in enumerate(rules):
        name = f"origins-{index}"
        providers[name] = _provider(rule, fetched)
        each.append({"requires_any": {"requirements": [{"provider_name": name}, _ALLOW_MISSING]}})
    if len(each) == 1:
        requires = each[0]
    else:
        alternatives = [{"provider_name": name} for name in providers]
        requires = {
            "requires_any": {
                "requirements": [*alternatives, {"requires_all": {"requirements": each}}]
            }
        }
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": JWT_TYPE,
            "providers": providers,
            "rules": [{"match": {"prefix": "/"}, "requires": requires}],
            "bypass_cors_preflight": True,
        },
    }


_ALLOW_MISSING: JsonDict = {"allow_missing": {}}


def _provider(rule: Mapping[str, Any], fetched: Mapping[str, str | None]) -> JsonDict:
    provider: JsonDict = {"issuer": str(rule.get("issuer") or "")}
    if rule.get("audiences"):
        provider["audiences"] = list(rule["audiences"])
    if rule.get("forwardOriginalToken"):
        provider["forward"] = True
    if rule.get("outputPayloadToHeader"):
        provider["forward_payload_header"] = rule["outputPayloadToHeader"]
    provider["payload_in_metadata"] = JWT_PAYLOAD
    extra = set(rule.get("spaceDelimitedClaims") or ())
    provider["normalize_payload_in_metadata"] = {
        "space_delimited_claims": sorted(extra | set(SPACE_DELIMITED_CLAIMS))
    }
    claims = [
        {"header_name": item["header"], "claim_name": item["claim"]}
        for item in rule.get("outputClaimToHeaders") or []
    ]
    if claims:
        provider["claim_to_headers"] = claims
    headers = [
        {"name": h["name"], **({"value_prefix": h["prefix"]} if h.get("prefix") else {})}
        for h in rule.get("fromHeaders") or []
    ]
    if headers:
        provider["from_headers"] = headers
    if rule.get("fromParams"):
        provider["from_params"] = list(rule["fromParams"])
    if rule.get("fromCookies"):
        provider["from_cookies"] = list(rule["fromCookies"])
    provider["local_jwks"] = {"inline_string": jwks_of(rule, fetched)}
    return provider


def jwks_of(rule: Mapping[str, Any], fetched: Mapping[str, str | None]) -> str:
    """istiod's ``BuildLocalJwks``: inline ``jwks`` as is, else the fetched one, else the key
    nobody holds."""
    if rule.get("jwks"):
        return str(rule["jwks"])
    return fetched.get(str(rule.get("jwksUri") or "")) or PUBLIC_ONLY_JWKS
