"""Secret values out of what the project writes or shows: journals, verdicts, reports.

Chaos Toolkit writes the experiment into the journal with its ``secrets`` block as written, and
substitutes secret values into whatever names them (``${token}`` in a title). Every value the
block holds inline, or names in the environment, is replaced by ``***`` wherever it appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REDACTED = "***"


def secret_values(secrets: object, environ: Mapping[str, str]) -> set[str]:
    """Every secret value an experiment's ``secrets`` block holds or names in ``environ``."""
    values: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "env":
                value = environ.get(str(node.get("key")), node.get("default"))
                if isinstance(value, str) and value:
                    values.add(value)
                return
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)
        elif isinstance(node, str) and node:
            values.add(node)

    collect(secrets)
    return values


class Redactor:
    """``text`` with every secret replaced; ``deep`` does the same through a JSON document."""

    def __init__(self, secrets: set[str]) -> None:
        # Longest first: a secret that contains another must vanish whole.
        self._secrets = sorted(secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def deep(self, node: Any) -> Any:
        if not self._secrets:
            return node
        if isinstance(node, str):
            return self(node)
        if isinstance(node, dict):
            return {key: self.deep(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.deep(value) for value in node]
        return node


def redact_journal(journal: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Replace, in place, every secret value of the journal's experiment wherever it appears."""
    experiment = journal.get("experiment")
    if not isinstance(experiment, dict):
        return
    redactor = Redactor(secret_values(experiment.get("secrets"), environ))
    for key, value in list(journal.items()):
        # New objects throughout: the journal shares them with the run still in progress.
        journal[key] = redactor.deep(value)
