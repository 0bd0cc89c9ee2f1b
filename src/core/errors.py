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
    # SIGTERM (`kill`, a stopped queue worker) takes the same clean-up path as Ctrl-C.
    raise KeyboardInterrupt(f"signal {signum}")


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
