"""An experiment file as ``chaosmesh validate`` reads it: every malformation named, none fatal.

``chaos run`` shows a traceback for a JSON syntax error, a file that is a list, or a document
nested a hundred thousand levels deep, and builds a YAML alias bomb whatever it expands to.
Here each becomes an ``InvalidInput`` naming the file's line and column, or the field
(``method[1].provider.arguments``), before Chaos Toolkit's validation sees the document:

- ``load`` reads JSON (``.json``) or YAML (``.yaml``/``.yml``) the way ``chaos run`` would, and
  bounds what it builds: nesting depth and number of values;
- ``shape_problems`` checks that the parts Chaos Toolkit and chaosmesh walk are the JSON types
  they expect (mappings and lists), so what follows can read them without crashing;
- ``validation_problems`` is the whole of ``chaosmesh validate`` for one file: the above, then
  Chaos Toolkit's validation, then every chaosmesh activity's argument values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_py.errors import InvalidInput

# A real experiment is a dozen levels deep and a few thousand values at most.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000

_SUFFIXES = (".json", ".yaml", ".yml")
_DOCUMENT = "experiment"


def validation_problems(path: Path) -> list[str]:
    """One line per problem, from the first layer that finds any; empty when ``path`` is valid.

    No exception escapes: a malformed file is reported, never a traceback.
    """
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    from chaosmesh_py.control import argument_problems

    try:
        experiment = load(path)
    except InvalidInput as error:
        return [f"invalid: {error}"]
    problems = shape_problems(experiment)
    if problems:
        return [f"invalid: {problem}" for problem in problems]
    try:
        ensure_experiment_is_valid(experiment)
        configuration = load_configuration(experiment.get("configuration", {}))
    except ChaosException as error:
        return [f"invalid: {error}"]
    except Exception as error:  # Chaos Toolkit's validator crashing on input it did not expect
        return [f"invalid: Chaos Toolkit cannot validate it: {type(error).__name__}: {error}"]
    try:
        return argument_problems(experiment, configuration)
    except Exception as error:  # a bug must still not show the user a traceback
        return [f"chaosmesh could not check the arguments: {type(error).__name__}: {error}"]


def load(path: Path) -> dict[str, Any]:
    """The experiment in ``path``, or InvalidInput saying what is wrong with the file."""
    document = read_document(path, EXPERIMENT)
    if not isinstance(document, dict):
        raise InvalidInput(
            _DOCUMENT,
            f"must be a mapping (title, description, method, ...), got {_kind(document)}",
        )
    return document


@dataclass(frozen=True)
class Document:
    """What a file is meant to hold, for the messages about it."""

    name: str  # the field a message about the whole file names
    suffix_fix: str
    shape: str  # what the file holds, said when it is empty
    depth: str  # how deep a real one is, said when it is far deeper
    # YAML's implicit types: a file whose strings look like times or dates brings its own
    yaml_loader: type[Any] | None = None


EXPERIMENT = Document(
    name=_DOCUMENT,
    suffix_fix="name the file *.json, *.yaml or *.yml, as chaos run expects",
    shape="an experiment is a mapping with a title, a description and a method",
    depth="an experiment is a dozen levels deep",
)


def read_document(path: Path, kind: Document) -> Any:
    """The JSON or YAML document in ``path``, bounded in depth and size, or InvalidInput
    naming ``kind.name`` and saying what is wrong with the file."""
    # What is there first: "neither JSON nor YAML" would send a user renaming a missing file.
    try:
        is_directory = path.is_dir()
        path.stat()
    except FileNotFoundError:
        raise InvalidInput(kind.name, "no such file") from None
    except OSError as error:  # a name too long, a loop of links, a parent that is a file
        raise InvalidInput(kind.name, f"cannot be read: {error.strerror}") from None
    if is_directory:
        raise InvalidInput(kind.name, "is a directory, not a file")
    if path.suffix.lower() not in _SUFFIXES:
        raise InvalidInput(kind.name, f"{path.name!r} is neither JSON nor YAML", kind.suffix_fix)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInput(kind.name, f"cannot be read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInput(
            kind.name,
            f"is not UTF-8 text (byte {error.start}, line {line})",
            "save the file as UTF-8",
        ) from None
    if not text.strip():
        raise InvalidInput(kind.name, "the file is empty", kind.shape)
    if path.suffix.lower() == ".json":
        document = _parse_json(text, kind)
    else:
        document = _parse_yaml(text, kind)
    check_size(document, kind)
    return document


def _parse_json(text: str, kind: Document) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            kind.name,
            f"JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}",
        ) from None
    except RecursionError:
        line, column = _too_deep_at(text)
        raise InvalidInput(
            kind.name,
            f"nested too deeply (more than {MAX_DEPTH} levels at line {line}, column {column})",
            kind.depth,
        ) from None
    except ValueError as error:  # e.g. an integer longer than Python's 4300 digits
        raise InvalidInput(kind.name, f"JSON value cannot be read: {error}") from None


def _parse_yaml(text: str, kind: Document) -> Any:
    # libyaml when it is there: the pure-Python parser takes a minute on a 10 MB document.
    loader: Any = kind.yaml_loader or getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader, or one built on it
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = (
            " ".join(part for part in (error.context, error.problem) if part)
            or type(error).__name__
        )
        raise InvalidInput(kind.name, f"YAML syntax error{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise InvalidInput(kind.name, f"YAML cannot be read: {error}") from None
    except RecursionError:
        raise InvalidInput(
            kind.name, f"nested too deeply (more than {MAX_DEPTH} levels)", kind.depth
        ) from None
    except ValueError as error:
        raise InvalidInput(kind.name, f"YAML value cannot be read: {error}") from None


def check_size(document: Any, kind: Document = EXPERIMENT) -> None:
    """Refuse documents deeper than MAX_DEPTH or with more than MAX_VALUES values.

    Walked without recursion, and counting shared values (YAML aliases) once per use, so an
    alias bomb is stopped here rather than in whatever walks it next.
    """
    # Each entry: a value, its depth, and its path as a (parent path, key) chain.
    stack: list[tuple[Any, int, _Path]] = [(document, 0, None)]
    count = 0
    while stack:
        value, depth, path = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise InvalidInput(
                kind.name,
                f"has more than {MAX_VALUES} values",
                f"YAML aliases (*name) repeating a large part? write the {kind.name} out",
            )
        if depth > MAX_DEPTH:
            raise InvalidInput(
                _render(path) or kind.name, f"nested more than {MAX_DEPTH} levels deep", kind.depth
            )
        if isinstance(value, dict):
            stack.extend((item, depth + 1, (path, f".{key}")) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, depth + 1, (path, f"[{i}]")) for i, item in enumerate(value))


_Path = tuple[Any, str] | None


def _render(path: _Path) -> str:
    """``a.b[0][0]`` with long runs of one step written once with their count: ``a.b[0]*95``."""
    steps: list[str] = []
    while path is not None:
        path, step = path
        steps.append(step)
    steps.reverse()
    parts: list[str] = []
    index = 0
    while index < len(steps):
        end = index
        while end < len(steps) and steps[end] == steps[index]:
            end += 1
        run = end - index
        parts.append(steps[index] * run if run <= 3 else f"{steps[index]}*{run}")
        index = end
    return "".join(parts).removeprefix(".")


def _too_deep_at(text: str) -> tuple[int, int]:
    """Line and column where JSON brackets first nest deeper than MAX_DEPTH."""
    depth = 0
    line, column = 1, 0
    in_string = escaped = False
    for char in text:
        column += 1
        if char == "\n":
            line, column = line + 1, 0
        elif in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, column
        elif char in "]}":
            depth -= 1
    return line, column


def shape_problems(experiment: dict[str, Any]) -> list[str]:
    """One line per part whose JSON type Chaos Toolkit or chaosmesh could not walk."""
    problems: list[str] = []

    def expect(value: Any, kind: type, path: str, what: str) -> bool:
        if isinstance(value, kind):
            return True
        problems.append(f"{path}: must be {what}, got {_kind(value)}")
        return False

    for key in ("title", "description"):
        if key not in experiment:
            problems.append(f"{key}: missing (every experiment needs a {key})")
        elif expect(experiment[key], str, key, "a string") and not experiment[key].strip():
            problems.append(f"{key}: empty (every experiment needs a {key})")
    if "method" not in experiment:
        problems.append(
            "method: missing (a list of activities; it may be empty to check the steady state only)"
        )
    configuration = experiment.get("configuration", {})
    if expect(configuration, dict, "configuration", "a mapping"):
        for key, value in configuration.items():
            if isinstance(value, dict) and value.get("type") == "env":
                expect(value.get("key"), str, f"configuration.{key}.key", "an environment variable")
    secrets = experiment.get("secrets", {})
    if expect(secrets, dict, "secrets", "a mapping"):
        for key, value in secrets.items():
            expect(value, dict, f"secrets.{key}", "a mapping")
    hypothesis = experiment.get("steady-state-hypothesis")
    activities: list[tuple[str, Any]] = []
    if hypothesis is not None and expect(hypothesis, dict, "steady-state-hypothesis", "a mapping"):
        probes = hypothesis.get("probes", [])
        if expect(probes, list, "steady-state-hypothesis.probes", "a list"):
            activities += [
                (f"steady-state-hypothesis.probes[{i}]", p) for i, p in enumerate(probes)
            ]
    for section in ("method", "rollbacks"):
        listed = experiment.get(section, [])
        if expect(listed, list, section, "a list of activities"):
            activities += [(f"{section}[{i}]", a) for i, a in enumerate(listed)]
    controls = experiment.get("controls", [])
    if expect(controls, list, "controls", "a list"):
        activities += [(f"controls[{i}]", c) for i, c in enumerate(controls)]
    for path, activity in activities:
        if not expect(activity, dict, path, "a mapping"):
            continue
        if "ref" in activity:
            continue
        provider = activity.get("provider")
        if provider is None or not expect(provider, dict, f"{path}.provider", "a mapping"):
            continue
        arguments = provider.get("arguments")
        if arguments is not None and provider.get("type", "python") == "python":
            expect(arguments, dict, f"{path}.provider.arguments", "a mapping of names to values")
    return problems


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    return names.get(type(value), f"a {type(value).__name__}")
