"""Benchmark and check (not a test): tunelab on an accelerator, in one command, <= 8 minutes on an H200.

Measured: NOT YET. No session with an accelerator has run this; docs/accelerator.md quotes no GPU
figure until one does (then: the date, the GPU, the PyTorch/CUDA/driver versions and the figures).

What it runs, in order, on --device (default cuda), with the machine's own PyTorch:
  1. environment: PyTorch, CUDA, GPU, driver, cores; whether the dataset is there;
  2. the training-loop tests on the device: TUNELAB_TEST_DEVICE=cuda pytest tests/test_engine.py
     tests/test_device.py (the gpu-marked determinism test runs there);
  3. determinism: fold 0 of the default experiment, twice each in fp32 and bf16 (3 epochs):
     identical histories, train accuracy and weights?
  4. benchmarks/train_speed.py --device cuda: the usual-style loop (pytorch/examples' mnist: a
     per-sample Dataset, DataLoader with one worker and pinned memory) against tunelab's loop on the
     same GPU, samples/s and the ratio;
  5. one default experiment's five folds (params.yaml's defaults: 10,000 training images, 5 folds, 10
     epochs), fp32 and bf16: seconds per fold-epoch (the first fold, which pays CUDA's start-up, and
     the others), CV val accuracy;
  6. J = 1, 2, 4 concurrent workers on the one device (each with 1/J of its memory and cores / J
     threads, as `sweep run --jobs J` gives them; started together once each is warm): the total
     training samples/s (validation included in the time, as in sweep records) and the per worker.
Prints `name=value` lines as it goes, into OUT/accelerator_check.log too; writes every figure to
OUT/accelerator_check.json (rewritten after each step, so a run cut short keeps what it measured).

How a session that is lent the accelerator runs it (the device tool; /work/.library/device/README.md):
  here, once, in the repo root (the dataset travels as an ignored, carried folder, ~31 MB):
      mkdir -p data/raw && cp /usr/share/datasets/fashion-mnist/*-ubyte.gz data/raw/
  then ONE call:
      run(command="PYTHONUNBUFFERED=1 python3 benchmarks/accelerator_check.py --out $OUT",
          carry=["data/raw"], timeout_s=540)
  and give_back unless rerunning at once. No wheels to carry: beyond torch and numpy it imports
  pyyaml, pillow, pandas, tqdm and pytest, all on the H200 image (KINDS.md, 2026-11-17); none of
  dvc, dvclive, mlflow, optuna. Step 1 prints any that are missing; carry those as wheels (README's
  Notes). Without data/raw it runs on random images (timings hold; accuracies are then meaningless
  and marked so).
Here (CPU, no accelerator): .venv/bin/python benchmarks/accelerator_check.py --device cpu --quick
checks the script itself (2-5 minutes on the 2 shared cores; its figures are not worth quoting).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src import prepare, train  # noqa: E402
from src.core import data, device, engine, paths  # noqa: E402
from src.core.errors import TunelabError  # noqa: E402
from src.core.params import PrepareParams, TrainParams  # noqa: E402
from src.tracking import trackers  # noqa: E402

BUDGET = 8 * 60  # seconds: the whole check, as the issue sizes it
NEEDED = ("yaml", "PIL", "pandas", "tqdm", "pytest")  # beyond torch and numpy
WORKERS = (1, 2, 4)


LOG: list = []  # the open log file, once main() has one


def log(text: str) -> None:
    print(text, flush=True)
    for handle in LOG:
        handle.write(text + "\n")
        handle.flush()


def say(name: str, value) -> None:
    log(f"{name}={value}")


def find_dataset() -> Path | None:
    """Where the four Fashion-MNIST files are, without downloading (that machine has no network)."""
    env = os.environ.get("FASHION_MNIST_DIR")
    for folder in ([Path(env)] if env else []) + [data.DEBIAN_DIR, ROOT / paths.RAW]:
        if data.has_dataset(folder):
            return folder
    return None


def default_experiment(quick: bool) -> tuple[dict, bool]:
    """The prepared default experiment (params.yaml's prepare defaults) and whether it is real data."""
    folder = find_dataset()
    if folder is not None:
        arrays = data.load(folder)
    else:  # random images of the dataset's shape: timings hold, accuracies mean nothing
        rng = np.random.default_rng(0)
        arrays = {"train_images": rng.integers(0, 256, (12_000, 28, 28), dtype=np.uint8),
                  "train_labels": np.tile(np.arange(10, dtype=np.uint8), 1_200),
                  "test_images": rng.integers(0, 256, (1_000, 28, 28), dtype=np.uint8),
                  "test_labels": np.tile(np.arange(10, dtype=np.uint8), 100)}
    cfg = PrepareParams(train_size=1_000, test_size=100) if quick else \
        PrepareParams(train_size=10_000, test_size=1_000)  # the test set is not used here
    return prepare.prepare(arrays, cfg), folder is not None


def run_fold(tensors, fold: int, cfg: TrainParams) -> engine.FitResult:
    """Fold ``fold`` exactly as the train stage trains it (src/train.py), with no tracker."""
    x, y, folds = tensors
    _, result = train.train_fold(x, y, folds, fold, cfg, trackers.NullTracker(), progress=False)
    return result


def environment(on: torch.device, results: dict) -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    env = {"date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
           "device": device.label(on), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if on.type == "cuda" else None,
           "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
           "missing_packages": ",".join(missing) or "none", "dataset": str(find_dataset())}
    if on.type == "cuda":
        props = torch.cuda.get_device_properties(on)
        env |= {"gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count}
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            env["driver"] = "unknown"
    for key, value in env.items():
        say(f"env.{key}", value)
    results["environment"] = env


def device_tests(on: torch.device, results: dict, timeout: float) -> None:
    environ = os.environ | {"TUNELAB_TEST_DEVICE": str(on)}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/test_engine.py", "tests/test_device.py"], cwd=ROOT,
                              env=environ, capture_output=True, text=True, timeout=timeout)
        tail, rc = (done.stdout + done.stderr).strip().splitlines()[-40:], done.returncode
    except subprocess.TimeoutExpired:
        tail, rc = [f"timed out after {timeout:.0f} s"], 124
    log("\n".join(tail))
    summary = tail[-1] if tail else ""
    say("tests.returncode", rc)
    say("tests.summary", summary)
    say("tests.seconds", f"{time.perf_counter() - started:.1f}")
    results["tests"] = {"returncode": rc, "summary": summary, "tail": tail}


def strip(result: engine.FitResult) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in result.history]


def determinism(tensors, on: torch.device, results: dict, quick: bool) -> None:
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainParams(precision=precision, epochs=1 if quick else 3)
        runs = [run_fold(tensors, 0, cfg) for _ in range(2)]
        same = strip(runs[0]) == strip(runs[1]) and runs[0].train_accuracy == runs[1].train_accuracy
        out[precision] = {"identical": same, "final_val_acc": runs[0].history[-1]["val_acc"],
                          "second_run_final_val_acc": runs[1].history[-1]["val_acc"]}
        say(f"determinism.{precision}.identical", same)
        say(f"determinism.{precision}.final_val_acc", f"{runs[0].history[-1]['val_acc']:.6f}")
    results["determinism"] = out


def train_speed(on: torch.device, results: dict, real: bool, quick: bool, timeout: float) -> None:
    command = [sys.executable, "benchmarks/train_speed.py", "--device", str(on),
               "--threads", str(os.cpu_count() or 1)]
    command += ["--rounds", "1", "--samples", "640"] if quick else ["--rounds", "5", "--samples", "12800"]
    if not real:
        command.append("--synthetic")
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        lines, rc = done.stdout.splitlines(), done.returncode
        if rc:
            log(done.stderr[-3000:])
    except subprocess.TimeoutExpired:
        lines, rc = [], 124
    figures = dict(line.split("=", 1) for line in lines if re.fullmatch(r"[\w.]+=.*", line))
    for key, value in figures.items():
        say(f"train_speed.{key}", value)
    say("train_speed.returncode", rc)
    results["train_speed"] = figures | {"returncode": rc, "command": " ".join(command[1:])}


def five_folds(tensors, results: dict, real: bool, quick: bool) -> None:
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainParams(precision=precision, epochs=2 if quick else 10)
        n_folds = int(tensors[2].max()) + 1
        fold_results = [run_fold(tensors, fold, cfg) for fold in range(n_folds)]
        per_epoch = [r.seconds / len(r.history) for r in fold_results]
        cv = float(np.mean([r.history[-1]["val_acc"] for r in fold_results]))
        out[precision] = {"seconds_per_fold_epoch_first_fold": per_epoch[0],
                          "seconds_per_fold_epoch_other_folds": float(np.mean(per_epoch[1:])),
                          "train_seconds": sum(r.seconds for r in fold_results),
                          "cv_val_accuracy": cv if real else None, "epochs": cfg.epochs,
                          "folds": n_folds}
        for key, value in out[precision].items():
            say(f"five_folds.{precision}.{key}", value if not isinstance(value, float) else f"{value:.4f}")
    results["five_folds"] = out


def worker(args) -> None:
    """One of J concurrent workers: warm up, say so, wait for the start, train, write the figures."""
    jobs = args.worker
    os.environ["TUNELAB_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    engine.set_threads()
    on = device.resolve(args.device, "--device")
    device.configure(on, device.worker_memory_fraction(jobs))
    prepared, _ = default_experiment(args.quick)
    tensors = train.dataset_on(prepared, on)
    cfg = TrainParams(epochs=1 if args.quick else 4)
    run_fold(tensors, 0, TrainParams(epochs=1))  # warm: CUDA context, cuDNN, allocator
    Path(args.ready).touch()
    while not Path(args.go).exists():
        time.sleep(0.01)
    start = time.time()
    result = run_fold(tensors, args.index % (int(tensors[2].max()) + 1), cfg)
    end = time.time()
    held_out = int((tensors[2] == 0).sum())
    samples = (len(tensors[0]) - held_out) * len(result.history)  # folds are equal to +-1 image
    Path(args.result).write_text(json.dumps({"start": start, "end": end, "samples": samples}))


def concurrent(on: torch.device, results: dict, quick: bool, deadline: float) -> None:
    out = {}
    for jobs in WORKERS[:2] if quick else WORKERS:
        if time.monotonic() > deadline - 60:
            say(f"workers.{jobs}", "skipped: out of time")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            go = tmp / "go"
            procs = [subprocess.Popen(
                [sys.executable, __file__, "--device", str(on), "--worker", str(jobs), "--index", str(i),
                 "--ready", str(tmp / f"ready{i}"), "--go", str(go), "--result", str(tmp / f"r{i}.json")]
                + (["--quick"] if quick else []), cwd=ROOT) for i in range(jobs)]
            while not all((tmp / f"ready{i}").exists() for i in range(jobs)):
                if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            go.touch()
            for p in procs:
                try:
                    p.wait(timeout=max(5.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
            done = [json.loads((tmp / f"r{i}.json").read_text()) for i in range(jobs)
                    if (tmp / f"r{i}.json").exists()]
        if len(done) < jobs:
            say(f"workers.{jobs}", f"failed: {len(done)} of {jobs} finished")
            continue
        wall = max(d["end"] for d in done) - min(d["start"] for d in done)
        total = sum(d["samples"] for d in done) / wall
        out[jobs] = {"total_samples_per_s": total, "per_worker_samples_per_s": total / jobs,
                     "wall_seconds": wall, "threads_per_worker": max(1, (os.cpu_count() or 1) // jobs),
                     "memory_fraction": device.worker_memory_fraction(jobs)}
        say(f"workers.{jobs}.total_samples_per_s", f"{total:.0f}")
        say(f"workers.{jobs}.wall_seconds", f"{wall:.1f}")
    if 1 in out:
        for jobs, figures in out.items():
            figures["speedup_vs_one_worker"] = figures["total_samples_per_s"] / out[1]["total_samples_per_s"]
            say(f"workers.{jobs}.speedup_vs_one_worker", f"{figures['speedup_vs_one_worker']:.2f}")
    results["workers"] = out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help=f"{device.CHOICES} (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for accelerator_check.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures "
                                                             "nothing worth quoting")
    for flag in ("--worker", "--index"):  # internal: one of J concurrent workers
        parser.add_argument(flag, type=int, help=argparse.SUPPRESS)
    for flag in ("--ready", "--go", "--result"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    started = time.monotonic()
    deadline = started + BUDGET - 20  # the JSON and the transfer back
    try:
        on = device.resolve(args.device, "--device")
    except TunelabError as error:
        parser.error(str(error))
    device.configure(on)
    engine.set_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    LOG.append(open(args.out / "accelerator_check.log", "w"))  # closed at exit
    results: dict = {"device_setting": args.device, "quick": args.quick}
    environment(on, results)
    prepared, real = default_experiment(args.quick)
    results["real_data"] = real
    say("data", "fashion-mnist" if real else "synthetic (accuracies are meaningless)")
    tensors = train.dataset_on(prepared, on)
    steps = [("tests", lambda: device_tests(on, results, timeout=min(180, deadline - time.monotonic()))),
             ("determinism", lambda: determinism(tensors, on, results, args.quick)),
             ("train_speed", lambda: train_speed(on, results, real, args.quick,
                                                 timeout=min(150, deadline - time.monotonic()))),
             ("five_folds", lambda: five_folds(tensors, results, real, args.quick)),
             ("workers", lambda: concurrent(on, results, args.quick, deadline))]
    for name, step in steps:
        if time.monotonic() > deadline - 30:
            say(f"{name}", "skipped: out of time")
            continue
        t0 = time.perf_counter()
        try:
            step()
        except Exception as error:  # one broken step must not lose the others' figures
            say(f"{name}.error", f"{type(error).__name__}: {error}")
            results[f"{name}_error"] = f"{type(error).__name__}: {error}"
        say(f"{name}.step_seconds", f"{time.perf_counter() - t0:.1f}")
        (args.out / "accelerator_check.json").write_text(json.dumps(results, indent=1, default=str))
    say("total_seconds", f"{time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
