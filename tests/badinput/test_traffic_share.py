"""Bad arguments to the observed-share probes, caught by `chaosmesh validate` before any run:
exit 2, the activity and the field named, no traceback, nothing sent."""

import pytest

from tests.badinput.corpus import edited
from tests.badinput.test_validate import MAX_OUTPUT_CHARS, validate

MIRROR = "bookinfo-reviews-mirror-v3"


def share_probe(**arguments):
    """The mirroring experiment with its method's observed_share probe's arguments changed."""

    def edit(experiment):
        (probe,) = [
            a for a in experiment["method"] if a["name"] == "reviews-share-under-the-mirror"
        ]
        probe["provider"]["arguments"].update(arguments)

    return edited(edit, MIRROR)


def within_probe(**arguments):
    """The mirroring experiment with its share_is_within hypothesis probe's arguments changed."""

    def edit(experiment):
        probes = experiment["steady-state-hypothesis"]["probes"]
        (probe,) = [p for p in probes if p["name"] == "users-answered-by-reviews-v1-alone"]
        probe["provider"]["arguments"].update(arguments)

    return edited(edit, MIRROR)


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (
            share_probe(requests=10),
            "reviews-share-under-the-mirror: requests: 10 is fewer than min_requests = 100",
        ),
        (share_probe(requests=-5), "reviews-share-under-the-mirror: requests: must be a whole"),
        (share_probe(window="1m"), "window/requests: give exactly one"),
        (share_probe(confidence=1), "confidence: must be strictly between 0 and 1"),
        (
            share_probe(requests=None, url=None, window="soon"),
            "window: 'soon' is not a PromQL duration",
        ),
        (share_probe(requests=None, url=None, window="1m", reporter="me"), "reporter: 'me'"),
        (share_probe(min_requests=0), "min_requests: must be a whole number from 1"),
        (share_probe(concurrency=0), "concurrency: must be a whole number from 1"),
        (share_probe(sample=3), "argument 'sample' is not part of the function signature"),
        (
            within_probe(percent=120),
            "users-answered-by-reviews-v1-alone: percent: must be between 0 and 100",
        ),
        (within_probe(tolerance_pp="1"), "tolerance_pp: must be a number"),
        (within_probe(service="Reviews!"), "service: 'Reviews!' is not a Kubernetes name"),
        (share_probe(namespace="a/b"), "namespace: 'a/b' is not a namespace name"),
    ],
)
def test_validate_names_the_share_probe_and_field(tmp_path, write, expected):
    path = write(tmp_path)
    result = validate(path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert expected in result.output, result.output[:MAX_OUTPUT_CHARS]
    assert len(result.output) < MAX_OUTPUT_CHARS
