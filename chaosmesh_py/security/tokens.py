"""JWTs in each state a RequestAuthentication tells apart, minted for the policy matrix.

``mint(key, issuer, audiences, subject, state)`` signs with PyJWT: the key is a private RSA or EC
key, as PEM or as a JWK (a JSON object, or its text), or a ``SigningKey`` already loaded. The
states and what Envoy's ``jwt_authn`` (as istiod configures it) answers to each:

=================  ==============================================  ============================
state              the token                                       Envoy
=================  ==============================================  ============================
``valid``          signed by the key, issuer and audiences right,  passes; ``requestPrincipal``
                   expires in 10 minutes                           is ``<iss>/<sub>``
``expired``        as valid, but expired an hour ago (past the     401 ``Jwt is expired``
                   60 s clock skew Envoy allows)
``wrong-issuer``   as valid, another issuer                        401 ``Jwt issuer is not
                                                                   configured``
``wrong-audience`` as valid, an audience nobody configured         403 ``Audiences in Jwt are
                                                                   not allowed``
``bad-signature``  as valid, signed by a key nobody holds (same    401 ``Jwt verification
                   algorithm and ``kid``)                          fails``
``none``           no token at all                                 passes RequestAuthentication
                                                                   alone (the missing-token
                                                                   trap)
=================  ==============================================  ============================

A token and a private key are secrets: each one minted or loaded here is handed to
``chaosmesh_py.engine.redaction.remember`` at once, so the journal, Chaos Toolkit's log and the
ledger show ``***`` wherever one would appear. Callers report the state's name, never the
token.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosmesh_py.engine import redaction
from chaosmesh_py.errors import InvalidInput

VALID = "valid"
EXPIRED = "expired"
WRONG_ISSUER = "wrong-issuer"
WRONG_AUDIENCE = "wrong-audience"
BAD_SIGNATURE = "bad-signature"
NO_TOKEN = "none"
# The states a minted token can be in, and every state the matrix knows ("none": no token).
SIGNED_STATES = (VALID, EXPIRED, WRONG_ISSUER, WRONG_AUDIENCE, BAD_SIGNATURE)
STATES = (*SIGNED_STATES, NO_TOKEN)

LIFETIME_S = 600
# Envoy's jwt_authn allows 60 s of clock skew by default: an hour is expired beyond doubt.
EXPIRED_AGO_S = 3600
# Names no RequestAuthentication would configure (.invalid is reserved, RFC 2606).
WRONG_ISSUER_NAME = "https://wrong-issuer.chaosmesh.invalid"
WRONG_AUDIENCE_NAME = "wrong-audience.chaosmesh.invalid"

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign: its algorithm and ``kid`` (from a JWK; None for PEM, so
    Envoy tries every key of the JWKS with that algorithm). Its repr shows no key material."""

    algorithm: str
    key_id: str | None
    private_key: Any = field(repr=False, compare=False)


def load_key(material: str | bytes | Mapping[str, Any] | SigningKey, field_name: str) -> SigningKey:
    """``material`` (PEM text, a private JWK as a mapping or JSON text) as a SigningKey;
    InvalidInput naming ``field_name`` when it is neither, or not a private RSA / EC key. The
    material is remembered as a secret."""
    if isinstance(material, SigningKey):
        return material
    redaction.remember({"signing_key": _as_text(material)})
    text = _as_text(material).strip()
    if isinstance(material, Mapping) or text.startswith("{"):
        return _from_jwk(material if isinstance(material, Mapping) else text, field_name)
    if text.startswith("-----BEGIN"):
        return _from_pem(text, field_name)
    raise InvalidInput(
        field_name,
        "is neither a PEM private key nor a JWK",
        "give an RSA or EC private key as PEM (-----BEGIN PRIVATE KEY-----) or as a JWK",
    )


def load_key_file(path: str | Path, field_name: str) -> SigningKey:
    """The signing key in the file ``path`` (PEM or JWK)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(
            field_name, f"cannot read {str(path)!r}: {error}", "a readable PEM or JWK file"
        ) from error
    return load_key(text, field_name)


# The shared interface (issue 12) names all six positionally.
def mint(  # noqa: PLR0917
    private_key_pem_or_jwk: str | bytes | Mapping[str, Any] | SigningKey,
    issuer: str,
    audiences: Sequence[str],
    subject: str,
    state: str,
    claims: Mapping[str, Any] | None = None,
    *,
    now: float | None = None,
) -> str:
    """A compact JWT in ``state`` (one of SIGNED_STATES; see the module docstring), with
    ``claims`` added to the payload. The token is remembered as a secret before it is returned.
    """
    if state not in SIGNED_STATES:
        raise InvalidInput("state", f"{state!r} is no token state", f"one of {list(SIGNED_STATES)}")
    key = load_key(private_key_pem_or_jwk, "private_key_pem_or_jwk")
    import jwt

    issued = int(time.time() if now is None else now)
    if state == EXPIRED:
        issued -= EXPIRED_AGO_S + LIFETIME_S
    payload: dict[str, Any] = {
        **(claims or {}),
        "iss": WRONG_ISSUER_NAME if state == WRONG_ISSUER else issuer,
        "sub": subject,
        "iat": issued,
        "exp": issued + LIFETIME_S,
    }
    audience = [WRONG_AUDIENCE_NAME] if state == WRONG_AUDIENCE else list(audiences)
    if audience:
        payload["aud"] = audience[0] if len(audience) == 1 else audience
    signer = _stranger(key.algorithm) if state == BAD_SIGNATURE else key.private_key
    headers = {"kid": key.key_id} if key.key_id else None
    token = jwt.encode(payload, signer, algorithm=key.algorithm, headers=headers)
    redaction.remember({"token": token})
    return token


def request_principal(issuer: str, subject: str) -> str:
    """What Istio names the request's principal once a valid token passed: ``<iss>/<sub>``."""
    return f"{issuer}/{subject}"


def _as_text(material: str | bytes | Mapping[str, Any]) -> str:
    if isinstance(material, bytes):
        return material.decode("utf-8", errors="replace")
    if isinstance(material, Mapping):
        return json.dumps(dict(material), sort_keys=True)
    return material


def _from_pem(text: str, field_name: str) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        private_key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as error:
        # The message never quotes the key: it says what is wrong with it.
        raise InvalidInput(
            field_name,
            f"is not a readable unencrypted PEM private key ({type(error).__name__})",
            "an RSA or EC private key in PEM, without a passphrase",
        ) from None
    if isinstance(private_key, rsa.RSAPrivateKey):
        return SigningKey("RS256", None, private_key)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        algorithm = _EC_ALGORITHMS.get(private_key.curve.name)
        if algorithm is not None:
            return SigningKey(algorithm, None, private_key)
    raise InvalidInput(
        field_name,
        f"is a {type(private_key).__name__}, not an RSA or EC (P-256/384/521) key",
        "an RSA or EC private key, as RequestAuthentication's JWKS can hold",
    )


def _from_jwk(jwk: str | Mapping[str, Any], field_name: str) -> SigningKey:
    import jwt

    try:
        parsed = jwk if isinstance(jwk, Mapping) else json.loads(jwk)
        loaded = jwt.PyJWK(dict(parsed))
    except (ValueError, TypeError, KeyError, jwt.PyJWTError) as error:
        raise InvalidInput(
            field_name,
            f"is not a usable JWK ({type(error).__name__})",
            'a private RSA or EC JWK ({"kty": "RSA", "n": ..., "d": ...})',
        ) from None
    if loaded.algorithm_name not in ("RS256", "RS384", "RS512", *_EC_ALGORITHMS.values()):
        raise InvalidInput(
            field_name,
            f"has algorithm {loaded.algorithm_name!r}",
            "an RSA (RS256/384/512) or EC (ES256/384/512) key",
        )
    if not hasattr(loaded.key, "sign"):
        raise InvalidInput(
            field_name,
            'is a public JWK: signing needs the private key (its "d")',
            "give the private JWK, or a PEM private key",
        )
    return SigningKey(loaded.algorithm_name, loaded.key_id, loaded.key)


@functools.cache
def _stranger(algorithm: str) -> Any:
    """A private key for ``algorithm`` that nobody else holds: one per process."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if algorithm.startswith("RS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    return ec.generate_private_key(curve[algorithm])
