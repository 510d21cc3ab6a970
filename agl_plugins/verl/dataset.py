"""Tasks for the verl trainer: any JSON-like values, batched as a ``task`` column.

verl's own datasets tokenise a ``prompt`` column; with agl the agent builds its prompts, so a
task is whatever the agent takes as ``rollout.input`` (a dict such as ``{"question": ..., "answer":
...}``), passed through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset


class TaskDataset(Dataset[dict[str, Any]]):
    """A list of tasks as a torch dataset (items ``{"task": task}``)."""

    def __init__(self, tasks: Sequence[Any]) -> None:
        self.tasks = list(tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"task": self.tasks[index]}

    @classmethod
    def from_file(cls, path: str | Path) -> TaskDataset:
        """Tasks from a ``.jsonl`` (one per line), ``.json`` (a list) or ``.parquet`` file (one per row)."""
        path = Path(path)
        if path.suffix == ".jsonl":
            lines = path.read_text().splitlines()
            return cls([json.loads(line) for line in lines if line.strip()])
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, list):
                raise ValueError(f"{path} must hold a JSON list of tasks")
            return cls(data)
        if path.suffix == ".parquet":
            import pandas as pd  # comes with verl

            return cls(pd.read_parquet(path).to_dict(orient="records"))
        raise ValueError(f"{path}: tasks are read from .jsonl, .json or .parquet files")


def collate_tasks(items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Batch items into ``{"task": array of tasks}`` (object dtype: tasks stay as they are)."""
    tasks = np.empty(len(items), dtype=object)
    tasks[:] = [item["task"] for item in items]
    return {"task": tasks}


__all__ = ["TaskDataset", "collate_tasks"]
