"""Sweep definitions: expansion, naming, seeds, validation; parsing DVC's queue and exp output."""

import hashlib
import itertools
import json
import subprocess
import sys
import time

import psutil
import pytest
import yaml

from src.core import errors, identity, models, naming, params
from src.core.errors import ParamError
from src.experiments import dvc_queue, efficiency, exp_show, sweep_spec
from tests.conftest import REPO

BASE = params.read_yaml(REPO / "params.yaml")


def parse(spec: dict, name="s") -> sweep_spec.Sweep:
    return sweep_spec.parse_sweep(name, spec, BASE)


def test_every_sweep_in_the_repo_is_valid():
    loaded = sweep_spec.load(REPO / "sweeps.yaml", BASE)
    expected = {"dropout", "batchnorm", "norm", "conv_dropout", "depth", "depth_deep", "width",
                "pooling", "interactions", "combined", "mlp_width", "mlp_depth", "batch_size",
                "lr", "epochs", "optimizer", "precision", "recipe",
                # the claims' (claims.yaml)
                "conv_dropout_at", "conv_dropout_width", "deep_stack", "mlp_batch_size",
                "epochs_lr", "claims_grid",
                "metric_noise"}  # the selection set's measurement (docs/studies.md)
    assert set(loaded) == expected
    assert len(loaded["interactions"].configs) == 6 and len(loaded["mlp_width"].configs) == 16
    assert [c["train.lr"] for c in loaded["lr"].configs] == [0.0001, 0.0003, 0.001, 0.003, 0.01]


def test_claims_is_not_a_sweep_name():
    with pytest.raises(ParamError, match="'claims': the name is reserved"):
        parse({"grid": {"train.dropout": [0.1]}, "baseline": {}}, name="claims")


def test_grid_is_the_cartesian_product_with_fixed_values():
    s = parse({"grid": {"train.dropout": [0.0, 0.5], "train.norm": ["none", "batch", "layer"]},
               "fixed": {"train.epochs": 2}, "baseline": {"train.dropout": 0.0, "train.norm": "none"}})
    pairs = [(c["train.dropout"], c["train.norm"]) for c in s.configs]
    assert pairs == list(itertools.product([0.0, 0.5], ["none", "batch", "layer"]))
    assert all(c["train.epochs"] == 2 for c in s.configs)
    assert s.varied == ("train.dropout", "train.norm")
    assert s.baseline_label == "dropout=0.0,norm=none"


def test_seeds_replicate_every_configuration_and_an_override_makes_other_experiments():
    s = parse({"grid": {"train.dropout": [0.0, 0.3]}, "baseline": {"train.dropout": 0.3}},
              name="dropout")
    plain = sweep_spec.expand(s, 3, BASE)
    assert plain[0].name == "dropout--dropout=0.0--s0" and plain[0].variant == ""
    exps = sweep_spec.expand(s, 3, BASE, {"prepare.train_size": 2000})
    assert len(exps) == 6 and len({e.name for e in exps}) == 6
    assert [e.overrides["train.seed"] for e in exps] == [0, 1, 2, 0, 1, 2]
    assert exps[4].set_args() == ["-S", "train.dropout=0.3", "-S", "prepare.train_size=2000",
                                  "-S", "train.seed=1"]
    # an override is another experiment: another identity, and a name DVC can hold beside the
    # plain one on the same commit
    assert all(e.identity != p.identity and e.name != p.name for e, p in zip(exps, plain))
    assert exps[0].name == f"dropout--dropout=0.0--s0--v{exps[0].identity[:8]}"
    assert naming.parse_name(exps[4].name) == {"sweep": "dropout", "config": "dropout=0.3",
                                               "seed": "1", "variant": exps[4].identity[:8]}
    assert naming.parse_name(plain[4].name)["variant"] == ""
    assert naming.parse_name("workspace") is None and naming.parse_name("a--b--x1") is None
    # two values of one override: two sets of experiments
    other = sweep_spec.expand(s, 3, BASE, {"prepare.train_size": 3000})
    assert not {e.name for e in other} & {e.name for e in exps}
    # an override that restates params.yaml's value changes nothing: the same experiments
    same = sweep_spec.expand(s, 3, BASE, {"prepare.train_size": BASE["prepare"]["train_size"]})
    assert [e.name for e in same] == [e.name for e in plain]
    # an edited params.yaml (the commit's is the reference) makes variants too
    edited = sweep_spec.apply(BASE, {"train.epochs": 1})
    assert all(e.variant for e in sweep_spec.expand(s, 3, edited, reference=BASE))


def test_values_are_written_for_dvc_exactly():
    assert naming.format_value(0.0003) == "0.0003"
    assert naming.format_value(1e-05) == "0.00001"
    assert naming.format_value([32, 64]) == "[32, 64]"
    assert naming.format_value(True) == "true"
    for value in (0.0003, 1e-05, 0.3, 3.0, [1, 2], "batch"):  # DVC reads -S values as YAML
        assert yaml.safe_load(naming.format_value(value)) == value


def test_labels_are_valid_git_ref_parts():
    label = naming.config_label({"train.conv_channels": [32, 64], "train.norm": "batch"})
    assert label == "conv_channels=32-64,norm=batch"
    assert naming.config_label({}) == "base"
    assert naming.config_label({"train.x": "a b:c"}) == "x=a-b-c"


@pytest.mark.parametrize("spec, message", [
    ({"grid": {"train.dropuot": [0.1]}, "baseline": {}}, "unknown key train.dropuot"),
    ({"grid": {"train.dropout": [0.1, 1.2]}, "baseline": {"train.dropout": 0.1}},
     "configuration dropout=1.2: train.dropout = 1.2 is out of range"),
    ({"grid": {"train.dropout": [0.1, 0.2]}, "baseline": {"train.dropout": 0.3}}, "baseline"),
    ({"grid": {"train.dropout": []}, "baseline": {}}, "non-empty list"),
    ({"baseline": {}}, "needs a grid or configs"),
    ({"grid": {"train.dropout": [0.1]}, "baseline": {}, "seed": 3}, "unknown field"),
    ({"grid": {"train.dropout": [0.1, 0.3]}, "baseline": {}, "margin": 5}, "margin = 5 must be"),
    ({"grid": {"train.dropout": [0.1, 0.3]}, "baseline": {}, "seeds": 1}, "seeds = 1 must be"),
    ({"grid": {"train.dropout": [0.1, 0.3]}, "baseline": {}, "seeds": 6, "max_seeds": 4},
     "max_seeds = 4 must be at least seeds = 6"),
    ({"configs": [{}, {}], "baseline": {}}, "matches 2"),
])
def test_bad_sweeps_are_refused_with_the_sweep_and_key(spec, message):
    with pytest.raises(ParamError, match="sweep s") as caught:
        parse(spec)
    assert message in str(caught.value)


def test_set_overrides_win_and_are_validated_naming_every_experiment():
    s = parse({"grid": {"train.dropout": [0.0, 0.3]}, "baseline": {"train.dropout": 0.3}},
              name="dropout")
    with pytest.raises(ParamError) as caught:
        sweep_spec.expand(s, 2, BASE, {"train.dropout": 1.5})
    message = str(caught.value)
    assert "4 of 4 experiments" in message and "nothing was queued" in message
    for name in ("dropout--dropout=0.0--s0", "dropout--dropout=0.3--s1"):
        assert name in message
    assert sweep_spec.parse_set("train.lr=1e-3") == ("train.lr", "1e-3")  # validated as a number later
    assert sweep_spec.parse_set("train.conv_channels=[8, 16]") == ("train.conv_channels", [8, 16])
    with pytest.raises(ParamError, match="section.key=value"):
        sweep_spec.parse_set("epochs")


def test_parse_queue_status():
    text = """Task     Name                        Created    Status
b85a03f  dropout--dropout=0.0--s0    01:42 PM   Running
03799c7  dropout--dropout=0.3--s0    Nov 21     Failed
c9aa651  dropout--dropout=0.5--s0    01:42 PM   Queued

Worker status: 1 active, 0 idle
"""
    tasks = dvc_queue.parse_queue_status(text)
    assert [(t.task_id, t.status) for t in tasks] == [
        ("b85a03f", "Running"), ("03799c7", "Failed"), ("c9aa651", "Queued")]
    assert tasks[1].name == "dropout--dropout=0.3--s0"


def test_parse_exp_show_reads_states_and_metrics():
    metrics = {"reports/evaluate/metrics.json": {"data": {
        "status": "completed", "cv": {"val_accuracy": {"mean": 0.88}},
        "time": {"train_seconds": 170.5, "epochs": 50}}}}
    params = {"params.yaml": {"data": {"prepare": {"train_size": 10000, "cv_folds": 5}}}}
    shown = [
        {"rev": "workspace", "name": None, "experiments": None},
        {"rev": "abc", "name": "main", "experiments": [
            {"name": "a--x--s0", "revs": [{"name": "a--x--s0", "error": None,
                                          "data": {"metrics": metrics, "params": params}}]},
            {"name": "a--y--s0", "revs": [{"name": "a--y--s0", "data": {},
                                          "error": {"msg": "Experiment run failed"}}]},
        ]},
    ]
    outcomes = exp_show.outcomes(shown)
    # 50 fold-epochs of 8,000 training images (4 of 5 folds of 10,000)
    assert outcomes["a--x--s0"] == exp_show.Outcome("a--x--s0", "completed", 0.88, 170.5, 400_000,
                                                    identity.of(params["params.yaml"]["data"]))
    assert outcomes["a--y--s0"].state == "failed"
    assert outcomes["a--y--s0"].train_seconds is None


def test_efficiency_is_training_time_over_the_workers_wall_time():
    outcomes = [exp_show.Outcome(f"e{i}", "completed", 0.9, seconds, 400_000)
                for i, seconds in enumerate([300.0, 280.0, 320.0])]
    measured = efficiency.efficiency(outcomes, workers=2, wall_seconds=500.0)
    assert measured.training_share == pytest.approx(900 / 1000)
    assert measured.samples_per_second == pytest.approx(1_200_000 / 500)
    assert "3 experiments in 500 s on 2 worker(s): 1.20 M training samples, 2,400 samples/s" \
        in measured.describe()
    assert "filled 90.0% of the workers' time, overhead 10.0%" in measured.describe()
    record = measured.record("dropout", threads=1)
    assert (record["training_share"], record["train_samples"], record["workers"]) == (0.9, 1_200_000, 2)
    # An experiment DVC restored from its run cache did not train: its metrics are an earlier run's.
    tasks = [dvc_queue.Task(f"t{i}", o.name, "Success") for i, o in enumerate(outcomes)]
    tasks.append(dvc_queue.Task("t9", "failed-one", "Failed"))
    counted, cached = efficiency.trained_outcomes(tasks, {o.name: o for o in outcomes}, {"e0", "e2"})
    assert ([o.name for o in counted], cached) == (["e0", "e2"], ["e1"])
    # Nothing to measure, or an experiment without a training time: no figure rather than a wrong one.
    assert efficiency.efficiency([], 2, 500.0) is None
    assert efficiency.efficiency(outcomes + [exp_show.Outcome("f", "completed", 0.9)], 2, 500.0) is None


def test_progress_line_and_threads():
    from collections import Counter
    line = dvc_queue.progress_line(Counter(Success=3, Failed=1, Running=2, Queued=4), 10, 0.0)
    assert "done 3, failed 1, running 2, queued 4 of 10" in line
    assert dvc_queue.threads_per_worker(64) == 1


def test_orphans_are_running_tasks_that_no_process_runs():
    tasks = [dvc_queue.Task("aaa1111", "x--a--s0", "Running"),
             dvc_queue.Task("bbb2222", "x--b--s0", "Running"),
             dvc_queue.Task("ccc3333", "x--c--s0", "Queued")]
    runs = "python dvc exp exec-run --infofile /r/.dvc/tmp/exps/run/aaa1111ffee/aaa1111ffee.run"
    assert [t.task_id for t in dvc_queue.orphans(tasks, runs)] == ["bbb2222"]


def test_workers_are_counted_from_their_processes_not_from_dvc_queue_status(monkeypatch, tmp_path):
    prefix = dvc_queue.worker_node_prefix(tmp_path)
    cmdlines = [f"/v/bin/python /v/bin/dvc exp queue-worker {prefix}1@localhost --clean",
                f"/v/bin/python /v/bin/dvc exp queue-worker {prefix}3@localhost",
                "/v/bin/python /v/bin/dvc exp queue-worker dvc-exp-abcdef-2@localhost",  # other repo
                f"/v/bin/python /v/bin/dvc queue start -j 2 {prefix}2@localhost",  # not a worker
                "python -m src.train"]
    assert dvc_queue.parse_worker_serials(cmdlines, prefix) == {1, 3}
    # Busy workers miss celery's broadcast: `dvc queue status` said 0 while two were training.
    monkeypatch.setattr(dvc_queue, "dvc", lambda *a, **k: "Worker status: 0 active, 0 idle\n")
    monkeypatch.setattr(dvc_queue, "live_workers", lambda: {1, 2})
    assert dvc_queue.queue_state() == ([], 2)


def test_worker_node_names_match_dvcs_own(tmp_path):
    from dvc.repo import Repo
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    repo = Repo.init(str(tmp_path))
    wdir_hash = hashlib.sha256(repo.experiments.celery_queue.wdir.encode("utf-8")).hexdigest()[:6]
    assert dvc_queue.worker_node_prefix(tmp_path) == f"dvc-exp-{wdir_hash}-"


def test_start_workers_starts_only_the_missing_ones(monkeypatch):
    spawned = []
    monkeypatch.setattr(dvc_queue, "live_workers", lambda: {1, 3})
    monkeypatch.setattr(dvc_queue, "spawn_worker", spawned.append)
    assert dvc_queue.start_workers(3) == [2]
    assert spawned == [2]


def test_a_spawned_worker_does_not_hold_the_callers_output_open(tmp_path):
    """`sweep run | tee log` and `subprocess.run(capture_output=True)` read the runner's output to
    its end; a worker it started (here a 120 s sleep) must not keep that pipe open. With
    dvc-task's `ManagedProcess.spawn`, whose fork keeps the caller's stdout, this run timed out."""
    spawner = ("import sys\n"
               "from src.experiments import dvc_queue\n"
               "cmd = [sys.executable, '-c', 'import time; time.sleep(120)']\n"
               f"dvc_queue.spawn_detached(cmd, env=dvc_queue.tool_env(), wdir={str(tmp_path)!r}, "
               "name='w')\n"
               "print('spawned')\n")
    done = subprocess.run([sys.executable, "-c", spawner], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.stdout == "spawned\n", done.stderr
    info = tmp_path / "w.json"
    for _ in range(300):  # the waiter writes the worker's pid once it has started it (<= 30 s)
        if info.exists():
            break
        time.sleep(0.1)
    pid = json.loads(info.read_text())["pid"]
    try:
        assert psutil.Process(pid).is_running()  # still alive after the caller saw its output end
        assert (tmp_path / "w.out").exists()
        # only the worker itself looks like it in the process table (live_workers reads it)
        assert sum("time.sleep(120)" in line for line in dvc_queue.process_cmdlines()) == 1
        assert "TUNELAB_DETACHED" not in psutil.Process(pid).environ()
    finally:
        psutil.Process(pid).kill()


def test_finished_tasks_holding_a_name_to_queue_are_removed_in_one_call(monkeypatch):
    calls = []
    monkeypatch.setattr(dvc_queue, "dvc", lambda *args, check=True: calls.append(args))
    tasks = [dvc_queue.Task("t1", "s--a--s0", "Failed"), dvc_queue.Task("t2", "s--b--s0", "Queued"),
             dvc_queue.Task("t3", "s--c--s0", "Success"), dvc_queue.Task("t4", "other--s0", "Failed")]
    dvc_queue.remove_finished_tasks(["s--a--s0", "s--c--s0", "s--d--s0"], tasks)
    assert calls == [("queue", "remove", "s--a--s0", "s--c--s0")]  # not the queued, not `other`
    dvc_queue.remove_finished_tasks(["s--b--s0", "s--d--s0"], tasks)
    assert len(calls) == 1  # nothing finished holds these names: no call at all


def test_a_sweep_tops_up_workers_that_died_while_experiments_are_queued(monkeypatch, capsys):
    """One of two workers died (as DVC's file queue makes them do): start the missing one, once
    two polls agree, and not while every queued experiment has a worker."""
    running = dvc_queue.Task("aaa1111", "x--a--s0", "Running")
    queued = dvc_queue.Task("bbb2222", "x--b--s0", "Queued")
    polls = iter([([running, queued], 1), ([running, queued], 1), ([running, queued], 2),
                  ([running, dvc_queue.Task("bbb2222", "x--b--s0", "Running")], 2),
                  ([dvc_queue.Task("aaa1111", "x--a--s0", "Success"),
                    dvc_queue.Task("bbb2222", "x--b--s0", "Success")], 1)])
    started = []
    monkeypatch.setattr(dvc_queue, "queue_state", lambda: next(polls))
    monkeypatch.setattr(dvc_queue, "live_runs", lambda: "exps/run/aaa1111 exps/run/bbb2222")
    monkeypatch.setattr(dvc_queue, "start_workers", started.append)
    monkeypatch.setattr(dvc_queue.time, "sleep", lambda _: None)
    final = dvc_queue.wait_for({"aaa1111", "bbb2222"}, 2, poll=0, jobs=2, query_every=0)
    assert started == [2]  # after the second short poll only
    assert {t.status for t in final.values()} == {"Success"}
    assert "1 of 2 queue workers alive, 1 experiment(s) queued: starting the missing ones" in \
        capsys.readouterr().out


def test_an_experiment_whose_result_dvc_lost_is_queued_again_once(monkeypatch, tmp_path, capsys):
    """CI saw the queue say Success for an experiment that `dvc exp show` did not have (DVC's
    worker failed to collect it): the sweep queues it again, once, and reports its second result."""
    from src.experiments import sweep_runner
    from src.tracking import store
    exps = [sweep_spec.Experiment("x", c, 0, {"train.dropout": 0.1}) for c in ("a", "b")]
    got = {e.name: exp_show.Outcome(e.name, "completed", 0.8) for e in exps}
    outcomes = [{}, {exps[0].name: got[exps[0].name]}, dict(got)]  # before, after, after retry
    queued, waits = [], []

    def enqueue(todo, tasks):
        queued.append([e.name for e in todo])
        return {f"t{len(queued)}{n}" for n in range(len(todo))}

    def wait_for(ids, total, poll, jobs):
        waits.append(sorted(ids))
        names = queued[-1]
        return {i: dvc_queue.Task(i, n, "Success") for i, n in zip(sorted(ids), names)}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dvc_queue, "queue_tasks", lambda: [])
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: outcomes.pop(0))
    monkeypatch.setattr(dvc_queue, "enqueue", enqueue)
    monkeypatch.setattr(dvc_queue, "wait_for", wait_for)
    monkeypatch.setattr(dvc_queue, "start_workers", lambda jobs: [])
    monkeypatch.setattr(dvc_queue, "share_machine", lambda jobs: 1)
    monkeypatch.setattr(store, "init_store", lambda: "0")
    monkeypatch.setattr(efficiency, "report_efficiency", lambda *a: None)
    final = sweep_runner.run_experiments("x", exps, exps, jobs=2, poll=0)
    assert queued == [["x--a--s0", "x--b--s0"], ["x--b--s0"]]
    assert final == got and not outcomes
    assert "x--b--s0: the queue says Success but DVC did not collect the result" in \
        capsys.readouterr().out


def fake_dvc_runs(monkeypatch, results):
    """Make src.sweep's `dvc` calls return ``results`` (returncode, stdout, stderr) in turn."""
    import subprocess
    calls = []

    def run(cmd, **_):
        calls.append(cmd)
        code, out, err = results[len(calls) - 1]
        return subprocess.CompletedProcess(cmd, code, out, err)
    monkeypatch.setattr(dvc_queue.subprocess, "run", run)
    return calls


# What `dvc queue status` printed in CI when it read a worker's infofile mid-write.
MID_WRITE = (255, "Task  Name  Created  Status\n",
             "ERROR: unexpected error - Expecting value: line 1 column 1 (char 0)\n")


def test_read_only_queries_retry_a_file_caught_mid_write(monkeypatch):
    calls = fake_dvc_runs(monkeypatch, [MID_WRITE, MID_WRITE, (0, "ok\n", "")])
    assert dvc_queue.dvc("queue", "status", read_only=True, sleep=lambda _: None) == "ok\n"
    assert len(calls) == 3


def test_commands_that_change_the_queue_are_not_retried_on_errors(monkeypatch):
    calls = fake_dvc_runs(monkeypatch, [MID_WRITE, (0, "ok\n", "")])
    with pytest.raises(errors.TunelabError, match="Expecting value"):
        dvc_queue.dvc("exp", "run", "--queue", sleep=lambda _: None)
    assert len(calls) == 1


def test_a_persistent_read_error_is_reported_after_the_deadline(monkeypatch):
    fake_dvc_runs(monkeypatch, [MID_WRITE] * 3)
    with pytest.raises(errors.TunelabError, match="queue status"):
        dvc_queue.dvc("queue", "status", read_only=True, lock_wait=0.0, sleep=lambda _: None)


def test_only_the_named_sweeps_are_checked_against_params():
    small = sweep_spec.apply(BASE, {"train.conv_channels": [4, 8]})  # group norm (8 groups) can't fit 4
    with pytest.raises(ParamError, match="sweep norm, configuration norm=group"):
        sweep_spec.load(REPO / "sweeps.yaml", small)
    assert list(sweep_spec.load(REPO / "sweeps.yaml", small, names=["dropout"])) == ["dropout"]


def fake_interpreter(monkeypatch, tmp_path, with_dvc: bool):
    """A bin directory holding a stand-in `python` (as sys.executable) and, optionally, a `dvc`
    that prints which `python` a stage would run; PATH holds neither."""
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    for name in ["python"] + (["dvc"] if with_dvc else []):
        tool = bindir / name
        tool.write_text('#!/bin/sh\necho "$0 $*"; command -v python\n')
        tool.chmod(0o755)
    monkeypatch.setattr(dvc_queue.sys, "executable", str(bindir / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return bindir


def test_dvc_and_the_stages_python_are_found_next_to_the_interpreter(monkeypatch, tmp_path):
    # `.venv/bin/python -m src.sweep ...` without an activated venv: the venv's dvc runs, and the
    # stages it starts would run the venv's python.
    bindir = fake_interpreter(monkeypatch, tmp_path, with_dvc=True)
    out = dvc_queue.dvc("queue", "status")
    assert out.splitlines() == [f"{bindir}/dvc queue status", f"{bindir}/python"]


def test_a_missing_dvc_is_a_clear_error(monkeypatch, tmp_path):
    fake_interpreter(monkeypatch, tmp_path, with_dvc=False)
    with pytest.raises(errors.TunelabError, match="`dvc` was not found next to .*`bash setup.sh`"):
        dvc_queue.dvc("queue", "status")


def test_training_flops_count_every_conv_and_linear_multiply_add():
    small = models.build("cnn", conv_channels=(4,), hidden_units=(8,))
    macs = 28 * 28 * 4 * 9 + 4 * 14 * 14 * 8 + 8 * 10  # conv 3x3 'same', FC on the pooled map
    assert models.training_flops_per_sample(small) == 6 * macs
    mlp = models.build("mlp", hidden_units=(256, 128))
    assert models.training_flops_per_sample(mlp) == 6 * (784 * 256 + 256 * 128 + 128 * 10)
    reference = models.build("cnn")
    assert round(models.training_flops_per_sample(reference) / 1e6, 2) == 25.45  # README's 25.4
    assert reference.training  # counting leaves the model as it found it


def test_experiments_are_queued_longest_first_and_seeds_stay_in_order():
    loaded = sweep_spec.load(REPO / "sweeps.yaml", BASE, names=["pooling", "dropout", "combined"])
    pooling = sweep_spec.longest_first(sweep_spec.expand(loaded["pooling"], 2, BASE), BASE)
    assert [e.name for e in pooling] == ["pooling--pooling=none--s0", "pooling--pooling=none--s1",
                                         "pooling--pooling=max--s0", "pooling--pooling=max--s1"]
    dropout = sweep_spec.expand(loaded["dropout"], 2, BASE)
    assert sweep_spec.longest_first(dropout, BASE) == dropout  # equal costs: the sweep's order
    epochs = sweep_spec.expand(loaded["dropout"], 1, BASE, {"train.epochs": 3})
    assert sweep_spec.training_flops(sweep_spec.apply(BASE, epochs[0].overrides)) == pytest.approx(
        sweep_spec.training_flops(BASE) * 3 / BASE["train"]["epochs"])
    combined = sweep_spec.longest_first(sweep_spec.expand(loaded["combined"], 1, BASE), BASE)
    costs = [sweep_spec.training_flops(sweep_spec.apply(BASE, e.overrides)) for e in combined]
    assert costs == sorted(costs, reverse=True) and combined[0].config.startswith("conv_channels=64-128")


def test_a_sweep_warns_once_per_configuration_before_queueing():
    s = parse({"configs": [{}, {"train.tta_hflip": True}, {"train.tta_hflip": True, "train.hflip": True}],
               "baseline": {}})
    warnings = sweep_spec.config_warnings(sweep_spec.expand(s, 3, BASE), BASE)
    assert len(warnings) == 1 and warnings[0].startswith("s--tta_hflip=true: warning")
    shipped = sweep_spec.load(REPO / "sweeps.yaml", BASE)
    assert [w for sw in shipped.values()
            for w in sweep_spec.config_warnings(sweep_spec.expand(sw, 1, BASE), BASE)
            if "tta_hflip" in w] == []


def test_replayed_queue_makespan_is_list_scheduling():
    from benchmarks.queue_order import makespan
    assert makespan([2, 2, 3], workers=2) == 5  # the long one last: one worker idles 3 s
    assert makespan([3, 2, 2], workers=2) == 4  # longest first
    assert makespan([1, 1, 1], workers=1) == 3 and makespan([5], workers=4) == 5


def test_sweep_timeline_splits_a_sweep_into_its_parts():
    from benchmarks.sweep_timeline import Run, timeline
    # Two workers from t=100: A runs 110-200 then C 210-300; B runs 112-205 then D 220-310.
    # Each experiment: two folds, each 5 s longer than its epochs, the last ending 15 s before it.
    def run(start, end):
        return Run(start, end, ((start + 5, start + 40, 30.0), (start + 40, end - 15, end - start - 60)))
    runs = [run(210, 300), run(110, 200), run(220, 310), run(112, 205)]
    got = timeline(runs, started=100, workers=2)
    assert got["experiments"] == 4 and got["start_to_first_run"] == 10
    assert got["fold_beyond_epochs_mean"] == 10  # 5 s per fold
    assert got["last_fold_to_end_mean"] == 15
    assert got["between_mean"] == 12.5  # (210 - 200 + 220 - 205) / 2, whichever worker ran which
    assert "between_mean" not in timeline(runs[:2], started=100, workers=2)


def test_the_queue_is_asked_only_when_its_processes_change(monkeypatch):
    """`dvc queue status` costs seconds of CPU: between a task's start and end, polls read only
    the process table; a change there, or an answer that leaves a Running task without a process,
    makes the next poll ask DVC."""
    a, b = (dvc_queue.Task(i, f"x--{i}--s0", "Running") for i in ("aaa1111", "bbb2222"))
    answers = iter([([a, b], 2),                                   # both start
                    ([dvc_queue.Task(a.task_id, a.name, "Success"), b], 2),  # a's process ended
                    ([dvc_queue.Task(a.task_id, a.name, "Success"), b], 2),  # b's process ended, DVC lags
                    ([dvc_queue.Task(a.task_id, a.name, "Success"),
                      dvc_queue.Task(b.task_id, b.name, "Success")], 2)])
    processes = iter(["run a, run b"] * 4 + ["run b"] * 3 + [""] * 10)
    runs = iter(["exps/run/aaa1111 exps/run/bbb2222", "exps/run/bbb2222", "", ""])
    asked = []
    monkeypatch.setattr(dvc_queue, "queue_processes", lambda: next(processes))
    monkeypatch.setattr(dvc_queue, "queue_state", lambda: asked.append(1) or next(answers))
    monkeypatch.setattr(dvc_queue, "live_runs", lambda: next(runs))
    monkeypatch.setattr(dvc_queue.time, "sleep", lambda _: None)
    final = dvc_queue.wait_for({"aaa1111", "bbb2222"}, 2, poll=0, jobs=2)
    assert len(asked) == 4  # of 9 polls of the process table
    assert {t.status for t in final.values()} == {"Success"}


def test_the_design_comes_from_defaults_and_each_sweep_may_override_it(tmp_path):
    (tmp_path / "sweeps.yaml").write_text(
        "defaults: {margin: 0.01, max_seeds: 6}\n"
        "a: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}}\n"
        "b: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}, seeds: 4}\n")
    loaded = sweep_spec.load(tmp_path / "sweeps.yaml", BASE)
    assert set(loaded) == {"a", "b"}  # `defaults` is not a sweep
    assert loaded["a"].design == sweep_spec.StudyDesign(margin=0.01, seeds=3, max_seeds=6)
    assert loaded["b"].design == sweep_spec.StudyDesign(margin=0.01, seeds=4, max_seeds=6)
    assert sweep_spec.sweep_names(tmp_path / "sweeps.yaml") == ["a", "b"]
    (tmp_path / "sweeps.yaml").write_text("defaults: {margins: 0.01}\n")
    with pytest.raises(ParamError, match="sweeps.yaml defaults: a mapping of margin, seeds"):
        sweep_spec.load(tmp_path / "sweeps.yaml", BASE)


def test_the_design_method_defaults_to_obrien_fleming_and_is_checked(tmp_path):
    (tmp_path / "sweeps.yaml").write_text(
        "defaults: {method: pocock}\n"
        "a: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}}\n"
        "b: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}, method: bonferroni}\n")
    loaded = sweep_spec.load(tmp_path / "sweeps.yaml", BASE)
    assert (loaded["a"].design.method, loaded["b"].design.method) == ("pocock", "bonferroni")
    assert sweep_spec.StudyDesign().method == "obrien_fleming"
    (tmp_path / "sweeps.yaml").write_text(
        "a: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}, method: obf}\n")
    with pytest.raises(ParamError, match="sweep a: method = 'obf'; allowed: bonferroni, "
                                         "obrien_fleming, pocock"):
        sweep_spec.load(tmp_path / "sweeps.yaml", BASE)


def test_the_design_metric_defaults_to_cv_and_is_checked(tmp_path):
    (tmp_path / "sweeps.yaml").write_text(
        "defaults: {metric: selection_accuracy}\n"
        "a: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}}\n"
        "b: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}, "
        "metric: cv_accuracy}\n")
    loaded = sweep_spec.load(tmp_path / "sweeps.yaml", BASE)
    assert (loaded["a"].design.metric, loaded["b"].design.metric) == ("selection_accuracy",
                                                                      "cv_accuracy")
    assert sweep_spec.StudyDesign().metric == "cv_accuracy"
    (tmp_path / "sweeps.yaml").write_text(
        "a: {grid: {train.dropout: [0.1, 0.3]}, baseline: {train.dropout: 0.3}, metric: test}\n")
    with pytest.raises(ParamError, match="sweep a: metric = 'test'; allowed: cv_accuracy, "
                                         "selection_accuracy"):
        sweep_spec.load(tmp_path / "sweeps.yaml", BASE)
    (tmp_path / "sweeps.yaml").write_text("defaults: {metric: val}\n")
    with pytest.raises(ParamError, match="sweeps.yaml defaults: metric = 'val'; allowed"):
        sweep_spec.load(tmp_path / "sweeps.yaml", BASE)


def test_the_selection_set_size_is_not_part_of_an_experiments_identity():
    # Oracle: the digest of the committed defaults as identity.py computed it before the key
    # existed (params.yaml without selection_size; recorded at commit cb02443).
    before = {s: {k: v for k, v in BASE[s].items() if k != "selection_size"} for s in BASE}
    assert identity.of(before) == "d333e09ef8e2"
    for size in (0, 5000, 10000):
        assert identity.of(sweep_spec.apply(BASE, {"prepare.selection_size": size})) == \
            "d333e09ef8e2"
    # params from before the key, on all 60,000 images, stay valid (they ran without a set)
    everything = sweep_spec.apply(before, {"prepare.train_size": 60000})
    assert identity.of(everything) == "66b0ed2bd324"
    with pytest.raises(ParamError, match="prepare.selection_size = 10000 is more than the 0"):
        identity.of(sweep_spec.apply(BASE, {"prepare.train_size": 60000}))
