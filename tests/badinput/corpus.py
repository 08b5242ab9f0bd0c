"""Building blocks of the bad-input corpus: the Bookinfo experiments, and ways to break them.

Each experiment case starts from an experiment the project ships (``experiments/*.json``) and
changes one thing, so the error it gets can only come from that change.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

DROP = object()  # an argument value meaning "leave the argument out"

Writer = Callable[[Path], Path]


def shipped(name: str) -> dict[str, Any]:
    return json.loads((ROOT / f"experiments/{name}.json").read_text())


def changed(base: str = "bookinfo-ratings-delay", **arguments: Any) -> dict[str, Any]:
    """``base`` with its first method action's arguments changed (DROP removes one)."""
    experiment = shipped(base)
    provider = experiment["method"][0]["provider"]
    for name, value in arguments.items():
        if value is DROP:
            provider["arguments"].pop(name, None)
        else:
            provider["arguments"][name] = value
    return experiment


def delay(**arguments: Any) -> Writer:
    return document(changed("bookinfo-ratings-delay", **arguments))


def abort(**arguments: Any) -> Writer:
    return document(changed("bookinfo-ratings-abort", **arguments))


def configured(**entries: Any) -> Writer:
    """The delay experiment with configuration entries added (DROP removes one)."""
    experiment = shipped("bookinfo-ratings-delay")
    for key, value in entries.items():
        if value is DROP:
            experiment["configuration"].pop(key, None)
        else:
            experiment["configuration"][key] = value
    return document(experiment)


def edited(edit: Callable[[dict[str, Any]], Any], base: str = "bookinfo-ratings-delay") -> Writer:
    """``base`` changed by ``edit`` (which changes it in place, or returns a replacement)."""
    experiment = shipped(base)
    replaced = edit(experiment)
    return document(experiment if replaced is None else replaced)


def document(experiment: Any, suffix: str = ".json") -> Writer:
    frozen = copy.deepcopy(experiment)

    def write(directory: Path) -> Path:
        path = directory / f"experiment{suffix}"
        if suffix == ".json":
            path.write_text(json.dumps(frozen))
        else:
            import yaml

            path.write_text(yaml.safe_dump(frozen))
        return path

    return write


def raw(content: str | bytes, suffix: str = ".json") -> Writer:
    """A file with exactly ``content``: for what no serializer would write."""

    def write(directory: Path) -> Path:
        path = directory / f"experiment{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return write


def generated(make: Callable[[], str | bytes], suffix: str = ".json") -> Writer:
    """Like ``raw``, with content built only when the case runs (huge documents)."""

    def write(directory: Path) -> Path:
        return raw(make(), suffix)(directory)

    return write
