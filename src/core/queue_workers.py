"""DVC's queue workers of a repository, seen from the process table, and the torch threads that
each experiment on them gets: cores / live workers.

`sweep run` and `search` start the workers and set ``$TUNELAB_THREADS`` themselves; DVC's own
``dvc queue start -j J`` sets nothing, so without this each of its J experiments took every core.
A stage run by a queue worker finds its repository in ``$DVC_ROOT`` (DVC sets it, with
``$DVC_EXP_BASELINE_REV``, for every `dvc exp run`) and counts that repository's workers here.

:func:`worker_node_prefix`, :func:`parse_worker_serials`, :func:`queued_root` and
:func:`threads_per_worker` are pure; :func:`process_cmdlines` reads the process table.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

CELERY_DIR = os.path.join(".dvc", "tmp", "exps", "celery")  # DVC's queue: broker, worker logs


def worker_node_prefix(root: str | Path = ".") -> str:
    """DVC names a repository's queue workers ``dvc-exp-<hash>-<n>@localhost``, <hash> from the
    path of the repository's celery directory (`dvc.repo.experiments.queue.celery`)."""
    wdir = os.path.join(os.path.realpath(root), CELERY_DIR)
    return f"dvc-exp-{hashlib.sha256(wdir.encode('utf-8')).hexdigest()[:6]}-"


def parse_worker_serials(cmdlines: list[str], prefix: str) -> set[int]:
    """The serial numbers <n> of the ``dvc exp queue-worker <prefix><n>@localhost`` processes."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)@localhost")
    return {int(m.group(1)) for line in cmdlines if "queue-worker" in line
            for m in [pattern.search(line)] if m}


def process_cmdlines() -> list[str]:
    """The command lines of this machine's live (not zombie) processes."""
    import psutil
    return [" ".join(proc.info["cmdline"] or [])
            for proc in psutil.process_iter(["cmdline", "status"])
            if proc.info["status"] != psutil.STATUS_ZOMBIE]


def queued_root(environ: Mapping[str, str]) -> str | None:
    """The repository whose `dvc exp run` (queued or not) runs this process ($DVC_ROOT, set by DVC
    with $DVC_EXP_BASELINE_REV), None outside an experiment (`dvc repro`, a bare `python -m`)."""
    if environ.get("DVC_EXP_BASELINE_REV") and environ.get("DVC_ROOT"):
        return environ["DVC_ROOT"]
    return None


def sharing_workers(environ: Mapping[str, str],
                    cmdlines: Callable[[], list[str]] | None = None) -> int:
    """How many queue workers of this process's repository are live (0 outside an experiment):
    the experiments that share this machine's cores with this one. ``cmdlines`` reads the
    process table (:func:`process_cmdlines`), only inside an experiment."""
    root = queued_root(environ)
    if root is None:
        return 0
    return len(parse_worker_serials((cmdlines or process_cmdlines)(), worker_node_prefix(root)))


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` experiments at once: cores / workers, at least 1."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))
