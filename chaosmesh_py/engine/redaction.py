"""Secret values out of everything the project writes or shows.

Chaos Toolkit writes the experiment into the journal with its ``secrets`` block as written, logs
what activities return, and substitutes secret values into whatever names them (``${token}`` in
a title or a header value). This module is the one place that decides what is hidden, and how;
the control applies it to the journal, to Chaos Toolkit's log (console and ``--log-file``,
through ``LogFilter``) and to the ledger's records; the gate to what a run prints, its log and
its reports; verdicts to their reasons.

What is a secret: every leaf value of an experiment's ``secrets`` block, inline or as Chaos
Toolkit loaded it (from the environment, from Vault), of any JSON type: strings and numbers (an
integer token is as secret as a string one). ``true``, ``false`` and ``null`` are not: they tell
a reader nothing, and hiding every ``true`` would blank the journal.

The rule, so that a short secret does not mangle unrelated text (a secret ``1`` must not turn
every 1 in the journal into ``***``):

- a *long* secret, whose text has at least ``MIN_EMBEDDED_CHARS`` (8) characters, is replaced
  wherever it appears: as a whole value, and inside any string or line (``Bearer <token>``);
- a *short* secret only where a value is exactly the secret: a whole JSON value in a document;
  in free text, where it stands quoted as a whole (``'ab1'`` or ``"ab1"``, as Python and JSON
  print a value). Elsewhere a short secret cannot be told from other text and may show, so the
  control warns at the start of a run, naming the secret's key, never its value;
- a whole value matches by type: a string secret hides strings equal to it (``"1"``, never the
  number 1); a number secret hides that number and strings equal to its text (Chaos Toolkit
  substitutes ``${pin}`` into text as text).

Every hidden value becomes the string ``***``, numbers included.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

REDACTED = "***"
# Shorter secrets are hidden only as whole values: inside text they could be anything.
MIN_EMBEDDED_CHARS = 8


Secret = str | int | float


def secret_leaves(value: object) -> Iterator[tuple[str, Secret]]:
    """(key path, value) of every secret leaf of a loaded secrets mapping (or any JSON value)."""

    def walk(node: object, path: str) -> Iterator[tuple[str, Secret]]:
        if isinstance(node, Mapping):
            for key, child in node.items():
                yield from walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list | tuple):
            for index, child in enumerate(node):
                yield from walk(child, f"{path}[{index}]")
        elif (leaf := _secret(node)) is not None:
            yield path, leaf

    return walk(value, "")


def secret_values(secrets: object, environ: Mapping[str, str]) -> set[Secret]:
    """Every secret an experiment's ``secrets`` block (as written, unloaded) holds inline or
    names in ``environ``."""
    values: set[Secret] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict) and node.get("type") == "env":
            value = environ.get(str(node.get("key")), node.get("default"))
            if (leaf := _secret(value)) is not None:
                values.add(leaf)
        elif isinstance(node, dict) and node.get("type") == "vault":
            return  # its values are known once loaded: the control remembers them
        elif isinstance(node, dict):
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)
        elif (leaf := _secret(node)) is not None:
            values.add(leaf)

    collect(secrets)
    return values


def _secret(value: object) -> Secret | None:
    """``value`` when it is a secret: a non-empty string or a number, not a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return value
    return None


class Redactor:
    """Hides a set of secrets by the module's rule: ``text`` in a line, ``deep`` in a document."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        values = [value for value in secrets if _secret(value) is not None]
        texts = {str(value) for value in values}
        # A string secret hides strings only: a secret "1" leaves the number 1 alone. A number
        # secret hides the number, and its text (substituted into a string, it is text).
        self._strings = frozenset(texts)
        self._numbers = frozenset(str(v) for v in values if not isinstance(v, str))
        # Longest first: a secret that contains another must vanish whole.
        long = sorted((t for t in texts if len(t) >= MIN_EMBEDDED_CHARS), key=len, reverse=True)
        short = sorted((t for t in texts if len(t) < MIN_EMBEDDED_CHARS), key=len, reverse=True)
        self._inside = re.compile("|".join(map(re.escape, long))) if long else None
        self._quoted = (
            re.compile("(['\"])(?:" + "|".join(map(re.escape, short)) + r")\1") if short else None
        )

    def __bool__(self) -> bool:
        return bool(self._strings)

    def text(self, text: str) -> str:
        """``text`` with every long secret, and every short one standing quoted, replaced."""
        if self._inside is not None:
            text = self._inside.sub(REDACTED, text)
        if self._quoted is not None:
            text = self._quoted.sub(lambda match: match[1] + REDACTED + match[1], text)
        return text

    __call__ = text

    def deep(self, node: Any) -> Any:
        """A copy of a JSON document with every value that is a secret, and every long secret
        inside a string, replaced; keys as text. New objects throughout."""
        if not self._strings:
            return node
        if isinstance(node, str):
            return REDACTED if node in self._strings else self.text(node)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int | float):
            return REDACTED if str(node) in self._numbers else node
        if isinstance(node, Mapping):
            return {
                self.text(key) if isinstance(key, str) else key: self.deep(value)
                for key, value in node.items()
            }
        if isinstance(node, list | tuple):
            return [self.deep(value) for value in node]
        return node


class _Known:
    """Every secret this process has been given (by the control, or an activity's own secrets):
    the ledger and the log hide them all. One experiment runs per `chaos run` process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[Secret] = set()
        self.redactor = Redactor(())


_known = _Known()


def remember(secrets: object) -> list[str]:
    """Hide every secret leaf of ``secrets`` (a loaded secrets mapping) from now on, in this
    process. Returns the key paths of the short ones (see the module docstring)."""
    found = list(secret_leaves(secrets))
    with _known.lock:
        new = {value for _, value in found} - _known.values
        if new:
            _known.values |= new
            _known.redactor = Redactor(_known.values)
    return sorted({path for path, value in found if len(str(value)) < MIN_EMBEDDED_CHARS})


def known() -> Redactor:
    """The redactor of every secret ``remember`` was given in this process."""
    return _known.redactor


def redact_journal(journal: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Replace, in place, every secret of the journal's experiment, and every secret this
    process knows, wherever it appears."""
    experiment = journal.get("experiment")
    block = experiment.get("secrets") if isinstance(experiment, dict) else None
    with _known.lock:
        values = secret_values(block, environ) | _known.values
    redactor = Redactor(values)
    for key, value in list(journal.items()):
        # New objects throughout: the journal shares them with the run still in progress.
        journal[key] = redactor.deep(value)


class LogFilter(logging.Filter):
    """Hides known secrets in every record a handler is about to write: the message with its
    arguments, and the traceback. Installed on handlers, not on a logger: records from child
    loggers reach the handlers without passing their parents' filters."""

    def filter(self, record: logging.LogRecord) -> bool:
        hide = known()
        if not hide:
            return True
        message = record.getMessage()
        hidden = hide.text(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text when set; exc_info would make some format it again.
            record.exc_text, record.exc_info = hide.text(record.exc_text), None
        if record.stack_info:
            record.stack_info = hide.text(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger) -> list[logging.Handler]:
    """Put ``LogFilter`` on every handler of ``logger`` (once); the handlers."""
    for handler in logger.handlers:
        if not any(isinstance(f, LogFilter) for f in handler.filters):
            handler.addFilter(LogFilter())
    return list(logger.handlers)
