"""`sweep run --until-decided --commit-looks` (src/experiments/look_commits.py): after a look, the
study's folder and the claims page are committed, and nothing else that is staged."""

from __future__ import annotations

import subprocess
from pathlib import Path

from src.core import paths
from src.experiments import look_commits


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def study_writes(report: str, fail: bool = False):
    """subprocess.run with `python -m src.study NAME` replaced by writing ``report``."""
    def run(step, **kwargs):
        if step[1:3] == ["-m", "src.study"]:
            if step[3] == "claims":
                paths.CLAIMS_REPORT.write_text("claims\n")
            else:
                (paths.STUDY_REPORTS / step[3]).mkdir(parents=True, exist_ok=True)
                (paths.STUDY_REPORTS / step[3] / "report.md").write_text(report)
            return subprocess.CompletedProcess(step, 1 if fail else 0, "", "boom" if fail else "")
        return subprocess.run(step, **kwargs)
    return run


def test_a_look_commits_the_study_and_the_claims_page_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    Path("claims.yaml").write_text("claims: []\n")
    Path("other.txt").write_text("staged, not the study's\n")
    git("add", "-A")
    git("commit", "-qm", "init")
    Path("other.txt").write_text("changed and staged\n")
    git("add", "other.txt")

    assert look_commits.commit_look("s", 2, "look 2 of 8: 1 decided", run=study_writes("v1\n"))
    assert git("log", "-1", "--format=%s") == "study s: look 2 (look 2 of 8: 1 decided)"
    assert sorted(git("show", "--name-only", "--format=", "HEAD").split()) == [
        "reports/claims.md", "reports/study/s/report.md"]
    assert "other.txt" in git("diff", "--cached", "--name-only")  # left staged, not committed

    head = git("rev-parse", "HEAD")
    assert look_commits.commit_look("s", 3, "same", run=study_writes("v1\n"))
    assert git("rev-parse", "HEAD") == head  # nothing changed: no empty commit

    assert not look_commits.commit_look("s", 4, "x", run=study_writes("v2\n", fail=True))
    assert git("rev-parse", "HEAD") == head
    assert "failed (exit 1): boom; the study goes on" in capsys.readouterr().err
