"""What a port of Istio's Go validation needs from Go itself, so messages come out as istiod's do.

- error values: a plain error, or a ``*multierror.Error`` (hashicorp/go-multierror) whose
  ``Append`` flattens and whose text is ``"N errors occurred:\\n\\t* ...\\n\\n"``; Istio's
  ``agent.AppendErrors`` / ``AppendValidation`` (nil stays nil, one error stays plain) and its
  ``Validation`` (an error and a warning side by side);
- fmt verbs: ``%q`` (strconv.Quote), ``%v`` of a float64 (strconv 'g', shortest), ``%f``;
- strconv.Atoi, time.ParseDuration, net/http.StatusText's list, netip.ParseAddr / ParsePrefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class GoError:
    """A Go ``error``: plain (``texts`` has one entry) or a multierror (its flattened entries)."""

    texts: tuple[str, ...]
    multi: bool = False

    def __str__(self) -> str:
        if not self.multi:
            return self.texts[0]
        if len(self.texts) == 1:
            return f"1 error occurred:\n\t* {self.texts[0]}\n\n"
        points = "\n\t".join(f"* {text}" for text in self.texts)
        return f"{len(self.texts)} errors occurred:\n\t{points}\n\n"


Err = GoError | None


@dataclass(frozen=True)
class Validation:
    """Istio's ``agent.Validation``: errors reject the object, warnings are returned with it."""

    err: Err = None
    warning: Err = None


def error(text: str) -> GoError:
    """``errors.New`` / ``fmt.Errorf``."""
    return GoError((text,))


def warning(text: str) -> Validation:
    """``WrapWarning(errors.New(text))``."""
    return Validation(warning=error(text))


def multierror_append(err: Err, *errs: Err) -> GoError:
    """``multierror.Append``: always a multierror, nested multierrors flattened, nils dropped."""
    texts = list(err.texts) if err is not None else []
    for item in errs:
        if item is not None:
            texts.extend(item.texts)
    return GoError(tuple(texts), multi=True)


def _join(first: Err, second: Err) -> Err:
    if first is None:
        return second
    if second is None:
        return first
    return multierror_append(first, second)


def append_errors(err: Err, *errs: Err | Validation) -> Err:
    """``agent.AppendErrors``: keeps only the error side of a Validation (warnings are lost)."""
    for item in errs:
        err = _join(err, item.err if isinstance(item, Validation) else item)
    return err


def append_validation(validation: Validation, *items: Err | Validation) -> Validation:
    """``agent.AppendValidation``: errors and warnings each accumulated."""
    err, warn = validation.err, validation.warning
    for item in items:
        if isinstance(item, Validation):
            err, warn = _join(err, item.err), _join(warn, item.warning)
        else:
            err = _join(err, item)
    return Validation(err, warn)


def join(*errs: Err) -> Err:
    """``errors.Join``: the texts of the non-nil errors, one per line."""
    present = [str(e) for e in errs if e is not None]
    return error("\n".join(present)) if present else None


def entries(err: Err) -> list[str]:
    """The single messages an error holds (a warning list, as Istio hands them to Kubernetes)."""
    if err is None:
        return []
    return list(err.texts) if err.multi else [str(err)]


# -- fmt -------------------------------------------------------------------------------------

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES |= {"\v": "\\v", "\\": "\\\\", '"': '\\"'}


def quote(text: str) -> str:
    """``%q`` of a string: Go's strconv.Quote."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def float_v(value: float) -> str:
    """``%v`` of a float64: the shortest digits, in exponent form below 1e-4 or from 1e6."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + exponent  # position of the decimal point in the digit string
    if point - 1 < -4 or point - 1 >= 6:
        head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        power = point - 1
        text = f"{head}e{'-' if power < 0 else '+'}{abs(power):02d}"
    elif point <= 0:
        text = "0." + "0" * -point + mantissa
    elif point >= len(mantissa):
        text = mantissa + "0" * (point - len(mantissa))
    else:
        text = mantissa[:point] + "." + mantissa[point:]
    return ("-" if sign else "") + text


def slice_v(items: Iterable[str]) -> str:
    """``%v`` of a []string."""
    return "[" + " ".join(items) + "]"


# -- strconv, time, net ----------------------------------------------------------------------

_ATOI = re.compile(r"[+-]?[0-9]+")


def atoi(text: str) -> int | None:
    """``strconv.Atoi`` (None for its error): ASCII digits, one optional sign, fits an int64."""
    if not _ATOI.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_UNITS_NS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
_COMPONENT = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int | None:
    """``time.ParseDuration`` in nanoseconds (None for its error)."""
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        return None
    total = Decimal(0)
    while rest:
        match = _COMPONENT.match(rest)
        if match is None or match.group(1) in ("", "."):
            return None
        total += Decimal(match.group(1)) * _UNITS_NS[match.group(2)]
        rest = rest[match.end() :]
    nanoseconds = int(total)  # Go truncates fractions of a nanosecond
    if nanoseconds > 2**63 - (0 if negative else 1):
        return None
    return -nanoseconds if negative else nanoseconds


# net/http's StatusText: the codes that have a text (RFC 9110 and friends; no 306).
HTTP_STATUS_TEXT_CODES = frozenset(
    {
        *(100, 101, 102, 103),
        *(200, 201, 202, 203, 204, 205, 206, 207, 208, 226),
        *(300, 301, 302, 303, 304, 305, 307, 308),
        *range(400, 419),
        *(421, 422, 423, 424, 425, 426, 428, 429, 431, 451),
        *range(500, 509),
        *(510, 511),
    }
)


def is_ip_address(text: str) -> bool:
    """``netip.ParseAddr`` succeeds (a zone is allowed on IPv6, as in Go)."""
    try:
        ipaddress.ip_address(text.split("%", 1)[0] if ":" in text else text)
    except ValueError:
        return False
    return True


def is_ip_prefix(text: str) -> bool:
    """``netip.ParsePrefix`` succeeds: an address, '/', and a bit count within its family."""
    address, _, bits = text.partition("/")
    if not is_ip_address(address) or "%" in address or not bits.isdigit():
        return False
    family_bits = 128 if ":" in address else 32
    return (len(bits) == 1 or bits[0] != "0") and int(bits) <= family_bits
