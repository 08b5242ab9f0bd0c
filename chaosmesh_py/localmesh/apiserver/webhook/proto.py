"""The object as istiod decodes it: a JSON spec read with jsonpb's rules into proto3 messages.

istiod turns the admitted JSON into Go structs with legacy ``github.com/golang/protobuf/jsonpb``
before validating it. What that means for a port that reads the JSON directly:

- proto3 defaults: an absent (or null) scalar is "", 0 or false; an absent or null message
  field is nil; a ``null`` element of a repeated message field or map is nil (the Go test cases
  build such nils; see the case file);
- oneof members and wrapper types (``mirrorPercent``, ``retryRemoteLocalities``...) count when
  present, even at their zero value (``{"prefix": ""}`` is a prefix match);
- integers may be quoted (``"503"``), durations are Go ``time.ParseDuration`` strings;
- a value of the wrong JSON type fails decoding, before any validation (``DecodeError``).

``Message`` wraps one JSON object and offers Go-style getters; unknown fields are ignored, as
``ApplyJSON`` does once strict decoding failed.
"""

from __future__ import annotations

from typing import Any

from chaosmesh_py.localmesh.apiserver.webhook import golang

_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


class DecodeError(Exception):
    """The JSON does not decode into the proto message (istiod answers before validating)."""


class Message:
    """A decoded proto message: the JSON object and the field path it was found at."""

    def __init__(self, fields: dict[str, Any], path: str = "spec") -> None:
        self.fields = fields
        self.path = path

    def has(self, name: str) -> bool:
        """Whether the field is set (for oneof members and wrappers: even at a zero value)."""
        return self.fields.get(name) is not None

    def oneof(self, *names: str) -> str | None:
        """The member of a oneof that is set, if any."""
        present = [name for name in names if self.has(name)]
        if len(present) > 1:
            raise DecodeError(f"{self.path}: oneof field {present[1]!r} is already set")
        return present[0] if present else None

    def message(self, name: str) -> Message | None:
        return self._message(self.fields.get(name), f"{self.path}.{name}")

    def messages(self, name: str) -> list[Message | None]:
        return [
            self._message(item, f"{self.path}.{name}[{index}]")
            for index, item in enumerate(self._list(name))
        ]

    def message_map(self, name: str) -> dict[str, Message | None]:
        return {
            key: self._message(item, f"{self.path}.{name}.{key}")
            for key, item in self._map(name).items()
        }

    def text(self, name: str) -> str:
        return self._text(self.fields.get(name), f"{self.path}.{name}")

    def texts(self, name: str) -> list[str]:
        return [self._text(item, f"{self.path}.{name}") for item in self._list(name)]

    def text_map(self, name: str) -> dict[str, str]:
        return {
            key: self._text(item, f"{self.path}.{name}.{key}")
            for key, item in self._map(name).items()
        }

    def integer(self, name: str, kind: str = "int32") -> int:
        value = self.fields.get(name)
        if value is None:
            return 0
        if isinstance(value, str):  # jsonpb takes quoted integers
            parsed = golang.atoi(value)
            value = parsed if parsed is not None else value
        low, high = _INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DecodeError(f"{self.path}.{name}: {value!r} is not a {kind}")
        return value

    def integer_map(self, name: str, kind: str = "uint32") -> dict[str, int]:
        values = Message(self._map(name), f"{self.path}.{name}")
        return {key: values.integer(key, kind) for key in values.fields}

    def number(self, name: str) -> float:
        value = self.fields.get(name)
        if value is None:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(f"{self.path}.{name}: {value!r} is not a number")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self.fields.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise DecodeError(f"{self.path}.{name}: {value!r} is not a boolean")
        return value

    def duration(self, name: str) -> int | None:
        """A ``google.protobuf.Duration`` in nanoseconds; None when unset."""
        value = self.fields.get(name)
        if value is None:
            return None
        parsed = golang.parse_duration(value) if isinstance(value, str) else None
        if parsed is None:
            raise DecodeError(f"{self.path}.{name}: bad Duration: {value!r}")
        return parsed

    def wrapper(self, name: str) -> Any:
        """A wrapper type (``UInt32Value``, ``BoolValue``...): its value, or None when unset."""
        return self.fields.get(name)

    def _message(self, value: Any, path: str) -> Message | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise DecodeError(f"{path}: {value!r} is not an object")
        return Message(value, path)

    def _text(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise DecodeError(f"{path}: {value!r} is not a string")
        return value

    def _list(self, name: str) -> list[Any]:
        value = self.fields.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise DecodeError(f"{self.path}.{name}: {value!r} is not a list")
        return value

    def _map(self, name: str) -> dict[str, Any]:
        value = self.fields.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise DecodeError(f"{self.path}.{name}: {value!r} is not an object")
        return value
