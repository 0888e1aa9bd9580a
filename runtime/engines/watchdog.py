"""Deadlines for engines: a run longer than the `run_s` limit (EDGEMED_MAX_RUN_S) is stopped and refused, and a
load longer than `load_s` is given up.

A graph can compute without end: a Loop of 2**62 turns or a chain of large matrix products fits in a few hundred
bytes, and a bedside monitor waiting on it would never classify, or alarm on, another beat. One daemon thread per
process looks at the runs in flight every POLL_S and cancels an overdue one through its engine's handle
(onnxruntime's `RunOptions.terminate`, OpenVINO's `InferRequest.cancel`). Both engines stop between graph nodes,
so one long node finishes first (OpenVINO cannot stop inside a Loop: its engine refuses Loops). A run pays for two
clock reads; nothing is started per run.

Loading has a deadline too, the `load_s` limit (EDGEMED_MAX_LOAD_S): engines compute while they load (constant
folding; see `edgemed.runtime.onnx.folding` for what is bounded before), and neither can be cancelled there, so the
load runs on a thread of its own and the caller stops waiting at the deadline. The engine's work goes on until it
ends or the process exits (the CLI exits at once).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from edgemed.core.errors import LimitError
from edgemed.core.limits import LIMITS, limit

T = TypeVar("T")

POLL_S = 0.1

_slots: weakref.WeakSet[Slot] = weakref.WeakSet()
_lock = threading.Lock()
_thread: threading.Thread | None = None


class Slot:
    """One thread's runs on one engine: the engine's handle for them (run options, an inference request), how to
    cancel them, when the current one started (None between runs) and the limit it runs under."""

    __slots__ = ("handle", "cancel", "started", "limit_s", "__weakref__")

    def __init__(self, handle: Any, cancel: Callable[[], None], limit_s: float) -> None:
        self.handle, self.cancel, self.started, self.limit_s = handle, cancel, None, limit_s

    def overdue(self) -> bool:
        """Whether the current run has passed its deadline (a cancel that raced the end of the run before it, or a
        failure for another reason, is not a timeout)."""
        started = self.started
        return started is not None and time.monotonic() - started >= self.limit_s

    def timeout(self, where: str) -> LimitError:
        env = LIMITS["run_s"].env
        return LimitError(f"{where}: one run took longer than {self.limit_s:g} s and was stopped (a graph that loops "
                          f"or computes without end?); set {env} to allow longer runs if the model is genuine")


def watch(slot: Slot) -> Slot:
    """Register a slot with the watchdog, starting its thread on first use (and again in a forked child)."""
    global _thread
    with _lock:
        _slots.add(slot)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="edgemed-watchdog", daemon=True)
            _thread.start()
    return slot


def _loop() -> None:
    while True:
        time.sleep(POLL_S)
        now = time.monotonic()
        with _lock:
            slots = list(_slots)
        for slot in slots:
            started = slot.started
            # `is` again just before cancelling: the run seen may have ended and another begun meanwhile.
            if started is not None and now - started > slot.limit_s and slot.started is started:
                slot.cancel()


def within_load_deadline(load: Callable[[], T], what: str) -> T:
    """`load()`'s result, or LimitError when it has not returned by the `load_s` limit (its exception otherwise)."""
    seconds = limit("load_s")
    outcome: list = []

    def work() -> None:
        try:
            outcome.append((True, load()))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            outcome.append((False, exc))

    worker = threading.Thread(target=work, name="edgemed-load", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        atexit.register(_exit_while_loading, worker)
        env = LIMITS["load_s"].env
        raise LimitError(f"{what}: loading took longer than {seconds:g} s; edgemed stopped waiting (an engine "
                         f"folding a graph that computes without end?); set {env} to allow longer loads if the "
                         "model is genuine")
    done, value = outcome[0]
    if not done:
        raise value
    return value


def _exit_while_loading(worker: threading.Thread) -> None:
    """At exit, with a given-up load still inside its engine: end the process at once, exit status 1. Finalising
    the interpreter under the engine's running thread aborts it (onnxruntime: `terminate called`, status -6)."""
    if worker.is_alive():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
