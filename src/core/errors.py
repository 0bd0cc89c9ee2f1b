"""User-facing errors and the one place that turns them into a clean exit.

Every stage's ``main()`` runs under :func:`run`, so a bad parameter, a missing dataset or a corrupt
file ends the process with one readable line on stderr and a non-zero status, never a traceback.
Bugs (any other exception) still raise with their traceback: those are ours to see.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


class TunelabError(Exception):
    """An error the user can fix; its message says what to change."""


class ParamError(TunelabError):
    """A params.yaml / -S / --set value that is unknown, mistyped or out of range."""


class DataError(TunelabError):
    """The dataset is missing, truncated, altered, or not what its checksum says."""


def _raise_keyboard_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    # SIGTERM (`kill`, a stopped queue worker) takes the same clean-up path as Ctrl-C. Later
    # SIGTERMs are let pass, so that the clean-up (MLflow runs ended KILLED, atomic writes) and the
    # exit finish: `pkill -f` and `timeout` often deliver two (measured: `timeout N python -m
    # src.sweep ...` killed by `pkill -f` printed a KeyboardInterrupt traceback from an atexit
    # hook). A Python-level handler, not SIG_IGN: processes started later keep the default.
    signal.signal(signal.SIGTERM, _after_first_sigterm)
    raise KeyboardInterrupt(f"signal {signum}")


def _after_first_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    """Already stopping: nothing more to do (SIGKILL still ends the process at once)."""


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main`` and exit: 0 on success, 2 on a user error, 130 on interruption."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        main()
    except TunelabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)
