"""A python activity that takes its time, for signal tests (run with the repository on
PYTHONPATH)."""

import time

__all__ = ["wait"]


def wait(seconds: float) -> bool:
    time.sleep(seconds)
    return True
