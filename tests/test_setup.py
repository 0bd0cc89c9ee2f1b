"""setup.sh's data step on a machine with neither the data nor a route to the download hosts:
Debian's package is installed where apt-get can run, with a fake apt-get on PATH here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_dataset

FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$APT_LOG"
case "$*" in
  *"install"*"dataset-fashion-mnist"*) mkdir -p "$TUNELAB_DEBIAN_DIR"
                                      cp "$SYNTHETIC"/*.gz "$TUNELAB_DEBIAN_DIR"/ ;;
esac
exit ${APT_EXIT:-0}
"""


@pytest.fixture
def offline_machine(tmp_path):
    """A copy of the project (setup.sh, src/) in which no dataset is found or downloadable, a fake
    apt-get that "installs" a synthetic dataset into the Debian folder, and the environment."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "setup.sh", project / "setup.sh")
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    synthetic = tmp_path / "synthetic"
    checksums = write_dataset(synthetic, n_train=20, n_test=10)
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "apt-get").write_text(FAKE_APT)
    (fakebin / "apt-get").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "FASHION_MNIST_DIR"} | {
        "PATH": f"{fakebin}{os.pathsep}{os.environ['PATH']}", "PYTHON": sys.executable,
        "TUNELAB_DEBIAN_DIR": str(tmp_path / "debian"), "SYNTHETIC": str(synthetic),
        "TUNELAB_CHECKSUMS": str(checksums), "APT_LOG": str(tmp_path / "apt.log"),
        "FASHION_MNIST_MIRRORS": "http://127.0.0.1:9/"}  # the discard port: refused at once
    return project, env, tmp_path / "apt.log"


def run_data_step(project: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "setup.sh", "--data"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path needs root (or sudo -n)")
def test_offline_machine_installs_the_debian_dataset_and_goes_on(offline_machine, tmp_path):
    project, env, log = offline_machine
    done = run_data_step(project, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing Debian's dataset-fashion-mnist" in done.stdout  # said in one line
    assert "apt-get install -y -qq dataset-fashion-mnist" in log.read_text()
    assert f"Fashion-MNIST: {tmp_path / 'debian'}" in done.stdout


def test_when_apt_get_cannot_install_the_clear_message_stays(offline_machine):
    project, env, log = offline_machine
    done = run_data_step(project, env | {"APT_EXIT": "100", "SYNTHETIC": "/nonexistent"})
    assert done.returncode == 2
    assert "Fashion-MNIST not found and the download" in done.stderr
    assert "apt-get install dataset-fashion-mnist" in done.stderr  # how to get it
    assert "Traceback" not in done.stderr


def test_data_found_means_no_apt_get(offline_machine, tmp_path):
    project, env, log = offline_machine
    (tmp_path / "debian").mkdir()
    for gz in (tmp_path / "synthetic").glob("*.gz"):
        shutil.copy(gz, tmp_path / "debian")
    done = run_data_step(project, env)
    assert done.returncode == 0, done.stderr
    assert not log.exists()  # nothing installed
