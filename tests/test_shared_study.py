"""The shared study's bookkeeping without servers: masking the storage URI, its errors, refusing a
study made by other code, which pairs to enqueue, what counts once, the host of an experiment.
The real thing on PostgreSQL and MLflow is tests/test_distributed.py."""

from __future__ import annotations

import json
import subprocess

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from src.core.errors import TunelabError
from src.experiments import rdb, shared_study
from src.experiments.shared_study import Job, Settings
from src.experiments.sweep_spec import Experiment
from src.studies import sweep_study
from src.tracking import store
from tests.servers import free_port

URI = "postgresql://tunelab:s3cr%40t-pw@db.example:5432/tunelab_optuna"


def test_mask_hides_the_password_and_keeps_the_rest():
    assert rdb.mask(URI) == "postgresql://tunelab:***@db.example:5432/tunelab_optuna"
    assert rdb.mask("postgresql://tunelab@db/optuna") == "postgresql://tunelab@db/optuna"
    assert rdb.mask("postgresql://db:5432/optuna") == "postgresql://db:5432/optuna"


def test_scrub_removes_the_password_raw_and_url_encoded():
    text = f"failed for {URI}: password s3cr@t-pw or s3cr%40t-pw"
    assert rdb.scrub(text, URI) == ("failed for postgresql://tunelab:***@db.example:5432/"
                                    "tunelab_optuna: password *** or ***")
    assert rdb.scrub("nothing to hide", "") == "nothing to hide"


@pytest.mark.parametrize("uri", ["sqlite:///study.db", "postgres://u:p@h/db",
                                 "postgresql://u:p@h:5432/"])
def test_only_a_postgresql_database_is_accepted(uri):
    with pytest.raises(TunelabError, match="expected postgresql://") as error:
        rdb.check_uri(uri)
    assert ":p@" not in str(error.value)


def test_an_unreachable_database_is_one_masked_line():
    uri = f"postgresql://tunelab:hidden-pw@127.0.0.1:{free_port()}/tunelab_optuna"
    with pytest.raises(TunelabError) as error:
        rdb.open_storage(uri, "test")
    message = str(error.value)
    assert message.startswith("shared study storage postgresql://tunelab:***@127.0.0.1:")
    assert "refused" in message and "hidden-pw" not in message and "\n" not in message


def job(kind="sweep", commit="a" * 40, definition="d1") -> Job:
    return Job(kind, "tiny", Settings(URI), commit, definition)


def test_a_study_from_another_kind_commit_or_definition_is_refused():
    made = {"tunelab.kind": "sweep", "tunelab.commit": "a" * 40, "tunelab.definition": "d1"}
    shared_study.check_identity(made, job())  # the same: accepted
    shared_study.check_identity({}, job())    # new: accepted
    for other, words in ((job(kind="search"), "a sweep's, not a search's"),
                         (job(commit="b" * 40), "created from commit aaaaaaaaaaaa"),
                         (job(definition="d2"), "another definition of sweep tiny")):
        with pytest.raises(TunelabError, match=words) as error:
            shared_study.check_identity(made, other)
        assert "tunelab:***@db.example" in str(error.value) and "s3cr" not in str(error.value)
    with pytest.raises(TunelabError, match="not made by tunelab"):
        shared_study.check_identity({"something": 1}, job())


def experiments(*seeds) -> list[Experiment]:
    return [Experiment("tiny", f"dropout={d}", s, {"train.dropout": d, "train.seed": s})
            for d in (0.0, 0.5) for s in seeds]


def finish(study, number: int, status: str, state=TrialState.COMPLETE) -> None:
    study._storage.set_trial_user_attr(study.trials[number]._trial_id, "status", status)
    study.tell(number, 0.5 if state == TrialState.COMPLETE else None, state=state)


@pytest.fixture
def study():
    return optuna.create_study(direction="maximize")


def take(study, number: int):
    trial = study.ask()
    assert trial.number == number
    return trial


def test_enqueue_adds_every_pair_once_and_again_only_what_failed(study):
    exps = experiments(0, 1)
    shared_study.enqueue(study, shared_study.to_enqueue(study.trials, exps))
    assert [t.user_attrs["experiment"] for t in study.trials] == [e.name for e in exps]
    assert study.trials[0].system_attrs["fixed_params"] == {"config": "dropout=0.0", "seed": 0}
    assert shared_study.to_enqueue(study.trials, exps) == []  # waiting: nothing to add
    for number in range(4):
        take(study, number)
    finish(study, 0, "completed")
    finish(study, 1, "diverged", TrialState.FAIL)  # ran to metrics: not run again
    finish(study, 2, "failed", TrialState.FAIL)
    # 3 still runs; more seeds add their pairs
    assert [e.name for e in shared_study.to_enqueue(study.trials, experiments(0, 1, 2))] == [
        "tiny--dropout=0.0--s2", "tiny--dropout=0.5--s0", "tiny--dropout=0.5--s2"]


def test_a_pair_run_twice_counts_once_and_is_named(study):
    exps = experiments(0)
    shared_study.enqueue(study, exps + exps[:1])  # the engine hands dropout=0.0 out twice
    for number in range(3):
        take(study, number)
    finish(study, 0, "completed")
    finish(study, 1, "completed")
    assert shared_study.rival(study.trials, 2, exps[0].name).number == 0
    assert shared_study.rival(study.trials, 1, exps[1].name) is None
    finish(study, 2, "completed")
    assert shared_study.duplicates(study.trials) == {exps[0].name: [0, 2]}
    text, failed = shared_study.sweep_summary("tiny", exps, study.trials)
    assert text.splitlines()[0] == "sweep tiny: 2 completed (of 2)" and failed == {}
    assert "tiny--dropout=0.0--s0 was run 2 times (trials 0, 2): counted once" in text


def test_a_retried_trial_counts_once_towards_a_search(study):
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    study.tell(trial, state=TrialState.FAIL)
    with pytest.warns(optuna.exceptions.ExperimentalWarning):  # what a live worker does to it
        RetryHeartbeatStaleTrialCallback()(study, frozen)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert shared_study.retried(study.trials) == {0}
    assert [t.number for t in shared_study.counted(study.trials)] == [1]


def test_run_tags_name_the_host_and_the_trial(monkeypatch):
    monkeypatch.setenv("TUNELAB_HOST", "host-a")
    monkeypatch.setenv("TUNELAB_TRIAL", "tiny#3")
    tags = store.run_tags()
    assert tags["tunelab.host"] == "host-a" and tags["tunelab.trial"] == "tiny#3"
    monkeypatch.delenv("TUNELAB_TRIAL")
    monkeypatch.delenv("TUNELAB_HOST")
    assert "tunelab.trial" not in store.run_tags() and store.run_tags()["tunelab.host"]


def test_read_hosts_reads_each_experiment_commit(tmp_path, monkeypatch):
    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    handle = tmp_path / "reports/train/mlflow_run.json"
    handle.parent.mkdir(parents=True)
    revs = []
    for host in ("host-a", None, "host-b"):
        handle.write_text(json.dumps({"run_id": "x", **({"host": host} if host else {})}))
        git("add", "-A")
        git("commit", "-qm", str(host))
        revs.append(git("rev-parse", "HEAD"))
    (tmp_path / "other").write_text("")
    git("rm", "-q", str(handle))
    git("commit", "-qm", "no handle")
    revs.append(git("rev-parse", "HEAD"))
    monkeypatch.chdir(tmp_path)
    assert sweep_study.read_hosts([*revs, "", revs[0]]) == {revs[0]: "host-a", revs[2]: "host-b"}


def test_the_summary_tells_failed_from_still_running_elsewhere(study):
    exps = experiments(0, 1)
    shared_study.enqueue(study, exps)
    for number in range(3):
        take(study, number)
    finish(study, 0, "completed")
    finish(study, 1, "failed", TrialState.FAIL)
    text, not_done = shared_study.sweep_summary("tiny", exps, study.trials)
    assert text.splitlines()[0] == ("sweep tiny: 1 completed, 1 failed, 2 still running or "
                                    "waiting (of 4)")
    assert not_done == {exps[1].name: "failed", exps[2].name: shared_study.PENDING,
                        exps[3].name: shared_study.PENDING}
