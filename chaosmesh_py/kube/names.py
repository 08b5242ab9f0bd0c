"""Kubernetes object names, checked before they reach a URL: a namespace is a DNS-1123 label,
a custom resource's name a DNS-1123 subdomain (apimachinery's validation rules)."""

from __future__ import annotations

import re

from chaosmesh_py.errors import InvalidInput, shown

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

NAMESPACE_RULE = "at most 63 lower-case letters, digits and '-', starting and ending alphanumeric"


def is_namespace(value: object) -> bool:
    return isinstance(value, str) and _DNS1123_LABEL.fullmatch(value) is not None


def is_resource_name(value: object) -> bool:
    return isinstance(value, str) and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def parse_namespace(value: object, field: str = "namespace") -> str:
    if not is_namespace(value):
        raise InvalidInput(
            field, f"{shown(value)} is not a namespace name", f"use {NAMESPACE_RULE}, e.g. bookinfo"
        )
    assert isinstance(value, str)
    return value
