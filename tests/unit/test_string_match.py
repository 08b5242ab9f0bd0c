"""A header value each Istio StringMatch matches, so that narrowed faults are checked on traffic."""

import pytest
import re2

from chaosmesh_py.istio.string_match import NoMatchingValue, matching_value, regex_example


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ({"exact": "jason"}, "jason"),
        ({"prefix": "test"}, "testx"),
        ({"regex": "jason"}, "jason"),
        ({"regex": "(tester|qa)-[0-9]+"}, "tester-0"),
        ({"regex": "qa-\\d{2,3}"}, "qa-00"),
        ({"regex": "[^a-z]+"}, "0"),
        ({"regex": "\\w+@\\w+\\.com"}, "a@a.com"),
        ({"regex": ".*"}, "a"),
        ({"regex": "^(?i)jason$"}, "jason"),
        ({"regex": "(?:a|b)*c?"}, "ac"),
        ({"regex": "\\bj[aeiou]son\\b"}, "jason"),
    ],
)
def test_a_value_is_derived_that_re2_matches_whole(condition, value):
    assert matching_value(condition) == value
    if "regex" in condition:
        assert re2.fullmatch(condition["regex"], value)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("\\s+", "characters a header value cannot carry"),
        ("a{300}", "a repetition of at least 300"),
        ("(?=jason)jason", "RE2 does not support"),
        ("(a)\\1", "RE2 does not support"),
        ("[[:alpha:]]+", "cannot be read here"),  # RE2's POSIX class, a nested set to Python
        ("\\pL+", "cannot be read here"),  # RE2's Unicode class
        ("jas(on", "cannot be read here"),
        ("[^\\x00-\\x7f]", "admits no readable character"),
    ],
)
def test_no_value_is_sent_when_none_can_be_derived_and_it_says_why(pattern, why):
    with pytest.raises(NoMatchingValue, match=why.replace("(", "\\(")):
        regex_example(pattern)
