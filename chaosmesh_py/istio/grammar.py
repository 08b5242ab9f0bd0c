"""The strings Istio and Envoy accept in the fields this project writes, checked the way they are.

Each check returns None or a ``Problem`` (what is wrong, and the fix), so one rule serves both an
experiment's arguments (``Problem.at(field)`` is the InvalidInput to raise) and the validation of
a whole object (``istio.validation``).

Where Istio and its Envoy disagree, the stricter one wins, since a config only one of them takes
still never reaches the data plane:

- regexes: Istio compiles them with Go's ``regexp`` and caps them at 1024 bytes; Envoy compiles
  them with RE2 and refuses a program larger than ``re2.max_program_size.error_level`` (Istio's
  bootstrap sets 32768). So a pattern must compile with RE2 itself (google-re2, the C++ library
  Envoy links), within both limits, and without ``\\C``, the one escape RE2 takes and Go refuses;
- header names: RFC 7230 tokens, or one of the five HTTP/2 pseudo headers, or Istio's
  ``@request.auth.claims`` routing form. Istio's own character class accepts a comma through a
  ``+-.`` range; no request carries such a header, so it is refused here;
- header match values: no control characters but TAB (no request can carry one either);
- label keys and values: Istio's rules, and values at most 63 characters (no pod can carry a
  longer one, though Istio does not check it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import re2

from chaosmesh_py.errors import InvalidInput, shown

# Istio's stand-in for RE2's program size: validation.go validateStringRegexp.
MAX_REGEX_BYTES = 1024
# What Istio's bootstrap lets its Envoy load (runtime re2.max_program_size.error_level); Envoy's
# own default is 100.
MAX_RE2_PROGRAM_SIZE = 32768
MAX_LABEL_VALUE_CHARS = 63

PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
JWT_CLAIM_PREFIX = "@request.auth.claims"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DNS1123_LABEL = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_WILDCARD_LABEL = re.compile(r"\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_PREFIX = re.compile(
    r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)*"
)
_RE2_OPTIONS = re2.Options()
# As Envoy compiles (RE2::Quiet): the reason comes back in the error, nothing is logged.
_RE2_OPTIONS.log_errors = False


@dataclass(frozen=True)
class Problem:
    """Why a value is refused, and what to write instead."""

    what: str
    fix: str = ""

    def at(self, field: str) -> InvalidInput:
        return InvalidInput(field, self.what, self.fix)

    def text(self, field: str) -> str:
        return str(self.at(field))


def regex_problem(pattern: str) -> Problem | None:
    """Why Istio or Envoy would refuse ``pattern`` as a StringMatch regex."""
    if pattern == "":
        return Problem("is empty", 'Istio refuses an empty regex; match any value with ".*"')
    try:
        size_bytes = len(pattern.encode())
    except UnicodeEncodeError:
        return Problem(f"{shown(pattern)} is not valid Unicode text")
    if size_bytes > MAX_REGEX_BYTES:
        return Problem(
            f"{shown(pattern)} is {size_bytes} bytes, over Istio's limit of {MAX_REGEX_BYTES}",
            "write a shorter pattern",
        )
    try:
        program_size = re2.compile(pattern, _RE2_OPTIONS).programsize
    except re2.error as error:
        reason = error.args[0]
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        return Problem(
            f"{shown(pattern)} is not a regular expression RE2 accepts: {reason}",
            "Envoy matches with RE2: no look-around, no back-references "
            "(syntax: https://github.com/google/re2/wiki/Syntax)",
        )
    if _has_any_byte_escape(pattern):
        return Problem(
            f"{shown(pattern)} uses \\C (any byte), which RE2 accepts "
            "but Istio's Go regexp refuses",
            "match one character with . instead",
        )
    if program_size > MAX_RE2_PROGRAM_SIZE:
        return Problem(
            f"{shown(pattern)} has an RE2 program size of {program_size}, over the "
            f"{MAX_RE2_PROGRAM_SIZE} Istio lets Envoy load",
            "use fewer or smaller counted repetitions (e.g. \\pL+ rather than \\pL{200})",
        )
    return None


def _has_any_byte_escape(pattern: str) -> bool:
    r"""Whether ``pattern`` (which RE2 compiled) has a ``\C`` escape: outside ``\Q...\E`` it is
    the only escape spelled that way (inside a class RE2 refuses it already)."""
    position = 0
    while position < len(pattern) - 1:
        if pattern[position] != "\\":
            position += 1
            continue
        escaped = pattern[position + 1]
        if escaped == "C":
            return True
        if escaped == "Q":
            end = pattern.find("\\E", position + 2)
            if end < 0:
                return False
            position = end + 2
            continue
        position += 2
    return False


def is_jwt_claim(name: str) -> bool:
    """Istio's JWT-claim routing key: ``@request.auth.claims.sub`` or ``...claims[groups]``."""
    if not name.lower().startswith(JWT_CLAIM_PREFIX):
        return False
    rest = name[len(JWT_CLAIM_PREFIX) :]
    return (rest.startswith(".") and len(rest) > 1) or (
        rest.startswith("[") and rest.endswith("]") and len(rest) > 2
    )


def header_name_problem(name: str) -> Problem | None:
    """Why ``name`` is not a header Istio and Envoy can match on."""
    if name in PSEUDO_HEADERS or is_jwt_claim(name) or _TOKEN.fullmatch(name):
        return None
    if name == "":
        return Problem("header name '' is empty", "e.g. end-user")
    bad = next((c for c in name if not _TOKEN.fullmatch(c)), ":")
    where = name.find(bad)
    why = "a control character" if _CONTROL.fullmatch(bad) or bad == "\t" else "not allowed"
    if name.startswith(":") and bad == ":":
        why = f"only the pseudo headers {', '.join(sorted(PSEUDO_HEADERS))} may start with ':'"
    return Problem(
        f"header name {shown(name)} is not an HTTP header name: {shown(bad)} at {where} is {why}",
        "a header name is letters, digits and !#$%&'*+-.^_`|~ (RFC 7230), e.g. end-user",
    )


def header_value_problem(value: str) -> Problem | None:
    """Why no request can carry ``value`` in a header (RFC 7230 field content)."""
    bad = _CONTROL.search(value)
    if bad is None:
        return None
    return Problem(
        f"{shown(value)} has a control character ({shown(bad.group())} at {bad.start()}); "
        "no request carries one in a header",
        "remove it (a tab is allowed)",
    )


def label_key_problem(key: str) -> Problem | None:
    """Istio's (and Kubernetes') rule for a label key: ``[prefix/]name``."""
    prefix, slash, name = key.rpartition("/")
    valid = (
        _QUALIFIED_NAME.fullmatch(name) is not None
        and len(name) <= 63
        and (not slash or (_LABEL_PREFIX.fullmatch(prefix) is not None and len(prefix) <= 253))
    )
    if valid:
        return None
    return Problem(
        f"label key {shown(key)} is not a Kubernetes label key",
        "an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit, e.g. app or app.kubernetes.io/name",
    )


def label_value_problem(value: str) -> Problem | None:
    if value == "" or (_QUALIFIED_NAME.fullmatch(value) and len(value) <= MAX_LABEL_VALUE_CHARS):
        return None
    return Problem(
        f"label value {shown(value)} is not a Kubernetes label value",
        f"up to {MAX_LABEL_VALUE_CHARS} letters, digits, '-', '_' or '.', starting and ending "
        "with a letter or digit",
    )


def is_dns1123_label(value: str) -> bool:
    """Istio's labels.IsDNS1123Label (which, unlike Kubernetes, takes upper case)."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def host_problem(host: str) -> Problem | None:
    """Why Istio refuses ``host`` as a destination host (agent.ValidateWildcardDomain)."""
    fix = "a service name such as reviews or reviews.bookinfo.svc.cluster.local"
    if host == "*":
        return Problem("'*' is not a destination host", fix)
    if not host or len(host) > 255:
        return Problem(f"{shown(host)} must have 1 to 255 characters", fix)
    first, _, rest = host.partition(".")
    labels = rest.split(".") if rest else []
    if labels and labels[-1] == "":
        labels.pop()  # a trailing dot is allowed: reviews.bookinfo.
    elif labels and labels[-1].isascii() and labels[-1].isdigit():
        return Problem(f"{shown(host)} ends in an all-numeric label (an IP is no host)", fix)
    wildcard_ok = len(first) <= 63 and _WILDCARD_LABEL.fullmatch(first) is not None
    if not wildcard_ok or not all(is_dns1123_label(label) for label in labels):
        return Problem(f"{shown(host)} is not a DNS name (each label: letters, digits, '-')", fix)
    return None
