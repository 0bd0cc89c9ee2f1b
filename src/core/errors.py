"""User-facing errors and the one place that turns them into a clean exit.

Every stage's ``main()`` runs under :func:`run`, so a bad parameter, a missing dataset or a corrupt
file ends the process with one readable line on stderr and a non-zero status, never a traceback.
Bugs (any other exception) still raise with their traceback: those are ours to see.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager


class TunelabError(Exception):
    """An error the user can fix; its message says what to change."""


class ParamError(TunelabError):
    """A params.yaml / -S / --set value that is unknown, mistyped or out of range."""


class DataError(TunelabError):
    """The dataset is missing, truncated, altered, or not what its checksum says."""


# Stopping: the first SIGTERM or Ctrl-C (SIGINT) raises KeyboardInterrupt, so that `finally` blocks
# and the stages' `except KeyboardInterrupt` clean-up run (MLflow runs ended KILLED, atomic writes).
# Not in the middle of a SQLite tracking store call, though: an interrupt raised inside SQLAlchemy
# between a write and its commit or rollback leaves that connection holding the database's lock,
# and the clean-up's own `set_terminated` then waits on it (MLflow's 20 s busy timeout) and fails
# with "database is locked" (measured: exit 1 instead of 130 when SIGTERM arrived while a store call
# waited on a busy store). Such calls run under :func:`signals_deferred`; the interrupt is raised
# when they return.
_deferring = 0                 # depth of signals_deferred() blocks in the main thread
_pending: int | None = None    # the stop signal that arrived inside one


def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
    global _pending
    # Later SIGTERMs are let pass, so that the clean-up and the exit finish: `pkill -f` and
    # `timeout` often deliver two (measured: `timeout N python -m src.sweep ...` killed by `pkill -f`
    # printed a KeyboardInterrupt traceback from an atexit hook). A Python-level handler, not
    # SIG_IGN: processes started later keep the default. A second Ctrl-C is a person insisting:
    # it interrupts the clean-up at once. SIGKILL still ends the process at once.
    signal.signal(signal.SIGTERM, _already_stopping)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _deferring:
        _pending = signum
        return
    raise KeyboardInterrupt(f"signal {signum}")


def _already_stopping(signum, frame):  # noqa: ARG001 - signal handler signature
    """Already stopping: nothing more to do."""


def handle_stop_signals() -> None:
    """The first SIGTERM or Ctrl-C raises KeyboardInterrupt (out of :func:`signals_deferred`
    blocks); later SIGTERMs are let pass. For the main thread of a stage or a worker process."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


@contextmanager
def signals_deferred():
    """A block that a stop signal does not cut short: the KeyboardInterrupt of a SIGTERM or Ctrl-C
    that arrives inside it is raised when the outermost such block ends. Signal handlers run in the
    main thread only, so in another thread this does nothing."""
    global _deferring, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise KeyboardInterrupt(f"signal {signum}")


def run(main: Callable[[], None], teardown: bool = True) -> None:
    """Run a stage's ``main`` and exit: 0 on success, 2 on a user error, 130 on interruption.
    ``teardown=False`` (the four DVC stages) ends the process by :func:`exit_now`, without the
    interpreter's teardown; a bug's traceback still ends it the usual way."""
    finish = sys.exit if teardown else exit_now
    handle_stop_signals()
    try:
        main()
    except TunelabError as error:
        print(f"error: {error}", file=sys.stderr)
        finish(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        finish(130)
    finish(0)


def exit_now(code: int) -> None:
    """Exit with ``code`` as :func:`sys.exit` would, less the interpreter's teardown: other
    non-daemon threads are waited for, the atexit handlers run and stdout and stderr are flushed,
    then the process ends (:func:`os._exit`) without freeing every module's objects one by one.
    That teardown took 1-3 s per stage process once torch, pandas, matplotlib or MLflow were
    imported (2-3 s each under load, benchmarks/fixed_cost.py), and every queued experiment paid
    it three times, between its stages, where DVC waits for the process to end. Only for a
    ``main`` whose files are all written and closed when it returns: the stages write theirs
    atomically (src/core/atomic.py), their stores commit each call."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # CPython's own: what Py_FinalizeEx runs before the teardown
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)
