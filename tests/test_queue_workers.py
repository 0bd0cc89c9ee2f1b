"""A repository's DVC queue workers counted from the process table, and the threads each of their
experiments takes (src/core/queue_workers.py, engine.set_threads): `dvc queue start -j 2` on 2
cores gave each experiment every core (load 4) until the stages divided the cores themselves."""

import os

import pytest
import torch

from src.core import engine, queue_workers


def worker_lines(root, serials):
    prefix = queue_workers.worker_node_prefix(root)
    return [f"/v/bin/python /v/bin/dvc exp queue-worker {prefix}{n}@localhost" for n in serials]


def queued_env(root):
    return {"DVC_EXP_BASELINE_REV": "a" * 40, "DVC_ROOT": str(root), "DVC_EXP_NAME": "x"}


def test_workers_of_the_experiments_repository_share_its_cores(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    cmdlines = (worker_lines(tmp_path, [1, 2]) + worker_lines(other, [1, 2, 3])
                + [f"dvc queue start -j 2 {queue_workers.worker_node_prefix(tmp_path)}3@localhost",
                   "python -m src.train"])
    assert queue_workers.sharing_workers(queued_env(tmp_path), lambda: cmdlines) == 2
    assert queue_workers.sharing_workers(queued_env(other), lambda: cmdlines) == 3
    assert queue_workers.threads_per_worker(2, cores=2) == 1
    assert queue_workers.threads_per_worker(2, cores=8) == 4
    assert queue_workers.threads_per_worker(3, cores=2) == 1  # never 0


def test_outside_an_experiment_no_process_table_is_read(tmp_path):
    def unread():
        raise AssertionError("the process table was read outside an experiment")
    # `dvc repro` sets DVC_ROOT but not DVC_EXP_BASELINE_REV; a bare `python -m` sets neither.
    for env in ({}, {"DVC_ROOT": str(tmp_path)}, {"DVC_EXP_BASELINE_REV": "a" * 40}):
        assert queue_workers.queued_root(env) is None
        assert queue_workers.sharing_workers(env, unread) == 0


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_queued_stage_takes_cores_over_live_workers_unless_tunelab_threads_says(
        monkeypatch, restore_threads, tmp_path):
    monkeypatch.delenv("TUNELAB_THREADS", raising=False)
    for key, value in queued_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(queue_workers, "process_cmdlines", lambda: worker_lines(tmp_path, [1, 2]))
    torch.set_num_threads(1)
    assert engine.set_threads() == 4 == torch.get_num_threads()
    monkeypatch.setenv("TUNELAB_THREADS", "3")  # `sweep run`, or a user, decides: it wins
    assert engine.set_threads() == 3
    monkeypatch.delenv("TUNELAB_THREADS")
    monkeypatch.setattr(queue_workers, "process_cmdlines", lambda: [])  # no worker: torch's default
    torch.set_num_threads(5)
    assert engine.set_threads() == 5
