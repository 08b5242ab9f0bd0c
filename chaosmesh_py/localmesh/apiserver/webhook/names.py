"""Istio's name rules outside the validation package, ported: labels, hosts, JWT claims, exportTo.

- ``pkg/config/labels/instance.go``: ``IsDNS1123Label`` (upper case passes),
  ``IsWildcardDNS1123Label``, ``Instance.Validate`` (label keys and values);
- ``pkg/config/host/name.go``: ``Name.Matches`` and ``Name.SubsetOf`` (wildcard hosts);
- ``pkg/jwt/routing.go``: ``ToRoutingClaim(...).Match`` (``@request.auth.claims.x`` / ``[x]``);
- ``pkg/config/visibility``: ``Instance.Validate`` (an exportTo entry), and from
  ``validation.go``: ``validateExportTo`` and ``validateWorkloadSelector``.
"""

from __future__ import annotations

import re

from chaosmesh_py.localmesh.apiserver.webhook import golang
from chaosmesh_py.localmesh.apiserver.webhook.golang import Err, Validation
from chaosmesh_py.localmesh.apiserver.webhook.proto import Message

DNS1123_LABEL_MAX_LENGTH = 63
_DNS1123_LABEL_FMT = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_WILDCARD_PREFIX = rf"(\*|(\*|\*-)?{_DNS1123_LABEL_FMT})"
_QUALIFIED_NAME_FMT = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_NAME_PREFIX_FMT = rf"{_DNS1123_LABEL_FMT}(?:\.{_DNS1123_LABEL_FMT})*/"
_DNS_NAME_PREFIX_MAX_LENGTH = 253

_TAG = re.compile(rf"^({_DNS_NAME_PREFIX_FMT})?({_QUALIFIED_NAME_FMT})$")
_LABEL_VALUE = re.compile(rf"^({_QUALIFIED_NAME_FMT})?$")
_DNS1123_LABEL = re.compile(rf"^{_DNS1123_LABEL_FMT}$")
_WILDCARD_LABEL = re.compile(rf"^{_WILDCARD_PREFIX}$")

JWT_CLAIM_HEADER = "@request.auth.claims"


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _match(_DNS1123_LABEL, value)


def is_wildcard_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _match(_WILDCARD_LABEL, value)


def _match(pattern: re.Pattern[str], value: str) -> bool:
    # Go's ``$`` is the end of the text (Python's also matches before a final newline).
    found = pattern.match(value)
    return found is not None and found.end() == len(value)


def validate_labels(labels: dict[str, str] | None) -> Err:
    """``labels.Instance.Validate``."""
    errs: Err = None
    for key, value in (labels or {}).items():
        key_error = _validate_tag_key(key)
        if key_error is not None:
            errs = golang.multierror_append(errs, key_error)
        if not _match(_LABEL_VALUE, value):
            errs = golang.multierror_append(
                errs, golang.error(f"invalid tag value: {golang.quote(value)}")
            )
    return errs


def _validate_tag_key(key: str) -> Err:
    found = _TAG.match(key)
    if found is None or found.end() != len(key):
        return golang.error(f"invalid tag key: {golang.quote(key)}")
    prefix, name = found.group(1) or "", found.group(2)
    if prefix and len(prefix) - 1 > _DNS_NAME_PREFIX_MAX_LENGTH:
        return golang.error(f"invalid tag key: {golang.quote(key)} (DNS prefix is too long)")
    if len(name) > DNS1123_LABEL_MAX_LENGTH:
        return golang.error(f"invalid tag key: {golang.quote(key)} (name is too long)")
    return None


def is_jwt_routing_claim(header_name: str) -> bool:
    """``jwt.ToRoutingClaim(name).Match``."""
    if not header_name.lower().startswith(JWT_CLAIM_HEADER):
        return False
    name = header_name[len(JWT_CLAIM_HEADER) :]
    if name.startswith(".") and len(name) > 1:
        return True
    return name.startswith("[") and name.endswith("]") and len(name) > 2


def host_matches(first: str, second: str) -> bool:
    """``host.Name.Matches``: the two hosts have a name in common."""
    first_wild, second_wild = first.startswith("*"), second.startswith("*")
    if first_wild:
        if second_wild:
            if len(first) < len(second):
                return second[1:].endswith(first[1:])
            return first[1:].endswith(second[1:])
        return second.endswith(first[1:])
    if second_wild:
        return first.endswith(second[1:])
    return first == second


def host_subset_of(first: str, second: str) -> bool:
    """``host.Name.SubsetOf``: every name ``first`` matches, ``second`` matches too."""
    first_wild, second_wild = first.startswith("*"), second.startswith("*")
    if first_wild:
        if second_wild:
            return len(first) >= len(second) and first[1:].endswith(second[1:])
        return False
    if second_wild:
        return first.endswith(second[1:])
    return first == second


def validate_visibility(value: str) -> Err:
    """``visibility.Instance.Validate`` for an exportTo entry."""
    if value in (".", "*"):
        return None
    if value == "~":
        return golang.error("exportTo ~ (none) is not allowed for Istio configuration objects")
    if not is_dns1123_label(value):
        return golang.error("only .,*, or a valid DNS 1123 label is allowed as exportTo entry")
    return None


# -- exportTo and workload selectors ---------------------------------------------------------


def validate_export_to(
    namespace: str, export_to: list[str], is_service_entry: bool, with_selector: bool
) -> Err:
    errs: Err = None
    if not export_to:
        return None
    seen: list[str] = []
    for entry in export_to:
        key = namespace if entry == "." else entry
        if key in seen:
            message = (
                f"duplicate entries in exportTo: . and current namespace {namespace}"
                if key != entry
                else f"duplicate entries in exportTo for entry {entry}"
            )
            errs = golang.append_errors(errs, golang.error(message))
        elif is_service_entry and entry == "~":
            seen.append(key)
        else:
            problem = validate_visibility(key)
            if problem is not None:
                errs = golang.append_errors(errs, problem)
            else:
                seen.append(key)
    if with_selector and seen:
        if namespace in seen:
            if len(seen) > 1:
                message = "destination rule with workload selector cannot have multiple entries "
                errs = golang.append_errors(errs, golang.error(message + "in exportTo"))
        else:
            message = "destination rule with workload selector cannot have exportTo beyond "
            errs = golang.append_errors(errs, golang.error(message + "current namespace"))
    if "*" in seen and len(export_to) > 1:
        message = "cannot have both public (*) and non-public exportTo values for a resource"
        errs = golang.append_errors(errs, golang.error(message))
    if "~" in seen and len(export_to) > 1:
        message = "cannot export service entry to no one (~) and someone"
        errs = golang.append_errors(errs, golang.error(message))
    return errs


def validate_workload_selector(selector: Message | None) -> Validation:
    errs = Validation()
    if selector is None:
        return errs
    labels = selector.text_map("matchLabels")
    for key, value in labels.items():
        pair = golang.quote(f"{key}={value}")
        if key == "":
            problem = golang.error(f"empty key is not supported in selector: {pair}")
            errs = golang.append_validation(errs, problem)
        if "*" in key or "*" in value:
            problem = golang.error(f"wildcard is not supported in selector: {pair}")
            errs = golang.append_validation(errs, problem)
    if not labels:
        errs = golang.append_validation(
            errs, golang.warning("workload selector specified without labels")
        )
    return errs
