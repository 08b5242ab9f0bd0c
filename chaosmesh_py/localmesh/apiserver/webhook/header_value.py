"""Port of ``pkg/config/validation/header_value_validator.go``: the ``%VAR%`` syntax of a header
value Envoy formats (itself Istio's port of Envoy's ``header_parser.cc``), byte by byte."""

from __future__ import annotations

from enum import Enum, auto

from chaosmesh_py.localmesh.apiserver.webhook import golang
from chaosmesh_py.localmesh.apiserver.webhook.golang import Err


class _State(Enum):
    LITERAL = auto()  # processing literal data
    VARIABLE_NAME = auto()  # consuming a %VAR% name
    EXPECT_ARRAY = auto()  # expect starting [ in %VAR([...])%
    EXPECT_STRING = auto()  # expect starting " in array of strings
    STRING = auto()  # consuming an array element string
    EXPECT_ARRAY_DELIMITER_OR_END = auto()  # expect , or ] in the array
    EXPECT_ARGS_END = auto()  # expect closing ) in %VAR(...)%
    EXPECT_VARIABLE_END = auto()  # expect closing % in %VAR(...)%


def validate_header_value(header_value: str) -> Err:
    data = header_value.encode()
    state, position = _State.LITERAL, 0
    while position < len(data):
        char = chr(data[position])
        has_next = position + 1 < len(data)
        if state is _State.LITERAL:
            if char == "%":
                if not has_next:
                    return golang.error("invalid header configuration. Un-escaped %")
                if data[position + 1] == ord("%"):
                    position += 1  # an escaped %
                else:
                    state = _State.VARIABLE_NAME
        elif state is _State.VARIABLE_NAME:
            if char == "%":
                state = _State.LITERAL
            elif char == "(":
                state = _State.EXPECT_ARRAY
        elif state is _State.EXPECT_ARRAY:
            if char == "[":
                state = _State.EXPECT_STRING
            elif char != " ":
                state = _State.STRING
        elif state is _State.EXPECT_ARRAY_DELIMITER_OR_END:
            if char == ",":
                state = _State.EXPECT_STRING
            elif char == "]":
                state = _State.EXPECT_ARGS_END
            elif char != " ":
                return golang.error(
                    "invalid header configuration. Expecting ',', ']', or whitespace"
                )
        elif state is _State.EXPECT_STRING:
            if char == '"':
                state = _State.STRING
            elif char != " ":
                return golang.error("invalid header configuration. Expecting '\"'")
        elif state is _State.STRING:
            if char == "\\":
                if not has_next:
                    return golang.error(
                        "invalid header configuration. Un-terminated backslash in JSON string"
                    )
                position += 1
            elif char == ")":
                state = _State.EXPECT_VARIABLE_END
            elif char == '"':
                state = _State.EXPECT_ARRAY_DELIMITER_OR_END
        elif state is _State.EXPECT_ARGS_END:
            if char == ")":
                state = _State.EXPECT_VARIABLE_END
            elif char != " ":
                return golang.error(
                    "invalid header configuration. Expecting ')' or whitespace after '{}', "
                    "but found '{}'"
                )
        elif state is _State.EXPECT_VARIABLE_END:
            if char == "%":
                state = _State.LITERAL
            elif char != " ":
                return golang.error(
                    "invalid header configuration. Expecting '%' or whitespace after"
                )
        position += 1
    if state is not _State.LITERAL:
        return golang.error(
            f"invalid header configuration. Un-terminated variable expression '{header_value}'"
        )
    return None
