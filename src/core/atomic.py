"""Write files atomically: to a temporary sibling first, then rename over the target.

A run killed mid-write (Ctrl-C, SIGTERM, a crash) leaves the previous file or none, never half of
one, so the next ``dvc repro`` never reads a torn output.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def destination(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_with(path: str | Path, writer: Callable[[Path], object]) -> None:
    """``writer(tmp_path)`` writes the content; the result appears at ``path`` all at once."""
    with destination(path) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_npz(path: str | Path, arrays: dict) -> None:
    """Like ``np.savez`` but byte-for-byte reproducible (fixed zip timestamps), so DVC sees the
    same hash when the same data is prepared again."""
    import numpy as np

    def writer(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    write_with(path, writer)
