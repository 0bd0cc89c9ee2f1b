"""`sweep run NAME --until-decided --commit-looks`: the study's report committed after every look.

A long adaptive study may be stopped at any point (a session's end, a laptop's lid). DVC keeps its
experiments as git refs of the clone that ran them, which a new machine never sees; the committed
reports/study/NAME/experiments.csv is what carries them over (src/experiments/carried.py). So after
each look that ran experiments, `python -m src.study NAME` writes the report of every finished
experiment, and it is committed (that folder and the claims page, nothing else staged). Between
looks no experiment is in flight: the next look's experiments are queued on the new commit, whose
code is the same, so the ones just committed count as run for it at once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from src.core import paths

Runner = Callable[..., subprocess.CompletedProcess]


def commit_look(name: str, look: int, summary: str, run: Runner = subprocess.run) -> bool:
    """Write and commit the report of study ``name`` after look ``look`` (``summary``: the
    runner's progress line, for the message). False, with a warning on stderr, when the report or
    the commit fails (the study goes on: its experiments are still in this clone)."""
    folder = (paths.STUDY_REPORTS / name).as_posix()
    kept = [folder, paths.CLAIMS_REPORT.as_posix(), paths.CLAIMS_TABLE.as_posix()]
    steps = [[sys.executable, "-m", "src.study", name]]
    if paths.CLAIMS.exists():
        steps.append([sys.executable, "-m", "src.study", "claims"])
    steps += [["git", "add", "--"], ["git", "commit", "-q", "-m",
                                     f"study {name}: look {look} ({summary})", "--"]]
    for step in steps:
        if step[0] == "git":
            step = step + [path for path in kept if Path(path).exists()]
        if step[:2] == ["git", "commit"] and run(
                ["git", "diff", "--cached", "--quiet", "--", *kept]).returncode == 0:
            return True  # the report did not change: nothing to commit
        done = run(step, capture_output=True, text=True)
        if done.returncode != 0:
            last = ((done.stderr or "") + (done.stdout or "")).strip().splitlines()[-1:] or ["?"]
            print(f"--commit-looks: `{' '.join(step[-3:] if step[0] != 'git' else step[:2])}` "
                  f"failed (exit {done.returncode}): {last[0]}; the study goes on",
                  file=sys.stderr, flush=True)
            return False
    print(f"--commit-looks: committed {folder} after look {look}", flush=True)
    return True
