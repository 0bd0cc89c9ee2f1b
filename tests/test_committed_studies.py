"""Every committed study is a record that regenerates: in a fresh `git clone` of HEAD (no DVC
experiments: a clone fetches no refs/exps), `python -m src.study NAME -A` rebuilds
reports/study/NAME/ from its committed experiments.csv and design.json (a search: trials.csv and
settings.json), and `python -m src.study claims` rebuilds reports/claims.md and claims.csv, byte
for byte. Each test first deletes the report files it checks (report.md and summary.csv; the
claims page), so the study must write them again, then asserts `git status` shows no change.

Figures (*.png) are excepted: matplotlib's output depends on its version and fonts, so a PNG may
differ while saying the same. The check lists the changed PNGs apart and ignores them explicitly
(then restores them); every other file, the figure list in report.md included, must match.

A change to the study code that changes a report fails here until the regenerated reports are
committed with it (docs/studies.md, "A committed study is a record").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from src.core import paths
from src.experiments import dvc_queue, rdb
from tests.conftest import REPO, sh

pytestmark = pytest.mark.e2e

STUDIES = sorted(p.name for p in (REPO / paths.STUDY_REPORTS).iterdir() if p.is_dir())
CLAIMS = "claims"
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, dict]:
    """One fresh clone of HEAD for the module, and the environment to run the studies in."""
    root = tmp_path_factory.mktemp("committed") / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    env = dvc_queue.tool_env() | {"DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}
    for inherited in ("MLFLOW_TRACKING_URI", rdb.ENV, "DVC_ROOT", "DVC_EXP_NAME"):
        env.pop(inherited, None)
    return root, env


def changed(root: Path, env: dict) -> tuple[list[str], list[str]]:
    """(report files that differ from HEAD, PNGs that do), as `git status --porcelain` lines."""
    status = sh("git", "status", "--porcelain", "--untracked-files=all", "--",
                str(paths.CLAIMS_REPORT.parent), cwd=root, env=env).stdout.splitlines()
    return ([line for line in status if not line.endswith(".png")],
            [line for line in status if line.endswith(".png")])


def restore(root: Path, env: dict) -> None:
    sh("git", "checkout", "-q", "--", str(paths.CLAIMS_REPORT.parent), cwd=root, env=env)
    sh("git", "clean", "-qfd", "--", str(paths.CLAIMS_REPORT.parent), cwd=root, env=env)


@pytest.mark.parametrize("name", [*STUDIES, CLAIMS])
def test_a_committed_study_regenerates_byte_for_byte(clone, name):
    root, env = clone
    if name == CLAIMS:
        rebuilt = [paths.CLAIMS_REPORT, paths.CLAIMS_TABLE]
        command, said = [CLAIMS], "claims: Of "
    else:
        folder = paths.STUDY_REPORTS / name
        rebuilt = [folder / "report.md", *([folder / "summary.csv"]
                                          if (root / folder / "summary.csv").is_file() else [])]
        command, said = [name, "-A"], "; rebuilt from the committed "
    try:
        for path in rebuilt:
            (root / path).unlink()  # the study must write them again
        done = sh(sys.executable, "-m", "src.study", *command, cwd=root, env=env,
                  timeout=TIMEOUT_S)
        assert said in done.stdout, done.stdout  # from the record, not from live experiments
        assert all((root / path).is_file() for path in rebuilt)
        reports, figures = changed(root, env)
        diff = sh("git", "diff", "--", *(line[3:] for line in reports), cwd=root, env=env).stdout
        assert not reports, f"python -m src.study {' '.join(command)} in a fresh clone changed " \
                            f"{reports} (PNGs aside: {figures}):\n{diff[:4000]}"
    finally:
        restore(root, env)
