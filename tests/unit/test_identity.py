"""Workload identities (chaosmesh_py.istio.identity) and the local CA's certificates
(chaosmesh_py.localmesh.ca) as a peer checks them."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from chaosmesh_py.istio.identity import principal, spiffe_id
from chaosmesh_py.localmesh.ca import LocalCA
from chaosmesh_py.localmesh.identities import EXPIRED, ROTATED, Wanted, wanted_states
from chaosmesh_py.localmesh.topology import Workload


def test_identities_are_named_as_istio_names_them():
    assert spiffe_id("bookinfo", "bookinfo-ratings") == (
        "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"
    )
    expected = "cluster.local/ns/bookinfo/sa/bookinfo-ratings"
    assert principal("bookinfo", "bookinfo-ratings") == expected
    assert spiffe_id("a", "b", trust_domain="example.org") == "spiffe://example.org/ns/a/sa/b"


@pytest.fixture(scope="module")
def ca():
    return LocalCA()


def test_a_workload_certificate_carries_its_spiffe_id_and_chains_to_the_root(ca):
    issued = ca.issue(spiffe_id("bookinfo", "bookinfo-ratings"))
    certificate = x509.load_pem_x509_certificate(issued.certificate_pem)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # the subject is empty, as Istio's
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"
    ]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usage} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
    certificate.verify_directly_issued_by(ca.root)
    lifetime = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=23) < lifetime <= datetime.timedelta(hours=24)  # Istio's
    assert issued.serial_hex == f"{certificate.serial_number:x}"
    assert not issued.expired()


def test_an_expired_certificate_ended_before_now_and_a_new_one_has_a_new_key(ca):
    identity = spiffe_id("bookinfo", "bookinfo-ratings")
    expired = ca.issue(identity, expired=True)
    assert expired.expired()
    assert x509.load_pem_x509_certificate(expired.certificate_pem).not_valid_after_utc < (
        datetime.datetime.now(datetime.UTC)
    )
    first, second = ca.issue(identity), ca.issue(identity)
    assert first.serial != second.serial and first.private_key_pem != second.private_key_pem


def test_the_key_is_never_in_a_repr(ca):
    issued = ca.issue(spiffe_id("bookinfo", "sleep"))
    assert b"PRIVATE KEY" in issued.private_key_pem
    assert "PRIVATE" not in repr(issued)
    key = x509.load_pem_x509_certificate(issued.certificate_pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)


def state(name, selector, value, namespace="bookinfo", uid="u1"):
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": {"security.chaosmesh.io/certificate": "true"},
        },
        "data": {"selector": selector, "state": value},
    }


RATINGS = Workload("ratings-v1", "bookinfo", {"app": "ratings", "version": "v1"}, 1, 2, 3,
                   pod="ratings-v1-abc")  # fmt: skip
REVIEWS = Workload("reviews-v2", "bookinfo", {"app": "reviews", "version": "v2"}, 4, 5, 6,
                   pod="reviews-v2-abc")  # fmt: skip


def test_certificate_states_select_pods_of_their_namespace_by_labels():
    wanted = wanted_states([state("c", '{"app": "ratings"}', "expired")], [RATINGS, REVIEWS])
    assert wanted == {"default~bookinfo~ratings-v1-abc": Wanted(EXPIRED, ("u1",))}
    other_namespace = state("c", '{"app": "ratings"}', "expired", namespace="default")
    assert wanted_states([other_namespace], [RATINGS]) == {}
    both = [
        state("r", '{"app": "ratings"}', "rotated", uid="u2"),
        state("e", '{"version": "v1"}', "expired", uid="u3"),
    ]
    # Expired wins where both select a pod.
    assert wanted_states(both, [RATINGS])["default~bookinfo~ratings-v1-abc"].state == EXPIRED
    assert wanted_states(both[:1], [RATINGS])["default~bookinfo~ratings-v1-abc"] == Wanted(
        ROTATED, ("u2",)
    )


@pytest.mark.parametrize(
    ("selector", "value"),
    [
        ("not json", "expired"),
        ('["app"]', "expired"),
        ("{}", "expired"),
        ('{"app": "ratings"}', "revoked"),
    ],
)
def test_a_certificate_state_that_cannot_be_read_is_ignored(selector, value, caplog):
    assert wanted_states([state("bad", selector, value)], [RATINGS]) == {}
    assert "ConfigMap bookinfo/bad is ignored" in caplog.text
