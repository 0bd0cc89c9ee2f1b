"""Canary runs: does the working tree's code make the same numbers as an earlier commit's?

A committed study's experiments count as run on a later commit only while nothing that makes their
numbers has changed. A hash of source text cannot tell a comment or a refactor from a change that
moves the numbers; running both codes can. :func:`same_numbers` runs a *canary* of each
configuration (its params at tiny fidelity: :data:`CANARY`) through prepare -> train -> evaluate,
once with the commit's code and once with the working tree's, and compares what comes out bit for
bit (:func:`differences`):

- ``reports/evaluate/metrics.json``: every number present in both runs (test accuracy, loss,
  macro-F1, per-class accuracy, the CV summaries, the parameter count ...), except the ``time`` and
  ``device`` sections and any key naming a time (``seconds``, ``time``). A key present in one run
  only (a metric that `evaluate` gained) is not a difference.
- ``reports/train/history.csv`` (per fold and epoch: losses, accuracies, LR) and
  ``reports/evaluate/cv_folds.csv`` (per fold): the same number of rows, and every numeric column
  present in both equal, except time columns.

Where each code runs, in one temporary folder that is removed afterwards (also on an error or
Ctrl-C): the commit's code in a ``git worktree add --detach`` of it; the working tree's code in a
copy of its files under :data:`CODE` (tracked and untracked, not ignored: what runs is what the
cache key digests). Each gets ``data/raw`` linked to the clone's, the canary params as its
params.yaml, the stage commands of its own dvc.yaml, one thread on the CPU, a throw-away MLflow
store, and no DVC (nor a search's pruning, nor the caller's ``DVC_*`` variables).

Results are cached in ``.tunelab/canary/<key>.json``, keyed by the commit, a digest of the working
tree's :data:`CODE` files and the Python and PyTorch versions, and the canary params: a second call
is instant, and an edited working tree never meets an old answer. "Cannot tell" (the commit is not
in this clone, a stage fails) is not cached.

Pure: :func:`canary_params`, :func:`numbers`, :func:`metric_differences`,
:func:`table_differences`, :func:`differences`, :func:`cache_key`, :func:`label`. The rest runs git
and the stages.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from src.core import atomic, paths
from src.core import params as tunelab_params
from src.core.errors import TunelabError
from src.experiments import rdb

# The canary of a configuration: its params with these replaced. 300 training images in 2 stratified
# folds (stratification needs at least classes x folds = 20), 100 test images, one epoch; every other
# param, the seeds included, is the configuration's own. `patience` and `selection_size` are
# replaced only where the configuration has them (commits before the keys would refuse them).
CANARY = {"prepare": {"train_size": 300, "test_size": 100, "cv_folds": 2},
          "train": {"epochs": 1}}
CANARY_IF_PRESENT = {"train": {"patience": 0}, "prepare": {"selection_size": 100}}
STAGES = ("prepare", "train", "evaluate")  # run in this order, with the commands of dvc.yaml
CODE = ("src", "dvc.yaml", "requirements.txt", "constraints.txt")  # the working tree's code
CACHE = paths.LOCAL / "canary"
RECIPE = 3  # bump when CANARY or the comparison changes: every cached answer then misses
IGNORED_SECTIONS = ("time", "device")  # metrics.json sections that are not made by training
TIME_WORDS = ("second", "time")  # a key or column naming one of these is a timing
# An interval's bounds over the folds: mean +- a t quantile x sd / sqrt(n), with the mean, the sd
# and n compared as they are; their last digits are the formula's, not the experiment's (since
# bbddfee, 2026-11-30, stats.summarize computes the sd once and the bounds differ by 1e-7 relative
# from those of the commits before: the committed pooling, interactions and combined studies).
DERIVED_KEYS = ("ci95_low", "ci95_high")
# An evaluation loss (validation or test) is a float32 sum over the evaluated images in batches:
# the evaluation batch size sets its order of summation and moves its last bits while every
# prediction, accuracy and training loss stays bit-identical (9c9486c's larger evaluation batches
# moved one fold's validation loss of the committed pooling study by one float32 ulp). Such a loss
# is compared within LOSS_RTOL (a few float32 ulps); every other number bit for bit.
EVALUATION_LOSSES = ("val_loss", "final_val_loss", "test.loss")
LOSS_RTOL = 1e-6
TABLES = (paths.TRAIN_HISTORY, paths.CV_FOLDS)
STAGE_TIMEOUT_S = 600  # a canary stage takes seconds; past this it hangs
# Variables of the caller that must not reach a canary: DVC's (DVC_ROOT would send the MLflow store
# into the caller's repo, DVC_EXP_NAME would make the run a search trial that reports to pruning),
# a shared study's trial and storage, an accelerator's memory share, a PYTHONPATH that could put
# another copy of src first.
DROPPED_ENV = ("TUNELAB_TRIAL", rdb.ENV, "TUNELAB_MEMORY_FRACTION", "PYTHONPATH",
               "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")


# -- pure -------------------------------------------------------------------------------------------

def canary_params(config: Mapping) -> dict:
    """The canary of ``config`` (a full params.yaml mapping): :data:`CANARY` replaced, the rest
    kept. TunelabError if ``config`` lacks a ``prepare`` or ``train`` mapping."""
    params = copy.deepcopy(dict(config))
    for section in CANARY:
        if not isinstance(params.get(section), Mapping):
            raise TunelabError(f"canary config has no `{section}:` mapping (got "
                               f"{type(params.get(section)).__name__}); pass a full params.yaml")
        params[section] = dict(params[section]) | CANARY[section]
    for section, values in CANARY_IF_PRESENT.items():
        params[section] |= {key: value for key, value in values.items() if key in params[section]}
    return params


def _is_timing(name: str) -> bool:
    return any(word in name.lower() for word in TIME_WORDS)


def numbers(data: Mapping, prefix: str = "") -> dict[str, float | None]:
    """The numeric leaves of metrics.json as ``{"cv.val_accuracy.mean": x}`` (null kept as None,
    list items as ``key.0``); the :data:`IGNORED_SECTIONS`, timings, the :data:`DERIVED_KEYS`,
    strings and booleans left out."""
    found: dict[str, float | None] = {}
    items = data.items() if isinstance(data, Mapping) else enumerate(data)
    for key, value in items:
        name = f"{prefix}{key}"
        if (not prefix and key in IGNORED_SECTIONS) or _is_timing(str(key)) \
                or key in DERIVED_KEYS:
            continue
        if isinstance(value, (Mapping, list)):
            found |= numbers(value, f"{name}.")
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            found[name] = value
    return found


def same_bits(a: float | None, b: float | None) -> bool:
    """Bit-identical as IEEE doubles (so NaN equals NaN and -0.0 differs from 0.0); None only
    equals None."""
    if a is None or b is None:
        return a is None and b is None
    return struct.pack("<d", float(a)) == struct.pack("<d", float(b))


def _is_evaluation_loss(name: str) -> bool:
    return any(name == key or name.startswith((f"{key}.", f"cv.{key}.")) for key in
               EVALUATION_LOSSES)


def same_number(name: str, a: float | None, b: float | None) -> bool:
    """:func:`same_bits`, but an evaluation loss (:data:`EVALUATION_LOSSES`) within
    :data:`LOSS_RTOL` of the other."""
    if same_bits(a, b):
        return True
    if a is None or b is None or not _is_evaluation_loss(name):
        return False
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= LOSS_RTOL * max(abs(a), abs(b))


def _shown(value) -> str:
    return "null" if value is None else repr(value)


def metric_differences(old: Mapping, new: Mapping) -> list[str]:
    """How two metrics.json contents differ in the numbers both have ([] = the same numbers)."""
    a, b = numbers(old), numbers(new)
    return [f"metrics.json {key}: {_shown(a[key])} -> {_shown(b[key])}"
            for key in sorted(a.keys() & b.keys()) if not same_number(key, a[key], b[key])]


def _cell(text: str | None) -> float | None | str:
    """A CSV cell as a number, None when empty, or the text itself when it is not a number."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def table_differences(old: list[dict[str, str]], new: list[dict[str, str]], name: str) -> list[str]:
    """How two CSV tables (rows as ``csv.DictReader`` gives them) differ: the row count, then each
    numeric column present in both, time columns left out. A column of text in both (a status) is
    not a number and is not compared."""
    if len(old) != len(new):
        return [f"{name}: {len(old)} rows -> {len(new)}"]
    columns = [c for c in (old[0] if old else {}) if c in (new[0] if new else {}) and not _is_timing(c)]
    found = []
    for i, (row_a, row_b) in enumerate(zip(old, new)):
        for column in columns:
            a, b = _cell(row_a.get(column)), _cell(row_b.get(column))
            if isinstance(a, str) and isinstance(b, str):
                continue
            if isinstance(a, str) or isinstance(b, str) or not same_number(column, a, b):
                found.append(f"{name} row {i} {column}: {_shown(a)} -> {_shown(b)}")
    return found


def differences(old: Mapping, new: Mapping) -> list[str]:
    """How two canary outputs differ; each is ``{"metrics": <metrics.json>, <table path>: rows}``.
    A table present in one output only is not compared (as a key in one metrics.json only)."""
    found = metric_differences(old["metrics"], new["metrics"])
    for name in sorted((old.keys() & new.keys()) - {"metrics"}):
        found += table_differences(old[name], new[name], name)
    return found


def cache_key(commit: str, code_digest: str, params: Mapping) -> str:
    """The cache key of one canary comparison: the commit (full sha), the working tree's code
    digest and the canary params."""
    text = json.dumps({"recipe": RECIPE, "commit": commit, "code": code_digest, "params": params},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _flat(data, prefix: str = "") -> dict[str, object]:
    if not isinstance(data, Mapping):
        return {prefix.rstrip("."): data}
    flat: dict[str, object] = {}
    for key, value in data.items():
        flat |= _flat(value, f"{prefix}{key}.")
    return flat


def label(config: Mapping, defaults: Mapping | None, width: int = 80) -> str:
    """A configuration named by how it differs from ``defaults`` (params.yaml): ``train.lr=0.01
    train.seed=1``, "defaults" if in nothing; at most ``width`` characters."""
    here, base = _flat(config), _flat(defaults or {})
    text = " ".join(f"{key}={json.dumps(value)}" for key, value in here.items()
                    if key not in base or base[key] != value) or "defaults"
    return text if len(text) <= width else text[:width - 3] + "..."


# -- git, files and the stages ---------------------------------------------------------------------

def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def resolve(commit: str, root: Path) -> str | None:
    """``commit``'s full sha in the clone at ``root``; None if the clone lacks it."""
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None


def code_files(root: Path) -> list[Path]:
    """The working tree's :data:`CODE` files, tracked or untracked but not ignored (relative)."""
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *CODE)
    if listed.returncode != 0:
        raise TunelabError(f"{root} is not a git working tree: {listed.stderr.strip()}")
    names = sorted({name for name in listed.stdout.split("\0") if name})
    return [Path(name) for name in names if (root / name).is_file()]  # not deleted ones


def code_digest(root: Path, files: list[Path]) -> str:
    """A digest of ``files`` (their paths and bytes under ``root``) and of the interpreter and the
    PyTorch build that run them."""
    digest = hashlib.sha256()
    for version in (sys.version, platform.machine(), _version("torch"), _version("numpy")):
        digest.update(f"{version}\0".encode())
    for name in files:
        data = (root / name).read_bytes()
        digest.update(f"{name.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _link_data(root: Path, tree: Path) -> None:
    """``tree/data/raw`` -> the clone's data/raw (where prepare finds or downloads the dataset)."""
    raw = (root / paths.RAW).resolve()
    raw.mkdir(parents=True, exist_ok=True)
    link = tree / paths.RAW
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    elif link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(raw, target_is_directory=True)


def copy_code(root: Path, files: list[Path], tree: Path) -> None:
    """The working tree's code files copied into ``tree``, data/raw linked."""
    for name in files:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, tree / name)
    _link_data(root, tree)


@contextmanager
def commit_tree(root: Path, commit: str, tree: Path) -> Iterator[Path]:
    """A detached worktree of ``commit`` at ``tree``, data/raw linked; removed on leaving, however
    that happens."""
    added = _git(root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    if added.returncode != 0:
        raise TunelabError(f"git worktree add {commit[:8]} failed: {added.stderr.strip()}")
    try:
        _link_data(root, tree)
        yield tree
    finally:
        if _git(root, "worktree", "remove", "--force", str(tree)).returncode != 0:
            shutil.rmtree(tree, ignore_errors=True)
            _git(root, "worktree", "prune")


def stage_commands(tree: Path) -> list[list[str]] | None:
    """The commands of :data:`STAGES` in ``tree``'s dvc.yaml, `python` as this interpreter; None if
    a stage is missing."""
    try:
        pipeline = yaml.safe_load((tree / "dvc.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    commands = []
    for stage in STAGES:
        cmd = ((pipeline.get("stages") or {}).get(stage) or {}).get("cmd")
        for line in [cmd] if isinstance(cmd, str) else cmd or []:
            words = shlex.split(line)
            if words and words[0] in ("python", "python3"):
                words[0] = sys.executable
            commands.append(words)
        if not cmd:
            return None
    return commands


def canary_env(store: Path) -> dict[str, str]:
    """The environment of a canary's stages: the caller's, less :data:`DROPPED_ENV` and ``DVC_*``,
    with one CPU thread, no pruning, and the MLflow store at ``store``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DVC_") and key not in DROPPED_ENV}
    return env | {"TUNELAB_THREADS": "1", "TUNELAB_DEVICE": "cpu", "TUNELAB_PRUNE": "0",
                  "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "PYTHONDONTWRITEBYTECODE": "1"}


class Failed(Exception):
    """A canary stage failed: the message says which and how."""


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_canary(tree: Path, params: dict, env: dict[str, str], prepared: dict | None) -> dict:
    """Run the canary ``params`` in ``tree`` and return its outputs for :func:`differences`.
    ``prepared``: the prepare section whose data the tree already holds (None: none); prepare is
    skipped when it is the same, as DVC would. Failed if a stage fails or writes no metrics.json."""
    commands = stage_commands(tree)
    if commands is None:
        raise Failed(f"{tree.name}: dvc.yaml lacks one of the stages {', '.join(STAGES)}")
    (tree / paths.PARAMS).write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(tree / paths.EVALUATE_REPORTS, ignore_errors=True)
    skip_prepare = prepared == params["prepare"] and (tree / paths.PREPARED).exists()
    for words in commands[1:] if skip_prepare else commands:
        shown = shlex.join(["python", *words[1:]] if words[0] == sys.executable else words)
        try:
            done = subprocess.run(words, cwd=tree, env=env, capture_output=True, text=True,
                                  timeout=STAGE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Failed(f"`{shown}` still running after {STAGE_TIMEOUT_S} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise Failed(f"`{shown}` failed (exit {done.returncode}): {last}")
    try:
        outputs: dict = {"metrics": json.loads((tree / paths.METRICS).read_text())}
    except (OSError, ValueError) as error:
        raise Failed(f"no readable {paths.METRICS}: {error}") from None
    for table in TABLES:
        if (tree / table).exists():
            outputs[table.as_posix()] = _read_rows(tree / table)
    return outputs


def _params_of(tree: Path) -> dict:
    try:
        found = yaml.safe_load((tree / paths.PARAMS).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return found if isinstance(found, dict) else {}


def _cached(key: str, root: Path) -> dict | None:
    try:
        entry = json.loads((root / CACHE / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry.get("same"), bool) else None


def _say(commit: str, name: str, verdict: str) -> None:
    print(f"canary {commit[:8]} {name}: {verdict}", file=sys.stderr, flush=True)


def same_numbers(commit: str, configs: list[dict], root: Path = Path(".")) -> bool | None:
    """Whether the code of ``commit`` and the code of the working tree at ``root`` make
    bit-identical numbers for the canary of every configuration in ``configs`` (each a full
    params.yaml mapping, as that commit ran it): True if they do (also for no configs), False as
    soon as one differs, None when it cannot tell (this clone lacks the commit, a stage of either
    code fails). One line per configuration on stderr. TunelabError if a configuration has no
    ``prepare:`` or ``train:`` mapping."""
    root = Path(root).resolve()
    canaries = [canary_params(config) for config in configs]
    full = resolve(commit, root)
    if full is None:
        _say(commit, "*", "cannot tell (commit not in this clone)")
        return None
    files = code_files(root)
    digest = code_digest(root, files)
    try:
        defaults = yaml.safe_load((root / paths.PARAMS).read_text())
    except (OSError, yaml.YAMLError):
        defaults = None
    todo = []
    for config, params in zip(configs, canaries):
        key = cache_key(full, digest, params)
        entry = _cached(key, root)
        if entry is None:
            if key not in {k for _, _, k in todo}:  # configurations whose canaries coincide
                todo.append((label(config, defaults), params, key))  # (they differ in epochs)
            continue
        _say(full, label(config, defaults),
             f"{'same' if entry['same'] else 'differs'} (cached, key {key[:12]})")
        if not entry["same"]:
            return False
    if not todo:
        return True
    with tempfile.TemporaryDirectory(prefix="tunelab-canary-") as tmp:
        env = canary_env(Path(tmp) / "mlflow.db")  # one store for both trees: they run in turn
        new = Path(tmp) / "new"
        copy_code(root, files, new)
        with commit_tree(root, full, Path(tmp) / "old") as old:
            prepared: dict[Path, dict | None] = {old: None, new: None}
            its_own = _params_of(old)  # the commit's params.yaml: which keys its code reads
            for name, params, key in todo:
                outputs, seconds = {}, []
                for tree, side in ((old, "commit"), (new, "working tree")):
                    start = time.monotonic()
                    sent = (tunelab_params.without_keys_absent_from(params, its_own)
                            if tree == old else params)
                    try:
                        outputs[tree] = run_canary(tree, sent, env, prepared[tree])
                    except Failed as error:
                        _say(full, name, f"cannot tell ({side}: {error})")
                        return None
                    prepared[tree] = sent["prepare"]
                    seconds.append(time.monotonic() - start)
                found = differences(outputs[old], outputs[new])
                atomic.write_json(root / CACHE / f"{key}.json",
                                  {"same": not found, "commit": full, "config": name,
                                   "differences": found[:20]})
                ran = f"key {key[:12]}, {seconds[0]:.1f} + {seconds[1]:.1f} s"
                _say(full, name, f"differs ({ran}): {found[0]}" if found else f"same ({ran})")
                if found:
                    return False
    return True
