"""Writing a study: its files atomically into reports/study/<name>/, and its MLflow run, which
links the experiments' MLflow runs it used."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.core import atomic, figures
from src.tracking import store, trackers

RUNS_TAG = "tunelab.runs"  # the study run's count of experiments; runs.csv lists them


def write_outputs(folder: Path, files: dict[str, object]) -> None:
    """Each file atomically (str -> text, DataFrame -> CSV, Figure -> PNG, bytes as they are);
    stale files removed."""
    for name, content in files.items():
        if isinstance(content, str):
            atomic.write_text(folder / name, content)
        elif isinstance(content, bytes):
            atomic.write_with(folder / name, lambda tmp, c=content: tmp.write_bytes(c))
        elif isinstance(content, pd.DataFrame):
            atomic.write_with(folder / name, lambda tmp, c=content: c.to_csv(tmp, index=False))
        else:  # a Figure
            atomic.write_with(folder / name, lambda tmp, c=content: c.savefig(
                tmp, dpi=figures.DPI, format="png"))
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in files:
            stale.unlink()


def in_store(client, experiment_id: str, run_ids: list[str]) -> set[str]:
    """The ``run_ids`` this store holds (a fresh clone's store holds none of another machine's)."""
    wanted, found = sorted({r for r in run_ids if r}), set()
    for i in range(0, len(wanted), 100):
        chunk = ", ".join(f"'{r}'" for r in wanted[i:i + 100])
        found |= {run.info.run_id for run in client.search_runs(
            [experiment_id], filter_string=f"attributes.run_id IN ({chunk})",
            max_results=1000)}
    return found


def log_to_mlflow(name: str, folder: Path, tags: dict, metrics: dict,
                  runs: pd.DataFrame | None = None) -> str:
    """The study of sweep or search ``name`` as its own MLflow run `study-<name>` in the project's
    store, with every file of ``folder`` as artifacts; returns the run id.

    ``runs`` (name, rev, run_id: sweep_study.run_links) are the experiments it used: the artifact
    `runs.csv` lists them with ``in_store`` (whether this store holds the run), the tag
    `tunelab.runs` counts them, `tunelab.runs_in_store` counts those here, and
    `tunelab.runs_view` (also in the run's description) is the UI link to the sweep's runs grouped
    by configuration (trackers.grouped_view)."""
    run_id = store.log_run(f"study-{name}", {"sweep": name, "tunelab.kind": "study"} | tags,
                           metrics=metrics, artifacts=(folder, "study"))
    if runs is None:
        return run_id
    client, experiment = store.client(), store.init_store()  # log_run created it
    found = in_store(client, experiment, runs["run_id"].tolist())
    table = runs.assign(in_store=runs["run_id"].isin(found))
    client.log_text(run_id, table.to_csv(index=False), "runs.csv")
    view = trackers.grouped_view(client, experiment, f"tags.sweep = '{name}'")
    for key, value in {RUNS_TAG: str(len(table)), f"{RUNS_TAG}_in_store": str(len(found)),
                       f"{RUNS_TAG}_view": view,
                       "mlflow.note.content": f"{len(table)} experiments, {len(found)} of them in "
                       f"this store (runs.csv lists them). The sweep's runs in this store grouped "
                       f"by configuration: [open]({view})"}.items():
        client.set_tag(run_id, key, value)
    return run_id
