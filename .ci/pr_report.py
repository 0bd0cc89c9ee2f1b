"""A pull request's report in Markdown, against its target branch: what the forge's workflow writes to
the job summary (.github/workflows/ci.yml; .gitlab-ci.yml keeps it as an artifact).

    python .ci/pr_report.py BASE [HEAD]      # e.g. origin/main; HEAD defaults to HEAD

Three sections: `dvc params diff BASE HEAD --md`, `dvc metrics diff BASE HEAD --md`, and, when
reports/study/ changed, the verdicts that changed (one row per configuration of each changed
reports/study/<study>/summary.csv, the table every study report reads). Both revisions are commits,
so the report says what the pull request changes, whatever the working tree holds; the workflow's
reproduce job checks separately that the committed metrics reproduce.

Needs git and DVC only (runs `python -m dvc` with this interpreter), not the project's environment.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import PurePosixPath

STUDIES = "reports/study"
SUMMARY = "summary.csv"  # src/study.py writes it: one row per configuration, `config` and `verdict`
ABSENT = "—"  # a configuration (or a study) one side does not have


def verdicts(summary_csv: str) -> dict[str, str]:
    """config -> verdict, from a study's summary.csv text ("" when the file is absent)."""
    rows = csv.DictReader(io.StringIO(summary_csv))
    return {row["config"]: row.get("verdict") or ABSENT for row in rows}


def changed_verdicts(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str, str]]:
    """(config, before, after) for each configuration whose verdict differs, added or removed
    configurations included (ABSENT on the side that lacks it); in the order after, then before."""
    configs = list(after) + [c for c in before if c not in after]
    return [(c, before.get(c, ABSENT), after.get(c, ABSENT)) for c in configs
            if before.get(c, ABSENT) != after.get(c, ABSENT)]


def md_table(header: list[str], rows: list[tuple]) -> str:
    cell = lambda value: str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def has_rows(dvc_md: str) -> bool:
    """Whether `dvc ... diff --md` output has a row below its header (DVC prints a bare header
    when nothing changed)."""
    return len([line for line in dvc_md.splitlines() if line.startswith("|")]) > 2


def changed_studies(paths: list[str]) -> list[str]:
    """The study folders (reports/study/<study>) that changed files lie in, sorted."""
    return sorted({PurePosixPath(p).parts[2] for p in paths
                   if len(PurePosixPath(p).parts) > 3 and p.startswith(STUDIES + "/")})


def report(base: str, head: str, params_md: str, metrics_md: str,
           study_changes: dict[str, list[tuple[str, str, str]]] | None) -> str:
    """The Markdown report; ``study_changes`` maps each changed study to its changed verdicts, or
    is None when reports/study/ did not change."""
    lines = [f"## tunelab: `{head}` against `{base}`", "",
             f"### Params (`dvc params diff {base} {head}`)", "",
             params_md.strip() if has_rows(params_md) else "No params changed.", "",
             f"### Metrics (`dvc metrics diff {base} {head}`)", "",
             metrics_md.strip() if has_rows(metrics_md) else "No metrics changed.", ""]
    if study_changes is not None:
        rows = [(study, *change) for study, changes in study_changes.items() for change in changes]
        unchanged = [study for study, changes in study_changes.items() if not changes]
        lines += [f"### Study verdicts (`{STUDIES}/*/{SUMMARY}`)", "",
                  md_table(["study", "configuration", "before", "after"], rows) if rows
                  else "No verdict changed.", ""]
        if unchanged:
            lines += ["Changed without a verdict changing: "
                      + ", ".join(f"`{s}`" for s in unchanged) + ".", ""]
    return "\n".join(lines)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def show(rev: str, path: str) -> str:
    """A file's text at ``rev``; "" where it does not exist there."""
    done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def dvc_diff(kind: str, base: str, head: str) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", kind, "diff", base, head, "--md"],
                          capture_output=True, text=True, check=True).stdout


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python .ci/pr_report.py BASE [HEAD]   (e.g. origin/main)", file=sys.stderr)
        return 2
    base, head = argv[0], argv[1] if len(argv) == 2 else "HEAD"
    for rev in (base, head):
        if subprocess.run(["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
                          capture_output=True).returncode != 0:
            print(f"pr_report: no commit '{rev}' in this clone (a shallow checkout? fetch the target "
                  f"branch: actions/checkout with fetch-depth: 0)", file=sys.stderr)
            return 2
    try:
        changed = git("diff", "--name-only", base, head, "--", STUDIES).splitlines()
        study_changes = None
        if changed:
            study_changes = {}
            for study in changed_studies(changed):
                path = f"{STUDIES}/{study}/{SUMMARY}"
                study_changes[study] = changed_verdicts(verdicts(show(base, path)),
                                                        verdicts(show(head, path)))
        text = report(base, head, dvc_diff("params", base, head), dvc_diff("metrics", base, head),
                      study_changes)
    except subprocess.CalledProcessError as exc:
        print(f"pr_report: `{' '.join(exc.cmd)}` failed (exit {exc.returncode}): {exc.stderr.strip()}",
              file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
