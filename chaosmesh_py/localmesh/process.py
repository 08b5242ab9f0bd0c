"""The local mesh's child processes (Envoy, Prometheus): tied to the process that runs the mesh.

A child started with ``die_with_parent()`` as its ``preexec_fn`` gets SIGTERM from the kernel
when the thread that started it ends (Linux's PR_SET_PDEATHSIG follows the thread, not the
process): so only the main thread, which lives as long as the mesh, ties a child this way.
``chaosmesh local down`` also signals the daemon's whole process group, which every child
shares, so a child started without the tie still stops with the mesh.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the kernel SIGTERM the child when this process dies (Linux, main
    thread); None where that cannot be promised."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    # Loaded before the fork: the child may only make async-signal-safe calls.
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; the process is reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
