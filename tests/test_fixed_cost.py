"""benchmarks/fixed_cost.py's arithmetic on made-up timings (the benchmark itself runs real queued
experiments for minutes: no smoke test), and the DVCLive logger it led to, which opens no DVC
repository and writes what DVCLive's own start-up would."""

import subprocess
import sys

import pytest

from benchmarks.fixed_cost import medians, parts
from tests.conftest import REPO


def record(stage, start, main, end, **sections):
    return {"stage": stage, "pid": int(start), "start": start, "main": main, "end": end,
            "sections": sections}


RUNS = [(100.0, 140.0), (141.5, 180.0)]  # exec-run spans of two experiments on one worker
RECORDS = [record("train", 103.0, 105.0, 115.0, training=6.0, mlflow=3.0, other=1.0),
           record("evaluate", 116.0, 118.0, 128.0, predict=9.0, other=1.0),
           record("plot", 129.0, 130.0, 137.0, figures=4.0, mlflow=3.0),
           record("train", 144.0, 146.0, 150.0, training=3.0, other=1.0),
           record("evaluate", 151.0, 152.0, 160.0, predict=8.0),
           record("plot", 161.0, 162.0, 170.0, figures=8.0)]


def test_parts_of_an_experiment_add_up_to_its_period():
    first = parts(0, RUNS, RECORDS, queued=2.0, gone={103: 115.5})  # train's process: 0.5 s more
    assert first["dvc.workspace"] == 3.0 and first["dvc.commit"] == 3.0
    assert first["train.exit"] == 0.5 and first["evaluate.exit"] == 0.0
    assert first["dvc.between"] == 1.5  # 115.5 -> 116 and 128 -> 129
    assert first["train.startup"] == 2.0 and first["plot.startup"] == 1.0
    assert first["worker.collect"] == 1.5 and first["period"] == 41.5
    assert first["training"] == 6.0 and "train.training" not in first
    assert first["fixed_cost"] == pytest.approx(41.5 + 2.0 - 6.0)
    stage_time = sum(v for k, v in first.items() if k.split(".")[0] in ("train", "evaluate", "plot"))
    dvc_time = first["dvc.workspace"] + first["dvc.between"] + first["dvc.commit"]
    assert stage_time + first["training"] + dvc_time + first["worker.collect"] == \
        pytest.approx(first["period"])


def test_the_last_experiment_has_no_period_and_a_missing_stage_is_an_error():
    last = parts(1, RUNS, RECORDS, queued=2.0)
    assert "period" not in last and "fixed_cost" not in last and last["training"] == 3.0
    with pytest.raises(Exception, match="no record of plot"):
        parts(1, RUNS, RECORDS[:5], queued=2.0)
    assert medians([{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0}]) == {"a": 2.0, "b": 5.0}


def test_dvclive_logger_opens_no_dvc_repository(tmp_path):
    """In a fresh interpreter, inside a `dvc exp run`-like environment: the logger writes its
    files, and DVC's repository code is never imported."""
    code = ("import sys\n"
            "from src.tracking import trackers\n"
            f"with trackers.live({str(tmp_path / 'live')!r}) as live:\n"
            "    live.step = 0; live.log_metric('val/acc', 0.5); live.next_step()\n"
            "print('dvc.repo' in sys.modules)\n")
    env = {"PATH": "/usr/bin:/bin", "DVC_ROOT": str(tmp_path), "DVC_EXP_BASELINE_REV": "0" * 40,
           "DVC_EXP_NAME": "x"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "False"
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "acc.tsv").read_text() == \
        "step\tacc\n0\t0.5\n"
    assert (tmp_path / "live" / "metrics.json").exists()


EXITING = """
import atexit, sys, threading, time
from src.core import errors
atexit.register(lambda: print("atexit ran"))
def main():
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
    print("unflushed", end="; ")
    if sys.argv[1] == "error":
        raise errors.ParamError("bad value")
errors.run(main, teardown=False)
print("never")
"""


@pytest.mark.parametrize("how, code", [("ok", 0), ("error", 2)])
def test_a_stage_without_teardown_exits_as_before(how, code):
    """errors.run(main, teardown=False): the same exit status and output, other threads finished
    and atexit handlers run; only the interpreter's teardown is skipped."""
    done = subprocess.run([sys.executable, "-c", EXITING, how], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert done.stdout == "unflushed; thread done\natexit ran\n"
    assert done.stderr == ("error: bad value\n" if how == "error" else "")
