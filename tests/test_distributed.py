"""Several hosts, one study, on real servers on 127.0.0.1: a throw-away PostgreSQL cluster (the
Optuna study, MLflow's store and its users), an `mlflow server` on it with basic-auth, a bare git
repository as the shared git remote and a folder as the DVC remote. Each "host" is a clone of the
same commit with its own $TUNELAB_HOST, running `python -m src.sweep run ... --storage`.

Checks: two hosts run a sweep of 6 (configuration, seed) pairs to the end, every pair completed
exactly once, in MLflow and on the git remote, and `study` on a third clone reports them all with
their hosts; a host killed mid-trial (kill -9 of its whole process tree) loses nothing: a live host
retries the trial, its MLflow run ends KILLED; a wrong password, an unreachable port, a study from
another commit or sweep definition give one line with the password masked, exit 2, nothing started;
a search runs on the shared study. No mocks: the real engines.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from unittest import mock

import pandas as pd
import psutil
import pytest

from tests.conftest import TINY, make_project, sh
from tests.servers import free_port, mlflow_server, postgres_bin, postgres_cluster

pytestmark = [pytest.mark.distributed, pytest.mark.e2e,
              pytest.mark.skipif(postgres_bin() is None, reason="needs PostgreSQL's server "
                                 "programs (`apt-get install postgresql`; .ci/run installs them)")]

PG_PASSWORD = "pg-secret-5f3a9c"          # never to be printed
ADMIN_PASSWORD = "mlflow-admin-secret-7b21"
USER_PASSWORD = "mlflow-user-secret-c4d8"
RUN_TIMEOUT = 420  # seconds for a host's sweep: tiny experiments, but a busy shared machine

SWEEPS = """
tiny:
  grid: {train.dropout: [0.0, 0.25, 0.5]}
  baseline: {train.dropout: 0.0}
killed:
  grid: {train.dropout: [0.1, 0.3]}
  baseline: {train.dropout: 0.1}
adaptive:
  description: one configuration that cannot learn, one that differs by noise alone
  fixed: {prepare.train_size: 600, prepare.selection_size: 0, train.epochs: 3}
  configs: [{}, {train.lr: 0.0000001}, {train.dropout: 0.1}]
  baseline: {}
  margin: 0.001
  method: bonferroni
"""
SEARCHES = """
shared_search:
  space: {train.dropout: {type: uniform, low: 0.0, high: 0.5}}
  startup_trials: 2
"""
AUTH_INI = """[mlflow]
default_permission = READ
database_uri = {database}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
"""


@pytest.fixture(scope="module")
def pg():
    with postgres_cluster(PG_PASSWORD) as cluster:
        for name in ("tunelab_optuna", "tunelab_mlflow", "tunelab_mlflow_auth"):
            cluster.create_database(name)
        yield cluster


@contextlib.contextmanager
def as_mlflow_user(server: str, user: str, password: str):
    with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_URI": server,
                                      "MLFLOW_TRACKING_USERNAME": user,
                                      "MLFLOW_TRACKING_PASSWORD": password}):
        yield


@pytest.fixture(scope="module")
def mlflow(pg, tmp_path_factory):
    """`mlflow server` on PostgreSQL, basic-auth on, artifacts proxied; a `tunelab` user made by
    the admin, as docs/distributed.md does."""
    folder = tmp_path_factory.mktemp("mlflow")
    ini = folder / "basic_auth.ini"
    ini.write_text(AUTH_INI.format(database=pg.uri("tunelab_mlflow_auth")))
    env = os.environ | {"MLFLOW_AUTH_CONFIG_PATH": str(ini),
                        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
                        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key-91ab"}
    with mlflow_server(pg.uri("tunelab_mlflow"), folder / "artifacts", env,
                       ("--app-name", "basic-auth", "--allowed-hosts", "127.0.0.1:*"),
                       log=folder / "server.log") as server:
        from mlflow.server.auth.client import AuthServiceClient
        with as_mlflow_user(server, "admin", ADMIN_PASSWORD):
            AuthServiceClient(server).create_user("tunelab", USER_PASSWORD)
        yield server


@pytest.fixture(scope="module")
def shared(tmp_path_factory, mlflow):
    """The commit every host clones: a project on TINY params with its prepared data pushed to the
    DVC remote, on a bare git repository; ``clone(host)`` makes a host's clone and environment."""
    top = tmp_path_factory.mktemp("shared")
    (top / "seed").mkdir()
    root, env = make_project(top / "seed", TINY, {"sweeps.yaml": SWEEPS,
                                                 "searches.yaml": SEARCHES})
    remote = top / "remote.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(remote), cwd=top, env=env)
    for command in (("dvc", "remote", "add", "-d", "shared", str(top / "dvc-store")),
                    ("dvc", "repro", "-q", "prepare"), ("git", "add", "-A"),
                    ("git", "commit", "-qm", "prepared data, shared remotes"), ("dvc", "push", "-q"),
                    ("git", "remote", "add", "origin", str(remote)),
                    ("git", "push", "-q", "origin", "main")):
        sh(*command, cwd=root, env=env)

    def clone(host: str) -> tuple[Path, dict]:
        where = top / host
        sh("git", "clone", "-q", str(remote), str(where), cwd=top, env=env)
        for key, value in (("user.email", f"{host}@example.com"), ("user.name", host)):
            sh("git", "config", key, value, cwd=where, env=env)
        sh("dvc", "pull", "-q", "prepare", cwd=where, env=env)  # what the seed produced
        return where, env | {"TUNELAB_HOST": host, "MLFLOW_TRACKING_URI": mlflow,
                             "MLFLOW_TRACKING_USERNAME": "tunelab",
                             "MLFLOW_TRACKING_PASSWORD": USER_PASSWORD}

    return clone, remote


def sweep_command(name: str, storage: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "src.sweep", "run", name, "--jobs", "1", "--storage", storage,
            "--poll", "1", *extra]


def host_log(root: Path) -> Path:
    return root.with_name(f"{root.name}.log")  # beside the clone: not an untracked file in it


def start(command: list[str], root: Path, env: dict) -> subprocess.Popen:
    """A host's command in its own session, output in <clone>.log."""
    log = open(host_log(root), "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(process: subprocess.Popen, root: Path, timeout: float = RUN_TIMEOUT) -> str:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        raise AssertionError(f"{root.name} did not finish:\n{host_log(root).read_text()}") \
            from None
    return host_log(root).read_text()


def kill_tree(pid: int) -> list[int]:
    """kill -9 a process and every descendant at once: the host dies."""
    door = psutil.Process(pid)
    everyone = [door, *door.children(recursive=True)]
    for proc in everyone:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(everyone, timeout=30)
    return [p.pid for p in everyone]


def study_trials(storage: str, name: str):
    import optuna
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(deepcopy=False)


def parent_runs(server: str, prefix: str) -> list:
    from mlflow.tracking import MlflowClient
    with as_mlflow_user(server, "tunelab", USER_PASSWORD):
        client = MlflowClient(server)
        experiment = client.get_experiment_by_name("tunelab")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("dvc.exp_name", "").startswith(prefix)
            and "mlflow.parentRunId" not in r.data.tags], runs


def remote_experiments(remote: Path) -> list[str]:
    refs = subprocess.run(["git", "ls-remote", str(remote), "refs/exps/*"], capture_output=True,
                          text=True, check=True).stdout.split()
    return [ref.rsplit("/", 1)[1] for ref in refs if ref.startswith("refs/exps/")]


def connections(pg) -> Counter:
    """Open connections per application name (`tunelab <host> <role>`), from pg_stat_activity."""
    import psycopg
    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                         dbname="postgres") as db:
        rows = db.execute("SELECT application_name, count(*) FROM pg_stat_activity "
                          "WHERE application_name LIKE 'tunelab %' GROUP BY 1").fetchall()
    return Counter(dict(rows))


@pytest.fixture(scope="module")
def two_hosts(pg, mlflow, shared):
    """Hosts a and b run sweep `tiny` (3 configurations x 2 seeds) at once, one worker each;
    connections are sampled from pg_stat_activity meanwhile."""
    clone, remote = shared
    storage = pg.uri("tunelab_optuna")
    hosts = {name: clone(name) for name in ("host-a", "host-b")}
    started = time.monotonic()
    running = {name: start(sweep_command("tiny", storage, "--seeds", "2"), root, env)
               for name, (root, env) in hosts.items()}
    peak = Counter()
    while any(p.poll() is None for p in running.values()) and \
            time.monotonic() - started < RUN_TIMEOUT:
        peak |= connections(pg)  # the largest count seen per application name
        time.sleep(0.5)
    logs = {name: finish(p, hosts[name][0]) for name, p in running.items()}
    return {"hosts": hosts, "logs": logs, "codes": {n: p.returncode for n, p in running.items()},
            "storage": storage, "peak": peak, "remote": remote, "clone": clone,
            "seconds": time.monotonic() - started}


EXPECTED = {f"tiny--dropout={d}--s{s}" for d in ("0.0", "0.25", "0.5") for s in (0, 1)}


def test_two_hosts_complete_every_pair_exactly_once(two_hosts):
    assert two_hosts["codes"] == {"host-a": 0, "host-b": 0}, two_hosts["logs"]
    trials = study_trials(two_hosts["storage"], "tiny")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert Counter(t.user_attrs["experiment"] for t in complete) == Counter(EXPECTED)
    assert len(trials) == len(EXPECTED)  # nothing handed out twice, no failed trial
    assert {t.user_attrs["host"] for t in complete} == {"host-a", "host-b"}  # both took work
    for log in two_hosts["logs"].values():
        assert "sweep tiny: 6 completed (of 6)" in log


def test_every_experiment_is_in_mlflow_and_on_the_git_remote(two_hosts, mlflow):
    parents, runs = parent_runs(mlflow, "tiny--")
    assert sorted(r.data.tags["dvc.exp_name"] for r in parents) == sorted(EXPECTED)
    trials = {t.user_attrs["experiment"]: t for t in study_trials(two_hosts["storage"], "tiny")}
    for run in parents:
        trial = trials[run.data.tags["dvc.exp_name"]]
        assert run.info.status == "FINISHED"
        assert run.data.tags["tunelab.host"] == trial.user_attrs["host"]
        assert run.data.tags["tunelab.trial"] == f"tiny#{trial.number}"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert sorted(remote_experiments(two_hosts["remote"])) == sorted(EXPECTED)


def test_study_on_a_third_clone_reports_every_host(two_hosts):
    root, env = two_hosts["clone"]("host-c")
    done = sh(sys.executable, "-m", "src.study", "tiny", "--pull", cwd=root, env=env)
    assert "pulled 6 experiment(s)" in done.stdout, done.stdout
    table = pd.read_csv(root / "reports/study/tiny/experiments.csv")
    assert sorted(table["name"]) == sorted(EXPECTED)
    hosts = {t.user_attrs["experiment"]: t.user_attrs["host"]
             for t in study_trials(two_hosts["storage"], "tiny")}
    assert dict(zip(table["name"], table["host"])) == hosts
    assert "They ran on 2 hosts: host-a" in (root / "reports/study/tiny/report.md").read_text()


def test_each_worker_holds_one_connection_and_no_password_is_printed(two_hosts, mlflow):
    peak = two_hosts["peak"]
    workers = {name: n for name, n in peak.items() if " worker " in name}
    assert set(workers) == {"tunelab host-a worker 1", "tunelab host-b worker 1"}, peak
    assert max(workers.values()) <= 2 and max(peak.values()) <= 3, peak  # doc: <= 2 per worker
    _, runs = parent_runs(mlflow, "tiny--")
    logged = [v for r in runs for v in (*r.data.params.values(), *r.data.tags.values())]
    texts = [*two_hosts["logs"].values(), *logged]
    for root, _ in two_hosts["hosts"].values():
        texts += [p.read_text(errors="replace") for p in (root / ".tunelab").rglob("*.log")]
    assert not [t for t in texts if PG_PASSWORD in t or USER_PASSWORD in t]


def wait_until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_host_loses_nothing(pg, mlflow, shared):
    """Hosts d and e run sweep `killed` (2 pairs), one each; d dies (kill -9 of its door, worker,
    dvc and train processes) while training; e finishes its own pair, fails d's trial once its
    heartbeat is 6 s old and runs it again; d's MLflow runs end KILLED."""
    clone, remote = shared
    storage = pg.uri("tunelab_optuna")
    beats = ("--seeds", "1", "--heartbeat", "1", "--grace", "6")
    (root_d, env_d), (root_e, env_e) = clone("host-d"), clone("host-e")
    door = start(sweep_command("killed", storage, *beats), root_d, env_d)

    def training_on_d():  # a fold run under host d's parent run: mid-trial
        parents, runs = parent_runs(mlflow, "killed--")
        mine = [p for p in parents if p.data.tags.get("tunelab.host") == "host-d"]
        return mine and [r for r in runs if r.data.tags.get("mlflow.parentRunId") ==
                         mine[0].info.run_id] and mine[0]

    survivor = None
    try:
        wait_until(lambda: "running" in host_log(root_d).read_text(), RUN_TIMEOUT,
                   "host d to take a pair")
        survivor = start(sweep_command("killed", storage, *beats), root_e, env_e)
        victim = wait_until(training_on_d, RUN_TIMEOUT, "host d to train")
    except BaseException:
        for process in (door, survivor):
            if process is not None:
                kill_tree(process.pid)
        raise
    kill_tree(door.pid)  # mid-trial: its parent run and a fold run are RUNNING
    killed_trial = victim.data.tags["tunelab.trial"]
    log = finish(survivor, root_e)
    assert survivor.returncode == 0, log
    assert "sweep killed: 2 completed (of 2)" in log, log
    assert re.search(r"no heartbeat for 6 s: failed and queued again; its MLflow runs: [12] "
                     r"ended KILLED", log), log

    trials = study_trials(storage, "killed")
    dead = next(t for t in trials if f"killed#{t.number}" == killed_trial)
    assert dead.state.name == "FAIL" and dead.user_attrs["host"] == "host-d"
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.state.name == "COMPLETE" and retry.user_attrs["host"] == "host-e"
    assert retry.user_attrs["experiment"] == dead.user_attrs["experiment"]
    complete = Counter(t.user_attrs["experiment"] for t in trials if t.state.name == "COMPLETE")
    assert complete == Counter(f"killed--dropout={d}--s0" for d in ("0.1", "0.3"))

    parents, runs = parent_runs(mlflow, "killed--")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert {p.info.run_id: p.info.status for p in parents}[victim.info.run_id] == "KILLED"
    assert set(remote_experiments(remote)) >= set(complete)  # host d never pushed: nothing twice


def run_door(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "src.sweep", "run", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_wrong_password_and_an_unreachable_port_are_one_masked_line(pg, shared):
    root, env = shared[0]("host-f")
    cases = {"wrong-password-3e1c": pg.uri("tunelab_optuna", password="wrong-password-3e1c"),
             PG_PASSWORD: pg.uri("tunelab_optuna", port=free_port())}
    for secret, storage in cases.items():
        done = run_door(root, env, "tiny", "--seeds", "1", "--storage", storage)
        assert done.returncode == 2, done.stdout + done.stderr
        line = done.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith("error: shared study storage ")
        masked = storage.replace(f":{secret}@", ":***@")
        assert masked in line and secret not in done.stdout + done.stderr, line
        assert ("password authentication failed" if "wrong" in secret else "refused") in line
    assert not list((root / ".tunelab").glob("shared/*/*.log"))  # nothing started


def test_a_study_from_another_commit_or_definition_is_refused(two_hosts):
    root, env = two_hosts["clone"]("host-g")
    storage = two_hosts["storage"]
    before = len(study_trials(storage, "tiny"))
    other = run_door(root, env, "tiny", "--seeds", "2", "--storage", storage,
                     "--set", "train.epochs=1")
    assert other.returncode == 2 and "another definition of sweep tiny" in other.stderr
    (root / "NOTES").write_text("a commit the other hosts do not have\n")
    sh("git", "add", "NOTES", cwd=root, env=env)
    sh("git", "commit", "-qm", "notes", cwd=root, env=env)
    moved = run_door(root, env, "tiny", "--seeds", "2", "--storage", storage)
    assert moved.returncode == 2 and "was created from commit" in moved.stderr, moved.stderr
    for done in (other, moved):
        assert len(done.stderr.strip().splitlines()) == 1
        assert "postgresql://tunelab:***@127.0.0.1" in done.stderr and PG_PASSWORD not in done.stderr
    assert len(study_trials(storage, "tiny")) == before  # nothing enqueued, nothing ran


def test_a_search_runs_on_the_shared_study(pg, mlflow, shared):
    root, env = shared[0]("host-h")
    storage = pg.uri("tunelab_optuna")
    done = subprocess.run([sys.executable, "-m", "src.search", "shared_search", "--trials", "2",
                           "--jobs", "2", "--sampler", "random", "--storage", storage,
                           "--poll", "1"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "search shared_search: 2 trials (2 complete)" in done.stdout, done.stdout
    trials = study_trials(storage, "shared_search")
    assert sorted(t.user_attrs["experiment"] for t in trials) == [
        f"shared_search--t{n:03d}--s0" for n in range(2)]
    assert {t.user_attrs["worker"].split("/")[0] for t in trials} == {"host-h"}
    assert set(remote_experiments(shared[1])) >= {t.user_attrs["experiment"] for t in trials}


def test_two_hosts_run_adaptive_seeds_on_one_shared_study(pg, mlflow, shared):
    """`sweep run --until-decided --storage` on two hosts at once: the same policy as on one
    machine's queue, on the shared study; every experiment runs once, on either host, and only
    the undecided get the fourth seed (the configuration that cannot learn is decided at look 1;
    on the synthetic data the other two both reach 100%: a tie, undecided to the last seed)."""
    clone, _ = shared
    storage = pg.uri("tunelab_optuna")
    hosts = {name: clone(name) for name in ("host-p", "host-q")}
    command = sweep_command("adaptive", storage, "--until-decided", "--seeds", "3",
                            "--max-seeds", "4")
    running = {name: start(command, root, env) for name, (root, env) in hosts.items()}
    logs = {name: finish(p, hosts[name][0], 2 * RUN_TIMEOUT) for name, p in running.items()}
    assert {n: p.returncode for n, p in running.items()} == {"host-p": 0, "host-q": 0}, logs
    trials = study_trials(storage, "adaptive")
    complete = Counter(t.user_attrs["experiment"] for t in trials if t.state.name == "COMPLETE"
                       or t.user_attrs.get("status") == "diverged")
    assert all(n == 1 for n in complete.values()), complete  # nothing ran twice
    seeds = {}
    for name in complete:
        config, seed = name.split("--")[1], int(name.split("--")[2][1:])
        seeds.setdefault(config, set()).add(seed)
    assert seeds["lr=0.0000001"] == {0, 1, 2}  # decided worse at look 1: no fourth seed
    assert seeds["base"] == seeds["dropout=0.1"] == {0, 1, 2, 3}  # undecided at look 1: a 4th
    for log in logs.values():
        assert "look 1 of 2: 1 decided (worse 1), 1 open: dropout=0.1" in log
        assert "next: python -m src.study adaptive --pull" in log
