"""What ``chaosmesh local`` owns, and how it proves it before removing or signalling anything.

The state directory is ours only when it carries our marker (``MARKER``): ``up`` creates the
directory and the marker, or adopts an empty directory by writing the marker into it. ``down``
removes only a marked directory: everything in it (it was empty, or absent, before ``up``), and
the directory itself when ``up`` created it. Any other directory is refused (``NotOurs``): a
``--state-dir`` pointing at a user's folder must never lose a file.

The daemon is ours only when the process the pid file names is still the one ``up`` started:
its command line runs our daemon module with this state directory, and its start time (ticks
since boot, ``/proc/PID/stat`` field 22) is the one recorded at launch, so a pid reused by an
unrelated process is never signalled. Without ``/proc`` nothing is verifiable, so nothing is
signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_py.engine import private_file
from chaosmesh_py.errors import InvalidInput

MARKER = ".chaosmesh-local-state"
PID_FILE = "daemon.pid"  # written by `up` at once, so `down` finds a daemon that never got ready
DAEMON_MODULE = "chaosmesh_py.localmesh.daemon"


class NotOurs(InvalidInput):
    """The state directory is not one ``chaosmesh local up`` made: nothing in it is touched."""

    def __init__(self, state_dir: Path, problem: str) -> None:
        super().__init__(
            "--state-dir",
            f"{state_dir} {problem}",
            "give a new or empty directory (or none: the default), or the one `local up` used",
        )


def _marker(state_dir: Path) -> dict[str, object] | None:
    try:
        recorded = json.loads((state_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def is_marked(state_dir: Path) -> bool:
    return state_dir.is_dir() and not state_dir.is_symlink() and _marker(state_dir) is not None


def check_ours(state_dir: Path) -> None:
    """NotOurs unless ``state_dir`` is absent or carries our marker."""
    if state_dir.is_symlink():
        raise NotOurs(state_dir, "is a symbolic link")
    if not state_dir.exists():
        return
    if not state_dir.is_dir():
        raise NotOurs(state_dir, "is not a directory")
    if _marker(state_dir) is None:
        raise NotOurs(state_dir, "is not a local mesh state directory (it has no marker)")


def claim(state_dir: Path) -> None:
    """Make ``state_dir`` ours: create it, or adopt it empty; ours already is fine."""
    check_ours_or_empty(state_dir)
    if _marker(state_dir) is not None:
        return
    created = not state_dir.exists()
    if created:
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(mode=0o700)
    mode = stat.S_IMODE(state_dir.stat().st_mode)
    state_dir.chmod(0o700)  # it will hold the API's token and private key
    marker = {"created_by": "chaosmesh local up", "created_directory": created, "mode": mode}
    descriptor = private_file.open_private(state_dir / MARKER, os.O_WRONLY | os.O_EXCL)
    with os.fdopen(descriptor, "w") as file:
        json.dump(marker, file)


def check_ours_or_empty(state_dir: Path) -> None:
    """NotOurs unless ``up`` may use ``state_dir``: absent, empty, or ours."""
    if state_dir.is_dir() and not state_dir.is_symlink() and _marker(state_dir) is None:
        if any(state_dir.iterdir()):
            raise NotOurs(
                state_dir, "is not empty and is not a local mesh state directory (no marker)"
            )
        return
    check_ours(state_dir)


def release(state_dir: Path) -> None:
    """Remove what ``up`` made in ``state_dir`` (NotOurs if it is not ours)."""
    check_ours(state_dir)
    marker = _marker(state_dir)
    if marker is None:  # absent
        return
    if marker.get("created_directory"):
        shutil.rmtree(state_dir)
        return
    for entry in state_dir.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (state_dir / MARKER).unlink()  # last: a failure above leaves the directory still ours
    mode = marker.get("mode")
    if isinstance(mode, int):
        state_dir.chmod(mode)  # the adopted directory as it was


@dataclass(frozen=True)
class Process:
    pid: int
    start_ticks: int  # /proc/PID/stat field 22: when it started, in clock ticks since boot


def _start_ticks(pid: int) -> int | None:
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may hold spaces: count after it.
    fields = line[line.rfind(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is gone already
        return None
    return int(fields[19])


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def record_daemon(state_dir: Path, pid: int) -> None:
    """Remember the daemon just started: its pid and start time."""
    started = _start_ticks(pid)
    (state_dir / PID_FILE).write_text(json.dumps({"pid": pid, "start_ticks": started}))


def daemon_command(state_dir: Path) -> list[str]:
    """The arguments that make a process our daemon for ``state_dir`` (after the Python)."""
    return ["-m", DAEMON_MODULE, "--state-dir", str(state_dir)]


def recorded_daemon(state_dir: Path) -> Process | None:
    """The process the pid file names, as recorded at launch; None without a usable record."""
    try:
        recorded = json.loads((state_dir / PID_FILE).read_text())
        return Process(int(recorded["pid"]), int(recorded["start_ticks"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_our_daemon(state_dir: Path, process: Process) -> bool:
    """Is ``process`` still running our daemon for ``state_dir``, the one recorded?"""
    if _start_ticks(process.pid) != process.start_ticks:
        return False  # gone, or its pid reused by a later process
    command = _command_line(process.pid)
    expected = daemon_command(state_dir)
    return any(
        command[i : i + len(expected)] == expected for i in range(len(command) - len(expected) + 1)
    )


def our_daemon(state_dir: Path) -> int | None:
    """The pid of this state directory's running daemon, verified; None otherwise."""
    process = recorded_daemon(state_dir)
    if process is None or not is_our_daemon(state_dir, process):
        return None
    return process.pid
