"""Tokens in each state, checked by an independent verifier (PyJWT's decode with the public
key, as Envoy's jwt_authn checks them), and kept out of what the project writes."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chaosmesh_py.engine import redaction
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.security import tokens

ISSUER = "https://issuer.test"
AUDIENCE = "bookinfo"


def _pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _decode(token, public_key, algorithm="RS256"):
    return jwt.decode(token, public_key, algorithms=[algorithm], audience=AUDIENCE, issuer=ISSUER)


def test_a_valid_token_passes_an_independent_verifier(rsa_key):
    token = tokens.mint(_pem(rsa_key), ISSUER, [AUDIENCE], "alice", "valid", {"group": "dev"})
    claims = _decode(token, rsa_key.public_key())
    assert claims["sub"] == "alice"
    assert claims["group"] == "dev"
    assert 0 < claims["exp"] - time.time() <= tokens.LIFETIME_S


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        ("expired", jwt.ExpiredSignatureError),
        ("wrong-issuer", jwt.InvalidIssuerError),
        ("wrong-audience", jwt.InvalidAudienceError),
        ("bad-signature", jwt.InvalidSignatureError),
    ],
)
def test_each_bad_state_is_refused_for_its_own_reason(rsa_key, state, refusal):
    token = tokens.mint(_pem(rsa_key), ISSUER, [AUDIENCE], "alice", state)
    with pytest.raises(refusal):
        _decode(token, rsa_key.public_key())


def test_expired_is_beyond_envoys_clock_skew(rsa_key):
    token = tokens.mint(_pem(rsa_key), ISSUER, [AUDIENCE], "alice", "expired")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] < time.time() - 60 * 10


def test_a_jwk_gives_its_kid_and_algorithm_to_the_token():
    private_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key))
    jwk["kid"] = "key-1"
    for material in (jwk, json.dumps(jwk)):
        token = tokens.mint(material, ISSUER, [AUDIENCE], "bob", "valid")
        assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "key-1", "typ": "JWT"}
        _decode(token, private_key.public_key(), "ES256")


def test_a_bad_signature_keeps_the_kid_so_the_verifier_finds_the_key():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key)), "kid": "k"}
    token = tokens.mint(jwk, ISSUER, [AUDIENCE], "bob", "bad-signature")
    assert jwt.get_unverified_header(token)["kid"] == "k"
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(token, private_key.public_key())


def test_several_audiences_are_a_list_one_is_a_string(rsa_key):
    one = tokens.mint(_pem(rsa_key), ISSUER, ["a"], "s", "valid")
    two = tokens.mint(_pem(rsa_key), ISSUER, ["a", "b"], "s", "valid")
    assert jwt.decode(one, options={"verify_signature": False})["aud"] == "a"
    assert jwt.decode(two, options={"verify_signature": False})["aud"] == ["a", "b"]


def test_tokens_and_keys_are_hidden_from_logs_and_journals(rsa_key):
    pem = _pem(rsa_key)
    token = tokens.mint(pem, ISSUER, [AUDIENCE], "alice", "valid")
    hide = redaction.known()
    assert hide.text(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"
    assert hide.deep({"key": pem, "token": token}) == {"key": "***", "token": "***"}


def test_the_key_shows_no_material_in_its_repr(rsa_key):
    key = tokens.load_key(_pem(rsa_key), "signing_key")
    assert repr(key) == "SigningKey(algorithm='RS256', key_id=None)"


@pytest.mark.parametrize(
    ("material", "message"),
    [
        ("not a key at all", "is neither a PEM private key nor a JWK"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "is not a readable"),
        ('{"kty": "RSA", "n": "AQAB"}', "is not a usable JWK"),
        ('{"kty": "oct", "k": "c2VjcmV0"}', "has algorithm 'HS256'"),
    ],
)
def test_unusable_key_material_is_refused_naming_the_field(material, message):
    with pytest.raises(InvalidInput, match=f"signing_key: {message}") as refused:
        tokens.load_key(material, "signing_key")
    assert "AAAA" not in str(refused.value)


def test_a_public_jwk_cannot_sign(rsa_key):
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    with pytest.raises(InvalidInput, match="is a public JWK"):
        tokens.load_key(public, "signing_key")


def test_an_ed25519_key_is_refused():
    with pytest.raises(InvalidInput, match="not an RSA or EC"):
        tokens.load_key(_pem(ed25519.Ed25519PrivateKey.generate()), "signing_key")


def test_an_unknown_state_is_refused(rsa_key):
    with pytest.raises(InvalidInput, match="state: 'stale' is no token state"):
        tokens.mint(_pem(rsa_key), ISSUER, [AUDIENCE], "alice", "stale")
