"""Ctrl-C during training: finish the step in flight, save, stop; a second Ctrl-C aborts."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class InterruptFlag:
    """Set by the first SIGINT while :func:`deferred_interrupt` is active."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def deferred_interrupt(message: str) -> Iterator[InterruptFlag]:
    """Turn the first Ctrl-C into ``flag.requested = True`` (printing ``message``), so the
    training loop can stop between steps with consistent state; the second raises as usual.

    Outside the main thread signals cannot be caught; there Ctrl-C raises at once.
    """
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag.requested = True
        print(message, flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
