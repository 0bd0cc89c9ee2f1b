"""Where MLflow logs, and what a training run leaves in it (a real SQLite store in tmp_path)."""

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from src.core import errors
from src.core.status import Status
from src.tracking import store, trackers


def test_tracking_uri_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert store.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    # A queued DVC experiment runs in a copy; DVC_ROOT names the real repository.
    monkeypatch.setenv("DVC_ROOT", "/repo/root")
    assert store.tracking_uri() == "sqlite:////repo/root/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert store.tracking_uri() == "http://127.0.0.1:5000"  # explicit wins


def test_flatten_keeps_finite_numbers_only():
    nested = {"test": {"accuracy": 0.9, "per_class": {"Bag": 1}}, "status": "ok",
              "cv": {"std": None, "nan": float("nan"), "flag": True}}
    assert store.flatten(nested) == {"test.accuracy": 0.9, "test.per_class.Bag": 1.0}


def test_metric_names_group_by_split():
    assert trackers.metric_name("val_acc") == "val/acc"
    assert trackers.metric_name("train_loss") == "train/loss"
    assert trackers.metric_name("lr") == "lr"


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory) -> Path:
    """An empty SQLite store with MLflow's schema, made once: migrating a fresh one takes ~5 s,
    and each test copies this one instead (no experiment, no run in it)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates it
    return path


@pytest.fixture
def uri(tmp_path, monkeypatch, migrated_store):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    shutil.copy(migrated_store, tmp_path / "mlflow.db")
    return store.tracking_uri()


def test_init_store_is_idempotent_and_puts_artifacts_beside_the_db(uri, tmp_path):
    first = store.init_store(uri)
    assert store.init_store(uri) == first
    experiment = MlflowClient(uri).get_experiment(first)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()


def test_parent_child_runs_and_reopening(uri, tmp_path, monkeypatch):
    experiment = store.init_store(uri)
    mlflow = trackers.MLflowTracker(uri, experiment, "exp-1", {"train.lr": 0.001},
                                    {"dvc.exp_name": "exp-1"})
    for fold in range(2):
        mlflow.start_fold(fold)
        for epoch in (1, 2):
            mlflow.log_epoch(fold, {"epoch": epoch, "val_acc": 0.5 + epoch / 10, "lr": 0.001})
        mlflow.end_fold(fold, "completed")
    handle = tmp_path / "mlflow_run.json"
    store.save_handle(handle, mlflow.handle())
    assert set(json.loads(handle.read_text())) == {"experiment_id", "run_id"}

    parent = store.ParentRun(handle)  # what plot does
    parent.log_metrics({"test": {"accuracy": 0.91}})
    parent.finish()

    client = MlflowClient(uri)
    runs = client.search_runs([experiment])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == mlflow.parent]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].data.params["train.lr"] == "0.001"
    assert parents[0].data.metrics["test.accuracy"] == 0.91
    assert parents[0].info.status == "FINISHED"
    history = client.get_metric_history(children[0].info.run_id, "val/acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.7)]
    assert all(c.info.status == "FINISHED" for c in children)


def test_abort_marks_open_runs_killed(uri):
    experiment = store.init_store(uri)
    mlflow = trackers.MLflowTracker(uri, experiment, "exp", {}, {})
    mlflow.start_fold(0)
    mlflow.abort("KILLED")
    statuses = {r.info.status for r in MlflowClient(uri).search_runs([experiment])}
    assert statuses == {"KILLED"}


def test_unusable_store_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(errors.TunelabError, match="unusable"):
        store.init_store(f"sqlite:///{tmp_path}/a-file/mlflow.db")


def test_trained_since_finds_the_sweeps_parent_runs_opened_since(uri):
    import time
    experiment = store.init_store(uri)
    assert store.trained_since(0.0, "s--", uri) == set()

    def train(name):
        run = trackers.MLflowTracker(uri, experiment, name, {}, {"dvc.exp_name": name})
        run.start_fold(0)  # a child run: no dvc.exp_name tag of its own
        run.end_fold(0, "completed")

    train("s--a--s0")  # an earlier run of the same configuration
    time.sleep(0.01)
    since = time.time()
    time.sleep(0.01)
    for name in ("s--b--s0", "other--a--s0"):
        train(name)
    assert store.trained_since(since, "s--", uri) == {"s--b--s0"}
    assert store.trained_since(0.0, "s--", uri) == {"s--a--s0", "s--b--s0"}


def test_dvclive_ending_tolerates_another_worker_removing_the_step_signal(tmp_path, monkeypatch):
    import dvclive.live
    monkeypatch.delenv("DVC_ROOT", raising=False)

    def removed_by_another_worker():
        raise FileNotFoundError(2, "No such file", str(tmp_path / trackers.STEP_SIGNAL))

    monkeypatch.setattr(dvclive.live, "cleanup_dvclive_step_completed", removed_by_another_worker)
    with trackers.live(tmp_path / "live") as live:
        live.log_metric("val/acc", 0.5)
    assert (tmp_path / "live" / "metrics.json").is_file()

    def something_else():
        raise FileNotFoundError(2, "No such file", str(tmp_path / "other"))

    monkeypatch.setattr(dvclive.live, "cleanup_dvclive_step_completed", something_else)
    with pytest.raises(FileNotFoundError):
        with trackers.live(tmp_path / "live2") as live:
            live.log_metric("val/acc", 0.5)


def open_the_store_as_train_does(uri: str, name: str, barrier, out: str) -> None:
    """In a process of its own: what `train` does to the store before its first epoch; writes
    the experiment id, or the error, to ``out``."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - imported before the race starts

    from src.core.status import Status
    try:
        barrier.wait()  # its timeout: a process that died before it fails the others, never hangs
        experiment = store.init_store(uri)
        trackers.MLflowTracker(uri, experiment, name, {"worker": name}, {}).finish(Status.COMPLETED)
        Path(out).write_text(experiment)
    except BaseException as error:  # noqa: BLE001 - reported to the test, which fails on it
        Path(out).write_text(f"{type(error).__name__}: {error}")


@pytest.mark.e2e
def test_train_processes_starting_at_once_on_a_fresh_store_all_succeed(tmp_path, monkeypatch):
    # DVC's own queue (`dvc queue start -j 2` in a fresh clone) starts train in several processes
    # with no mlflow.db yet: each must create and migrate the store under the same lock.
    import multiprocessing
    import sqlite3
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # inherited by the processes
    uri, names = store.tracking_uri(), ["w0", "w1", "w2"]
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(len(names), timeout=600)
    workers = [spawn.Process(target=open_the_store_as_train_does,
                             args=(uri, name, barrier, str(tmp_path / f"{name}.out")))
               for name in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    got = {name: (tmp_path / f"{name}.out").read_text() for name in names}
    assert len(set(got.values())) == 1 and got["w0"].isdigit(), got  # one experiment, no error
    runs = MlflowClient(uri).search_runs([got["w0"]])
    assert sorted(r.info.run_name for r in runs if r.info.status == "FINISHED") == names
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM experiments WHERE name = 'tunelab'").fetchone() == (1,)


# --- the clean-up on a busy SQLite store ---------------------------------------------------------

class Locked:
    """A store call that SQLite refuses ``times`` times ("database is locked"), then makes."""

    def __init__(self, times: int, wrapped: bool = False):
        self.times, self.wrapped, self.calls = times, wrapped, 0

    def __call__(self, *args, **kwargs):
        import sqlite3

        from mlflow.exceptions import MlflowException
        self.calls += 1
        if self.calls > self.times:
            return "done"
        error = sqlite3.OperationalError("database is locked")
        if not self.wrapped:
            raise error
        try:
            raise error
        except sqlite3.OperationalError as cause:  # how MLflow's SQL store reports it
            raise MlflowException("(sqlite3.OperationalError) database is locked") from cause


@pytest.mark.parametrize("wrapped", [False, True])
def test_when_unlocked_calls_again_while_the_store_is_locked(wrapped):
    call, waits = Locked(times=2, wrapped=wrapped), []
    assert store.when_unlocked(call, attempts=3, first_wait=0.5, sleep=waits.append) == "done"
    assert call.calls == 3 and waits == [0.5, 1.0]


def test_when_unlocked_gives_up_after_its_attempts():
    call, waits = Locked(times=5), []
    with pytest.raises(Exception, match="database is locked"):
        store.when_unlocked(call, attempts=3, first_wait=0.5, sleep=waits.append)
    assert call.calls == 3 and waits == [0.5, 1.0]


def test_when_unlocked_raises_other_errors_at_once():
    waits = []

    def broken():
        raise ValueError("no such run")

    with pytest.raises(ValueError, match="no such run"):
        store.when_unlocked(broken, sleep=waits.append)
    assert waits == []


def test_end_runs_ends_every_run_through_a_locked_store(monkeypatch):
    monkeypatch.setattr(store, "FIRST_WAIT_S", 0.0)
    ended = []

    class Client:
        set_terminated_once = Locked(times=1)

        def set_terminated(self, run_id, status):
            self.set_terminated_once()  # refused once, then through
            ended.append((run_id, status))

    store.end_runs(Client(), ["child", "parent"], "KILLED")
    assert ended == [("child", "KILLED"), ("parent", "KILLED")]


def test_abort_on_a_store_that_stays_locked_says_so_and_does_not_raise(uri, monkeypatch, capsys):
    experiment = store.init_store(uri)
    mlflow = trackers.MLflowTracker(uri, experiment, "exp", {}, {})
    mlflow.start_fold(0)
    monkeypatch.setattr(store, "FIRST_WAIT_S", 0.0)
    monkeypatch.setattr(mlflow.client, "set_terminated", Locked(times=99), raising=False)
    mlflow.abort("KILLED")  # the interruption, not the store, decides the exit status
    assert "not ended KILLED: database is locked" in capsys.readouterr().err


def test_a_stop_signal_inside_a_store_call_is_raised_when_the_call_returns(uri):
    import signal
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    steps = []

    class Client:
        def log_batch(self):
            signal.raise_signal(signal.SIGTERM)  # its handler runs before raise_signal returns
            steps.append("committed")

    try:
        errors.handle_stop_signals()
        with pytest.raises(KeyboardInterrupt):
            store._Uninterrupted(Client()).log_batch()
        assert steps == ["committed"]  # the call finished, then the interrupt
        signal.raise_signal(signal.SIGTERM)  # a second SIGTERM is let pass
        errors.handle_stop_signals()
        with pytest.raises(KeyboardInterrupt):  # outside a store call: at once
            signal.raise_signal(signal.SIGTERM)
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    assert isinstance(store.client(uri), store._Uninterrupted)
    assert not isinstance(store.client("http://127.0.0.1:5000"), store._Uninterrupted)


def test_a_configuration_tag_is_the_same_for_every_seed_and_any_spelling():
    tags = trackers.config_tags({"train": {"dropout": 0.5, "lr": 0.01, "seed": 0}})
    assert tags == trackers.config_tags({"train": {"seed": 7, "lr": 1.0e-2, "dropout": 0.5}})
    assert tags == trackers.config_tags({"train": {"dropout": 0.5, "lr": 0.01, "epochs": 10},
                                         "prepare": {"cv_folds": 5}})  # defaults written out
    digest = tags[trackers.CONFIG_ID_TAG]
    assert tags[trackers.CONFIG_TAG] == f"train.dropout=0.5; train.lr=0.01 ({digest[:8]})"
    assert trackers.config_tags({})[trackers.CONFIG_TAG].startswith("defaults (")


def test_different_params_are_different_configurations():
    base = {"train": {"dropout": 0.5, "seed": 1}}
    others = [{"train": {"dropout": 0.3, "seed": 1}}, {"train": {"dropout": 0.5, "epochs": 3}},
              {"train": {"dropout": 0.5}, "prepare": {"seed": 1}},  # another split of the data
              {"train": {"dropout": 0.5, "conv_channels": [16, 32]}}]
    tags = [trackers.config_tags(p) for p in [base, *others]]
    assert len({t[trackers.CONFIG_ID_TAG] for t in tags}) == len(tags)
    assert len({t[trackers.CONFIG_TAG] for t in tags}) == len(tags)
    assert tags[3][trackers.CONFIG_TAG].startswith("prepare.seed=1; train.dropout=0.5 (")
    assert tags[4][trackers.CONFIG_TAG].startswith("train.conv_channels=[16, 32]; ")


def test_configuration_tags_of_invalid_params_name_the_key():
    with pytest.raises(errors.ParamError, match="train.dropuot"):
        trackers.config_tags({"train": {"dropuot": 0.5}})


def test_grouped_view_is_saved_once_as_mlflows_shared_view_state(uri):
    experiment = store.init_store(uri)
    client = MlflowClient(uri)
    path = trackers.grouped_view(client, experiment, "tags.sweep = 'dropout'")
    assert trackers.grouped_view(client, experiment, "tags.sweep = 'dropout'") == path
    key = path.split("viewStateShareKey=")[1]
    assert path.startswith(f"#/experiments/{experiment}/runs?")
    saved = {k: v for k, v in client.get_experiment(experiment).tags.items()
             if k.startswith("mlflow.sharedViewState.")}
    assert list(saved) == [f"mlflow.sharedViewState.{key}"]
    state = json.loads(saved[f"mlflow.sharedViewState.{key}"])
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "tunelab.config"}]
    assert state["searchFilter"] == "tags.sweep = 'dropout' and tags.`tunelab.config` LIKE '%'"
    # The filter is one the store accepts.
    assert client.search_runs([experiment], filter_string=state["searchFilter"]) == []


def test_a_study_run_links_the_runs_it_used(uri):
    import pandas as pd

    from src.studies import outputs
    experiment = store.init_store(uri)
    parent = trackers.MLflowTracker(uri, experiment, "dropout--dropout=0.5--s0", {}, {
        "sweep": "dropout", **trackers.config_tags({"train": {"dropout": 0.5}})})
    parent.finish(Status.COMPLETED)
    used = pd.DataFrame({"name": ["dropout--dropout=0.5--s0", "dropout--dropout=0.5--s1",
                                  "dropout--dropout=0.3--s0"],
                         "rev": ["a" * 40, "b" * 40, "c" * 40],
                         "run_id": [parent.parent, "f" * 32, ""]})  # ran elsewhere; no handle
    folder = Path(uri.removeprefix("sqlite:///")).parent / "study"
    folder.mkdir()
    (folder / "report.md").write_text("# dropout\n")
    run_id = outputs.log_to_mlflow("dropout", folder, {}, {"experiments": 3}, used)
    client = MlflowClient(uri)
    tags = client.get_run(run_id).data.tags
    assert (tags["tunelab.runs"], tags["tunelab.runs_in_store"]) == ("3", "1")
    assert tags["tunelab.runs_view"] in tags["mlflow.note.content"]
    listed = pd.read_csv(client.download_artifacts(run_id, "runs.csv"), keep_default_na=False)
    assert listed["name"].tolist() == used["name"].tolist()
    assert listed["run_id"].tolist() == used["run_id"].tolist()
    assert listed["in_store"].tolist() == [True, False, False]
    grouped = client.search_runs([experiment], filter_string=json.loads(
        client.get_experiment(experiment).tags[
            "mlflow.sharedViewState." + tags["tunelab.runs_view"].split("=")[-1]])["searchFilter"])
    assert [r.info.run_id for r in grouped] == [parent.parent]  # not the study run itself
