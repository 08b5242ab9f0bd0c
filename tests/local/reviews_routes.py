"""Reviews' routing written as a user would, through the API (the real `kubernetes` client over
HTTP), for the tests that measure what the data plane then does with it."""

from chaosmesh_py.kube import Kube, ResourceRef, virtual_service_kind

REVIEWS = ResourceRef(virtual_service_kind(), "bookinfo", "reviews")


def weighted(weights, **rule):
    """One catch-all rule splitting reviews across subsets, e.g. {"v1": 90, "v3": 10}."""
    return {
        "name": "split",
        "route": [
            {"destination": {"host": "reviews", "subset": subset}, "weight": weight}
            for subset, weight in weights.items()
        ],
        **rule,
    }


def to_subset(subset, **rule):
    """One catch-all rule sending reviews to one subset, ``rule`` fields added (a mirror...)."""
    return {
        "name": f"to-{subset}",
        "route": [{"destination": {"host": "reviews", "subset": subset}}],
        **rule,
    }


def write_reviews(*rules):
    """Replace reviews' http rules (a JSON merge patch); the PATCH's answer once accepted."""
    return Kube.connect().patch(REVIEWS, {"spec": {"http": list(rules)}})
