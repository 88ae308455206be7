"""The task layer: what a trial trains a model to do (classify, generate, ...), each task one folder.

Everything outside this package asks a task (`task_of(spec.data)`, `task_named(name)`) instead of testing
its name, and asks `model_is_decoder` instead of looking at a model's architecture."""

from peftbench.models.loading import is_decoder as model_is_decoder
from peftbench.tasks.base import Task
from peftbench.tasks.registry import (load_plugins, plugin_modules, register, task_named, task_names,
                                      unregister)


def task_of(data_spec) -> Task:
    """The task of a DataSpec (or anything with a `.task` name)."""
    return task_named(data_spec.task)


def reading_view(records):
    """Records (a DataFrame) with each task's role columns filled from the fields that play them: a generate
    trial's exact match read as its accuracy, its time to first token as its latency. Stored records keep
    every figure under its own name only; decisions and tables read the roles."""
    if "task" not in records or records.empty:
        return records
    records = records.copy()
    for name in records["task"].dropna().unique():
        if name not in task_names():
            continue  # a task registered elsewhere: its records are read as stored
        rows = records["task"] == name
        for role, source in task_named(name).roles.items():
            for prefix in ("", "val_", "merged_", "ood_"):
                if f"{prefix}{source}" in records:
                    records.loc[rows, f"{prefix}{role}"] = records.loc[rows, f"{prefix}{source}"]
    return records


__all__ = ["Task", "load_plugins", "model_is_decoder", "plugin_modules", "reading_view", "register", "task_named",
           "task_names", "task_of", "unregister"]
