"""Writing a study: its files atomically into reports/study/<name>/, and its MLflow run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.core import atomic, figures
from src.tracking import store


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


def log_to_mlflow(name: str, folder: Path, tags: dict, metrics: dict) -> str:
    """The study of sweep or search ``name`` as its own MLflow run `study-<name>` in the project's
    store, with every file of ``folder`` as artifacts; returns the run id."""
    return store.log_run(f"study-{name}", {"sweep": name, "tunelab.kind": "study"} | tags,
                         metrics=metrics, artifacts=(folder, "study"))
