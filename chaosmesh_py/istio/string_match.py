"""A value an Istio ``StringMatch`` matches, so that a narrowed fault can be shown on real traffic.

A fault narrowed to ``headers: {"end-user": {"prefix": "test"}}`` fires only for requests that
carry such a header; the effect check must send one. ``exact`` gives its value, ``prefix`` the
prefix and one more character (a value that is only a prefix of itself would not show the
match is a prefix match), ``regex`` a string generated from the pattern by Python's parser
(Istio's regexes are RE2, matched against the whole value; RE2 has no look-around nor
back-reference), then checked with RE2 itself against the whole pattern, so a construct the
two read differently cannot send a value the data plane would not match. When none can be
derived, ``NoMatchingValue`` says why.
"""

from __future__ import annotations

import re
import string
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import re2

with warnings.catch_warnings():
    # Deprecated as a public name since Python 3.11, still the one typed way to parse a pattern.
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_constants as sre
    import sre_parse

MAX_LENGTH = 256  # a header value longer than this is not worth sending
PREFIX_EXTENSION = "x"
# The characters tried, in order, wherever a pattern leaves a choice: values that read well.
_INLINE_FLAGS = re.compile(r"(?<!\\)\(\?[imsU]+\)")
_CANDIDATES = string.ascii_lowercase + string.digits + string.ascii_uppercase + "-_.~ "


class NoMatchingValue(ValueError):
    """No header value can be derived for the condition; the message says why."""


def matching_value(condition: Mapping[str, str]) -> str:
    """A value ``condition`` (one of ``exact``, ``prefix``, ``regex``) matches.

    Raises NoMatchingValue when none can be derived.
    """
    if "exact" in condition:
        return condition["exact"]
    if "prefix" in condition:
        return condition["prefix"] + PREFIX_EXTENSION
    if "regex" in condition:
        return regex_example(condition["regex"])
    raise NoMatchingValue(f"no exact, prefix or regex in {dict(condition)}")


def regex_example(pattern: str) -> str:
    """A string the whole of ``pattern`` matches, made of readable characters."""
    try:
        with warnings.catch_warnings():
            # Python warns where it reads a pattern differently from RE2 ("[[:alpha:]]").
            warnings.simplefilter("error", FutureWarning)
            # RE2 takes flags anywhere ("^(?i)jason"), Python only first; a value written as
            # the pattern spells it matches either way (RE2 judges below).
            parsed = sre_parse.parse(_INLINE_FLAGS.sub("", pattern))
    except (re.error, FutureWarning, RecursionError, OverflowError) as error:
        raise NoMatchingValue(f"regex {pattern!r} cannot be read here ({error})") from None
    value = _emit(parsed.data)
    if len(value) > MAX_LENGTH:
        raise NoMatchingValue(f"regex {pattern!r} needs values longer than {MAX_LENGTH}")
    if not (value.isascii() and value.isprintable()) or value != value.strip():
        raise NoMatchingValue(f"regex {pattern!r} needs characters a header value cannot carry")
    if re2.fullmatch(pattern, value) is None:
        raise NoMatchingValue(f"no value derived from regex {pattern!r} matches it whole")
    return value


def _emit(items: Sequence[tuple[Any, Any]]) -> str:
    return "".join(_emit_one(op, argument) for op, argument in items)


def _emit_one(op: Any, argument: Any) -> str:
    if op is sre.LITERAL:
        return chr(argument)
    if op is sre.NOT_LITERAL:
        return _first(lambda c: c != chr(argument))
    if op is sre.ANY:
        return _CANDIDATES[0]
    if op is sre.IN:
        return _first(lambda c: _in_set(c, argument))
    if op is sre.BRANCH:
        for alternative in argument[1]:
            try:
                return _emit(list(alternative))
            except NoMatchingValue:
                continue
        raise NoMatchingValue("no alternative of a branch gives a value")
    if op is sre.SUBPATTERN:
        return _emit(list(argument[-1]))
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
        low, high, inner = argument
        # One occurrence where the pattern allows it: "x?" and ".*" read better as "x" and "a".
        count: int = max(low, min(1, high))
        if count > MAX_LENGTH:
            raise NoMatchingValue(f"a repetition of at least {low}")
        return _emit(list(inner)) * count
    if op is getattr(sre, "ATOMIC_GROUP", None):
        return _emit(list(argument))
    if op is sre.AT:
        return ""  # anchors and word boundaries: the whole-value check below judges them
    raise NoMatchingValue(f"the pattern uses {str(op).lower()}, which RE2 does not support")


def _first(accepts: Callable[[str], bool]) -> str:
    for candidate in _CANDIDATES:
        if accepts(candidate):
            return candidate
    raise NoMatchingValue("a character class admits no readable character")


def _in_set(character: str, items: Sequence[tuple[Any, Any]]) -> bool:
    negated = bool(items) and items[0][0] is sre.NEGATE
    found = False
    for op, argument in items[1:] if negated else items:
        if op is sre.LITERAL:
            found = character == chr(argument)
        elif op is sre.RANGE:
            found = argument[0] <= ord(character) <= argument[1]
        elif op is sre.CATEGORY:
            found = _in_category(character, argument)
        else:
            found = False
        if found:
            break
    return found != negated


def _in_category(character: str, category: Any) -> bool:
    tests: dict[Any, Callable[[str], bool]] = {
        sre.CATEGORY_DIGIT: str.isdigit,
        sre.CATEGORY_SPACE: str.isspace,
        sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    }
    opposites = {
        sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
        sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
        sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
    }
    if category in tests:
        return bool(tests[category](character))
    if category in opposites:
        return not tests[opposites[category]](character)
    return False
