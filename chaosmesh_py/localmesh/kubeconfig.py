"""The ``chaosmesh-local`` entries in a kubeconfig: added by ``local up``, removed by ``down``.

The current context is never changed: an experiment reaches the local mesh only when asked to
(``KUBERNETES_CONTEXT=chaosmesh-local`` or ``kubectl --context chaosmesh-local``), so a
forgotten local mesh can never redirect a command meant for a cluster, nor the reverse.

A kubeconfig holds other clusters' credentials and was written by someone else, so it is edited
in place, as text: only our three entries (cluster, user, context) change; every other byte,
comment and indentation stays as it was, and removing our entries gives back the file as it was
before we added them. The new file is created with mode 0600 before its first byte is written,
then renamed over the old one; a symlink is written through to its target, and kubectl's own
lock file (``<file>.lock``) keeps a concurrent kubectl from interleaving. A kubeconfig in JSON
or in YAML flow style, which cannot be edited line by line, is rewritten whole.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_py.engine import private_file
from chaosmesh_py.errors import InvalidInput

CONTEXT = "chaosmesh-local"
SECTIONS = ("clusters", "users", "contexts")
_LOCK_WAIT_S = 5.0
# What a kubeconfig we created holds besides our entries: removing them removes the file.
_SKELETON = "apiVersion: v1\nkind: Config\npreferences: {}\n"


def default_path() -> Path:
    """The file kubectl writes to: the first entry of KUBECONFIG, else ~/.kube/config."""
    configured = os.environ.get("KUBECONFIG", "")
    first = next((p for p in configured.split(os.pathsep) if p), "~/.kube/config")
    return Path(first).expanduser()


def entries(
    server: str, ca_pem: bytes, token: str, context: str = CONTEXT
) -> dict[str, dict[str, Any]]:
    """Our entry in each section, as kubectl writes them (keys sorted)."""
    ca_data = base64.b64encode(ca_pem).decode()
    return {
        "clusters": {
            "cluster": {"certificate-authority-data": ca_data, "server": server},
            "name": context,
        },
        "users": {"name": context, "user": {"token": token}},
        "contexts": {"context": {"cluster": context, "user": context}, "name": context},
    }


def add_context(path: Path, server: str, ca_pem: bytes, token: str, context: str = CONTEXT) -> None:
    """Add (or replace) the cluster, user and context named ``context``."""
    wanted = entries(server, ca_pem, token, context)
    with _editing(path) as edit:
        edit.text = _upsert(edit.text or "", wanted, context)


def remove_context(path: Path, context: str = CONTEXT, server: str | None = None) -> None:
    """Remove the entries named ``context``; with ``server``, only if its cluster is that one
    (another mesh's context of the same name is left alone). Nothing else changes."""
    if not path.exists():
        return
    with _editing(path) as edit:
        text = edit.text or ""
        if server is not None and _server(text, context) != server:
            return
        edit.text = _remove(text, context)
        if edit.text == _SKELETON:  # the file we created: gone with us
            edit.text = None


def server_of(path: Path, context: str = CONTEXT) -> str | None:
    """The server of the cluster named ``context``, or None."""
    try:
        return _server(Path(os.path.realpath(path)).read_text(), context)
    except OSError:
        return None


# -- the file --------------------------------------------------------------------------------


@dataclass
class _Edit:
    text: str | None  # None: remove the file


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[_Edit]:
    """Read the file (through symlinks) under kubectl's lock, then write what the block left in
    ``text`` if it changed."""
    target = Path(os.path.realpath(path))
    if not target.parent.exists():
        target.parent.mkdir(parents=True, mode=0o700)
    with _locked(target):
        try:
            original = target.read_text()
        except FileNotFoundError:
            original = ""
        edit = _Edit(original)
        yield edit
        if edit.text is None:
            target.unlink(missing_ok=True)
        elif edit.text != original:
            _replace(target, edit.text)


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold ``<file>.lock`` as client-go (kubectl) does: created exclusively, removed after."""
    lock = target.with_name(target.name + ".lock")
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise InvalidInput(
                    "--kubeconfig",
                    f"{target} is locked by {lock} (another kubectl or chaosmesh is writing it)",
                    f"try again; if nothing is writing it, remove {lock}",
                ) from None
            time.sleep(0.05)
    os.close(descriptor)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _replace(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    # 0600 from the first byte: the file holds credentials, ours and other clusters'.
    descriptor = private_file.open_private(temporary, os.O_WRONLY | os.O_EXCL)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# -- editing the text ------------------------------------------------------------------------


def _compose(text: str) -> yaml.MappingNode | None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise InvalidInput("--kubeconfig", f"is not valid YAML: {error}") from None
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~")):
        return None
    if not isinstance(node, yaml.MappingNode):
        raise InvalidInput("--kubeconfig", "is not a kubeconfig (not a mapping)")
    return node


def _section(node: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    return next(((k, v) for k, v in node.value if k.value == name), None)


def _named(item: yaml.Node) -> str | None:
    if isinstance(item, yaml.MappingNode):
        for key, value in item.value:
            if key.value == "name" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return None


def _editable(node: yaml.MappingNode | None) -> bool:
    """Block style all the way down our sections: the text can be edited line by line."""
    if node is None:
        return True
    if node.flow_style:
        return False
    for name in SECTIONS:
        found = _section(node, name)
        if found is None:
            continue
        value = found[1]
        if isinstance(value, yaml.SequenceNode) and value.flow_style and value.value:
            return False
        if isinstance(value, yaml.MappingNode):
            return False
    return True


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _block(entry: dict[str, Any], dash_column: int, newline: str) -> str:
    """``entry`` as one block-sequence item whose dash sits at ``dash_column``."""
    dumped = yaml.safe_dump(entry, default_flow_style=False, sort_keys=False, width=1 << 16)
    lines = dumped.splitlines()
    indent = " " * dash_column
    first, rest = lines[0], lines[1:]
    return "".join(
        [f"{indent}- {first}{newline}", *(f"{indent}  {line}{newline}" for line in rest)]
    )


def _end(node: yaml.Node) -> int:
    """Where the node's own text ends (a block collection's end mark runs on over the comments
    and blank lines that follow it)."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _end(node.value[-1])
    return int(node.end_mark.index)


Span = tuple[int, int]


def _item_spans(text: str, sequence: yaml.SequenceNode) -> list[Span] | None:
    """Each item's text: from the start of its dash's line to the end of its last line. None
    when a dash is not on its item's first line (the text is then rewritten whole)."""
    spans = []
    for item in sequence.value:
        start = text.rfind("\n", 0, item.start_mark.index) + 1
        if text[start : item.start_mark.index].strip() != "-":
            return None
        end = _end(item)
        if end > 0 and text[end - 1] != "\n":
            newline_at = text.find("\n", end)
            end = len(text) if newline_at < 0 else newline_at + 1
        spans.append((start, end))
    return spans


def _upsert(text: str, wanted: dict[str, dict[str, Any]], context: str) -> str:
    node = _compose(text)
    if not _editable(node):
        return _rewrite(text, node, wanted, context)
    newline = _newline(text)
    edits: list[tuple[int, int, str]] = []
    appended = []
    for name in SECTIONS:
        found = _section(node, name) if node is not None else None
        if found is None:
            appended.append(f"{name}:{newline}{_block(wanted[name], 0, newline)}")
            continue
        key, value = found
        if not isinstance(value, yaml.SequenceNode) or not value.value:  # null, "", []
            block = _block(wanted[name], 0, newline).removesuffix(newline)
            edits.append((key.end_mark.index, value.end_mark.index, f":{newline}{block}"))
            continue
        spans = _item_spans(text, value)
        if spans is None:
            return _rewrite(text, node, wanted, context)
        dash_column = text.index("-", spans[0][0]) - spans[0][0]
        block = _block(wanted[name], dash_column, newline)
        ours = [
            span for item, span in zip(value.value, spans, strict=True) if _named(item) == context
        ]
        if ours:
            edits.append((*ours[0], block))
            edits += [(start, end, "") for start, end in ours[1:]]
        else:
            end = spans[-1][1]
            prefix = "" if text[end - 1] == "\n" else newline
            edits.append((end, end, prefix + block))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    if node is None:
        text = _SKELETON.replace("\n", newline)
    if appended:
        if text and not text.endswith("\n"):
            text += newline
        text += "".join(appended)
    return text


def _remove(text: str, context: str) -> str:
    node = _compose(text)
    if node is None:
        return text
    if not _editable(node):
        return _rewrite(text, node, None, context)
    edits: list[tuple[int, int, str]] = []
    for name in SECTIONS:
        found = _section(node, name)
        if found is None:
            continue
        key, value = found
        if not isinstance(value, yaml.SequenceNode):
            continue
        spans = _item_spans(text, value)
        if spans is None:
            return _rewrite(text, node, None, context)
        ours = [
            span for item, span in zip(value.value, spans, strict=True) if _named(item) == context
        ]
        if not ours:
            continue
        if len(ours) == len(spans):
            # Only ours: the key goes too, as it was absent before we added it.
            start = text.rfind("\n", 0, key.start_mark.index) + 1
            edits.append((start, ours[-1][1], ""))
        else:
            edits += [(start, end, "") for start, end in ours]
    found = _section(node, "current-context")
    if found is not None and found[1].value == context:
        edits.append((found[1].start_mark.index, found[1].end_mark.index, '""'))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _rewrite(
    text: str,
    node: yaml.MappingNode | None,
    wanted: dict[str, dict[str, Any]] | None,
    context: str,
) -> str:
    """The whole file rewritten (JSON stays JSON): for what cannot be edited line by line."""
    config: dict[str, Any] = yaml.safe_load(text) or {}
    for name in SECTIONS:
        kept = [e for e in config.get(name) or [] if e.get("name") != context]
        config[name] = [*kept, wanted[name]] if wanted is not None else kept
    if wanted is None and config.get("current-context") == context:
        config["current-context"] = ""
    if text.lstrip().startswith("{"):
        return json.dumps(config, indent=2) + "\n"
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def _server(text: str, context: str) -> str | None:
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return None
    for cluster in config.get("clusters") or [] if isinstance(config, dict) else []:
        if isinstance(cluster, dict) and cluster.get("name") == context:
            server = (cluster.get("cluster") or {}).get("server")
            return str(server) if server is not None else None
    return None
