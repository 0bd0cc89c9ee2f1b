"""The codebase's shape: layers whose imports point down (import-linter), no import cycles, and a
`dvc.yaml` whose stages depend on every project module they import, so a cached result is never
stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import imports
from tests.conftest import TINY, make_project, sh

REPO = imports.REPO
STAGES = ("prepare", "train", "evaluate", "plot")


def stage_module(stage: dict) -> str:
    """``python -m src.train`` -> ``src.train``."""
    words = stage["cmd"].split()
    return words[words.index("-m") + 1]


def declared_deps(stage: dict) -> set[str]:
    return {next(iter(d)) if isinstance(d, dict) else d for d in stage.get("deps", [])}


def test_import_linter_layers_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", "pyproject.toml"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_no_import_cycles_among_project_modules():
    # Function-level imports count: a lazy import does not hide a cycle from this test.
    assert imports.cycles(imports.project_modules()) == []


def test_every_stage_depends_on_every_module_it_imports():
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(pipeline) == set(STAGES)
    missing = {}
    for name, stage in pipeline.items():
        needed = imports.files_of(imports.closure(stage_module(stage)))
        lacking = sorted(needed - declared_deps(stage))
        if lacking:
            missing[name] = lacking
    assert not missing, ("dvc.yaml lacks deps (add them under each stage's `deps:`): "
                         + "; ".join(f"{s}: {', '.join(f)}" for s, f in missing.items()))


def test_no_stage_depends_on_a_module_it_does_not_import():
    # An extra dep is harmless for correctness but re-runs a stage for nothing.
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in pipeline.values():
        code = {d for d in declared_deps(stage) if d.startswith("src/")}
        assert code <= imports.files_of(imports.closure(stage_module(stage)))


def test_the_closure_sees_function_level_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from src import b\n")
    (pkg / "b.py").write_text("from src.a import f\n")
    monkeypatch.setattr(imports, "REPO", tmp_path)
    imports.direct_imports.cache_clear()
    try:
        assert imports.files_of(imports.closure("src.a")) == {"src/__init__.py", "src/a.py",
                                                              "src/b.py"}
        assert imports.cycles(["src.a", "src.b"]) == [["src.a", "src.b", "src.a"]]
    finally:
        imports.direct_imports.cache_clear()


@pytest.mark.e2e
def test_editing_a_module_train_imports_indirectly_makes_dvc_rerun_train(tmp_path):
    """src/core/params.py reaches train only through other modules' imports; a comment added to it
    must make `dvc status` report train (and the stages after it) changed."""
    (tmp_path / "repo").mkdir()
    root, env = make_project(tmp_path / "repo", TINY)
    sh("dvc", "repro", "train", cwd=root, env=env)
    assert "up to date" in sh("dvc", "status", "train", cwd=root, env=env).stdout.lower()
    with open(root / "src/core/params.py", "a") as module:
        module.write("# a comment: the code is the same, the file is not\n")
    status = sh("dvc", "status", "train", cwd=root, env=env).stdout
    assert "train:" in status and "src/core/params.py" in status, status
