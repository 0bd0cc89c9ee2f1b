"""The forge's workflow (.github/workflows/ci.yml) and its pull-request report (.ci/pr_report.py).

The report's pieces against hand-written oracles; then, end to end, the report job's shell steps
replayed in order in a fresh clone of a repository whose feature branch changes params, metrics and
study verdicts, with GITHUB_STEP_SUMMARY pointing at a file whose tables are checked.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from src.experiments import dvc_queue
from tests.conftest import REPO, sh

WORKFLOW = REPO / ".github/workflows/ci.yml"
INSTALL_STEPS = {"install"}  # the test's interpreter already holds what these install
SUMMARY_HEADER = "config,n,verdict\n"


def load_report_module():
    spec = importlib.util.spec_from_file_location("pr_report", REPO / ".ci/pr_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pr_report = load_report_module()


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def run_steps(job: dict) -> list[dict]:
    return [step for step in job["steps"] if "run" in step]


def tables(markdown: str) -> dict[str, list[list[str]]]:
    """Each `### ` section's Markdown table as rows of stripped cells, header and separator left out
    (a section without a table maps to [])."""
    found, section = {}, None
    for line in markdown.splitlines():
        if line.startswith("### "):
            section = line[4:]
            found[section] = []
        elif section and line.startswith("|"):
            found[section].append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return {name: rows[2:] for name, rows in found.items()}


# --- the report's pieces ---------------------------------------------------------------------------

def test_verdicts_read_config_and_verdict_columns():
    text = "config,n,verdict,p\nlr=0.1,3,better,0.01\nlr=0.3,3,baseline,\n"
    assert pr_report.verdicts(text) == {"lr=0.1": "better", "lr=0.3": "baseline"}
    assert pr_report.verdicts("") == {}  # the file absent on one side


def test_changed_verdicts_lists_changed_added_and_removed_configurations_only():
    before = {"a": "baseline", "b": "undecided (needs ≈ 8 seeds)", "c": "equivalent", "gone": "worse"}
    after = {"a": "baseline", "b": "better", "c": "equivalent", "new": "undecided (needs ≈ 4 seeds)"}
    assert pr_report.changed_verdicts(before, after) == [
        ("b", "undecided (needs ≈ 8 seeds)", "better"),
        ("new", "—", "undecided (needs ≈ 4 seeds)"),
        ("gone", "worse", "—")]
    assert pr_report.changed_verdicts(after, after) == []


def test_changed_studies_are_the_folders_under_reports_study():
    paths = ["reports/study/lr/summary.csv", "reports/study/lr/report.md",
             "reports/study/depth/forest.png", "reports/study/README.md", "reports/claims.md"]
    assert pr_report.changed_studies(paths) == ["depth", "lr"]


def test_a_bare_dvc_header_reads_as_no_change():
    bare = "| Path   | Param   | main   | HEAD   |\n|--------|---------|--------|--------|\n"
    assert not pr_report.has_rows(bare) and not pr_report.has_rows("")
    assert pr_report.has_rows(bare + "| params.yaml | train.lr | 0.001 | 0.002 |\n")
    text = pr_report.report("origin/main", "HEAD", bare, "", None)
    assert "No params changed." in text and "No metrics changed." in text
    assert "Study verdicts" not in text  # reports/study/ did not change


def test_the_verdict_table_escapes_pipes_in_cells():
    text = pr_report.report("main", "HEAD", "", "", {"s": [("a|b", "—", "better")]})
    assert "| s | a\\|b | — | better |" in text


def test_cli_refuses_an_unknown_base_in_one_line(tmp_path):
    done = subprocess.run(["git", "init", "-q", str(tmp_path)], capture_output=True)
    assert done.returncode == 0
    done = subprocess.run([sys.executable, str(REPO / ".ci/pr_report.py"), "origin/nope"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert "no commit 'origin/nope'" in done.stderr and "Traceback" not in done.stderr


# --- the workflow ----------------------------------------------------------------------------------

def test_every_push_reproduces_and_runs_the_quick_tier():
    flow = workflow()
    assert {"push", "pull_request"} <= set(flow[True])  # YAML 1.1 reads the key `on` as True
    job = flow["jobs"]["reproduce"]
    assert "if" not in job
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"
    assert [step["run"] for step in run_steps(job)] == [
        "bash setup.sh", "bash .ci/reproduced.sh", '.venv/bin/python -m pytest -q -m "not e2e and not slow"']


def test_gitlab_runs_the_same_scripts():
    gitlab = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())
    github = workflow()["jobs"]["reproduce"]
    assert gitlab["reproduce"]["script"] == [step["run"] for step in run_steps(github)]
    assert any(line.startswith("python .ci/pr_report.py ") for line in gitlab["report"]["script"])


def test_run_steps_hold_no_expressions_so_a_replay_runs_what_the_runner_runs():
    for name, job in workflow()["jobs"].items():
        for step in run_steps(job):
            assert "${{" not in step["run"], (name, step["run"])


# --- end to end: the report job in a fresh clone ---------------------------------------------------

def write_summary(path, rows: dict[str, str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SUMMARY_HEADER + "".join(f"{config},3,{verdict}\n" for config, verdict in rows.items()))


@pytest.fixture
def pull_request(tmp_path):
    """A repository (main: the project's params, metrics and two studies) with a feature branch
    that changes train.lr, the test accuracy, one verdict of `lr`, adds a study and changes a study's
    report only; returns a fresh clone on the feature branch, its environment, and the changes."""
    origin = tmp_path / "origin"
    (origin / "reports/evaluate").mkdir(parents=True)
    for item in (".github", ".ci", "dvc.yaml", "params.yaml", "constraints.txt",
                 "reports/evaluate/metrics.json"):
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, origin / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, origin / item)
    write_summary(origin / "reports/study/lr/summary.csv",
                  {"lr=0.001": "baseline", "lr=0.003": "undecided (needs ≈ 14 seeds)",
                   "lr=0.01": "equivalent"})
    (origin / "reports/study/depth").mkdir(parents=True)
    (origin / "reports/study/depth/report.md").write_text("# Study: depth\n")
    env = dvc_queue.tool_env() | {"DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}
    for inherited in ("DVC_ROOT", "DVC_EXP_NAME", "GITHUB_STEP_SUMMARY", "GITHUB_BASE_REF"):
        env.pop(inherited, None)
    git = lambda *args, cwd=origin: sh("git", *args, cwd=cwd, env=env)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "test@example.com")
    git("config", "user.name", "test")
    sh("dvc", "init", "-q", cwd=origin, env=env)
    git("add", "-A")
    git("commit", "-qm", "main")

    git("checkout", "-q", "-b", "feature")
    params = yaml.safe_load((origin / "params.yaml").read_text())
    lr = params["train"]["lr"]
    params["train"]["lr"] = lr * 2
    (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    metrics = json.loads((origin / "reports/evaluate/metrics.json").read_text())
    accuracy = metrics["test"]["accuracy"]
    metrics["test"]["accuracy"] = round(accuracy + 0.0125, 4)
    (origin / "reports/evaluate/metrics.json").write_text(json.dumps(metrics, indent=2))
    write_summary(origin / "reports/study/lr/summary.csv",
                  {"lr=0.001": "baseline", "lr=0.003": "better", "lr=0.01": "equivalent"})
    write_summary(origin / "reports/study/pooling/summary.csv", {"pool=max": "baseline"})
    (origin / "reports/study/depth/report.md").write_text("# Study: depth (rewritten)\n")
    git("add", "-A")
    git("commit", "-qm", "feature")

    clone = tmp_path / "clone"
    git("clone", "-q", "-b", "feature", str(origin), str(clone), cwd=tmp_path)
    return clone, env, {"lr": (lr, lr * 2), "accuracy": (accuracy, metrics["test"]["accuracy"])}


@pytest.mark.e2e
def test_the_report_job_writes_params_metrics_and_changed_verdicts_to_the_job_summary(pull_request, tmp_path):
    clone, env, changes = pull_request
    flow = workflow()
    job = flow["jobs"]["report"]
    assert job["if"] == "github.event_name == 'pull_request'"
    summary = tmp_path / "step_summary.md"
    env = env | flow.get("env", {}) | job.get("env", {}) | {
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "main", "GITHUB_HEAD_REF": "feature",
        "GITHUB_STEP_SUMMARY": str(summary)}
    steps = run_steps(job)
    assert INSTALL_STEPS <= {step.get("id") for step in steps}
    for step in steps:
        if step.get("id") in INSTALL_STEPS:
            continue
        # GitHub's default shell on Linux runners: bash --noprofile --norc -eo pipefail {0}
        sh("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"],
           cwd=clone, env=env | step.get("env", {}), timeout=300)

    found = tables(summary.read_text())
    assert found["Params (`dvc params diff origin/main HEAD`)"] == [
        ["params.yaml", "train.lr", str(changes["lr"][0]), str(changes["lr"][1])]]
    (metric,) = found["Metrics (`dvc metrics diff origin/main HEAD`)"]
    before, after = changes["accuracy"]
    assert metric[:2] == ["reports/evaluate/metrics.json", "test.accuracy"]
    assert [float(v) for v in metric[2:]] == pytest.approx([before, after, after - before], abs=1e-5)
    assert found["Study verdicts (`reports/study/*/summary.csv`)"] == [
        ["lr", "lr=0.003", "undecided (needs ≈ 14 seeds)", "better"],
        ["pooling", "pool=max", "—", "baseline"]]
    assert "Changed without a verdict changing: `depth`." in summary.read_text()
