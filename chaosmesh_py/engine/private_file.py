"""Files that hold run data (journals, logs, ledgers, reports): for their owner's eyes only.

They can hold what a run saw of the cluster, and a secret that slipped past redaction would be
readable by every local user from a 0644 file. So every such file is created 0600 (never
world-readable, not even for a moment), the directories we create for them 0700, and a symbolic
link where we create a file is refused: it would send run data wherever the link points.
A directory the user already has keeps its mode: it is theirs.
"""

from __future__ import annotations

import os
from pathlib import Path

from chaosmesh_py.errors import InvalidInput

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def make_directory(path: Path, field: str) -> None:
    """``path`` as a directory, created 0700 (with its parents) when missing; InvalidInput
    naming ``field`` when it is a link, a file, or cannot be created."""
    try:
        if path.is_symlink():
            raise _link(path, field)
        path.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    except FileExistsError:
        raise InvalidInput(field, f"{path} is a file, not a directory", _ELSEWHERE) from None
    except OSError as error:
        raise _uncreatable(path, field, str(error.strerror or error)) from None


def check_creatable(path: Path, field: str) -> None:
    """Refuse, before anything runs, a file we could not create at ``path`` later."""
    try:
        if path.is_symlink():
            raise _link(path, field)
        if path.is_dir():
            raise InvalidInput(field, f"{path} is a directory", "give a file name")
        parent = _nearest_existing(path.parent)
        writable = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    except OSError as error:  # a name too long, a loop of links
        raise _uncreatable(path, field, str(error.strerror)) from None
    if not writable:
        raise _uncreatable(path, field, f"{parent} is not writable")


def open_private(path: Path, flags: int) -> int:
    """A descriptor for ``path`` opened with ``flags``, created 0600 if missing, never through a
    symbolic link (OSError ELOOP); an existing file is made 0600 too."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes, field: str) -> None:
    """Replace ``path``'s content with ``data``, 0600, refusing a symbolic link."""
    try:
        fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as error:
        if path.is_symlink():
            raise _link(path, field) from None
        raise InvalidInput(
            field, f"{path} cannot be written: {error.strerror or error}", _ELSEWHERE
        ) from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def restrict(path: Path) -> None:
    """Make a file someone else created (Chaos Toolkit's log) 0600; a link is left alone."""
    try:
        if not path.is_symlink():
            path.chmod(FILE_MODE)
    except OSError:
        pass  # not ours to change (another owner): nothing we write goes there through us


_ELSEWHERE = "choose a path in a directory you can write"


def _uncreatable(path: Path, field: str, reason: str) -> InvalidInput:
    return InvalidInput(field, f"{path} cannot be created: {reason}", _ELSEWHERE)


def _link(path: Path, field: str) -> InvalidInput:
    return InvalidInput(
        field,
        f"{path} is a symbolic link",
        "give the real path: run data is never written through a link",
    )


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
