"""ObjectMeta rules: name formats, label and annotation keys, and label values.

The wording follows k8s.io/apimachinery's validation messages, shortened where they only repeat
the regular expression.
"""

from __future__ import annotations

import re
from typing import Any

from chaosmesh_py.localmesh.apiserver.errors import FieldError, show_value

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _invalid(field: str, value: Any, why: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, f"Invalid value: {show_value(value)}: {why}")


SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
    " '-' or '.', and must start and end with an alphanumeric character"
)


def path_segment_errors(field: str, name: Any) -> list[FieldError]:
    """path.IsValidPathSegmentName, the rule for RBAC names (`system:aggregate-to-view`)."""
    if not isinstance(name, str) or not name:
        return [FieldError("FieldValueRequired", field, "Required value")]
    if name in (".", ".."):
        return [_invalid(field, name, f"may not be '{name}'")]
    return [_invalid(field, name, f"may not contain '{bad}'") for bad in "/%" if bad in name][:1]


def name_errors(name: Any, label_only: bool, path_segment: bool = False) -> list[FieldError]:
    """Names must be DNS-1123 subdomains (253 chars); namespace names DNS-1123 labels (63);
    RBAC kinds' names path segments (`path_segment`)."""
    if not isinstance(name, str):
        return [_invalid("metadata.name", name, "must be a string")]
    if path_segment:
        return path_segment_errors("metadata.name", name)
    if label_only and (len(name) > 63 or not DNS1123_LABEL.match(name)):
        return [
            _invalid(
                "metadata.name",
                name,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or"
                " '-', and must start and end with an alphanumeric character",
            )
        ]
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [_invalid("metadata.name", name, SUBDOMAIN_RULE)]
    return []


QUALIFIED_NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end"
    " with an alphanumeric character, with an optional DNS subdomain prefix and '/'"
)


def qualified_name(key: str) -> bool:
    """apimachinery's IsQualifiedName: `example.com/my-name` or `my-name`."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def map_errors(field: str, values: Any, check_values: bool) -> list[FieldError]:
    """Errors in `metadata.labels` (keys and values) or `metadata.annotations` (keys)."""
    if values is None:
        return []
    if not isinstance(values, dict):
        return [_invalid(field, values, "must be a map of strings")]
    errors = []
    for key, value in values.items():
        if not qualified_name(key):
            errors.append(_invalid(field, key, QUALIFIED_NAME_RULE))
        if not isinstance(value, str):
            errors.append(_invalid(f"{field}[{key}]", value, "must be a string"))
        elif check_values and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            errors.append(
                _invalid(
                    field,
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters,"
                    " '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
    return errors


# apimachinery's TotalAnnotationSizeLimitB: keys and values together, in bytes.
MAX_ANNOTATION_BYTES = 256 * 1024


def annotation_size_errors(annotations: Any) -> list[FieldError]:
    if not isinstance(annotations, dict):
        return []
    size = sum(
        len(str(key).encode()) + len(value.encode() if isinstance(value, str) else b"")
        for key, value in annotations.items()
    )
    if size <= MAX_ANNOTATION_BYTES:
        return []
    return [too_long("metadata.annotations", MAX_ANNOTATION_BYTES)]


def too_long(field: str, limit: int) -> FieldError:
    """Go's field.TooLong without the value, as apimachinery words it."""
    return FieldError("FieldValueTooLong", field, f"Too long: must have at most {limit} bytes")


def metadata_errors(
    metadata: dict[str, Any], label_only_name: bool, path_segment_name: bool = False
) -> list[FieldError]:
    return [
        *name_errors(metadata.get("name"), label_only_name, path_segment_name),
        *map_errors("metadata.labels", metadata.get("labels"), check_values=True),
        *map_errors("metadata.annotations", metadata.get("annotations"), check_values=False),
        *annotation_size_errors(metadata.get("annotations")),
    ]
