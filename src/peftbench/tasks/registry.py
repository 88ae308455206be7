"""The tasks peftbench knows, by name. Adding a task is one folder and one line here (or a `register`
call from outside the package: a task registered in the driver process is also loaded in each trial process,
see `plugin_modules`)."""

from __future__ import annotations

import importlib

from peftbench.errors import PeftbenchError
from peftbench.tasks.base import Task
from peftbench.tasks.classify.task import ClassifyTask
from peftbench.tasks.generate.task import GenerateTask

_TASKS: dict[str, Task] = {}
_BUILTIN = ("classify", "generate")


def register(task: Task) -> Task:
    """Make `task` available as `--task NAME` (a name already taken is refused)."""
    if task.name in _TASKS and type(_TASKS[task.name]) is not type(task):
        raise PeftbenchError(f"a task named {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


register(ClassifyTask())
register(GenerateTask())


def unregister(name: str) -> None:
    """Forget a task registered from outside the package (its module is then no longer loaded in trial
    processes). The built-in tasks stay."""
    if name not in _BUILTIN:
        _TASKS.pop(name, None)


def task_names() -> tuple[str, ...]:
    return tuple(_TASKS)


def task_named(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise PeftbenchError(f"task must be one of {', '.join(_TASKS)}, got {name!r}") from None


def plugin_modules() -> list[str]:
    """Modules that registered tasks from outside the package: a trial process imports them before it runs,
    so a task registered by the caller exists there too."""
    return sorted({type(t).__module__ for name, t in _TASKS.items() if name not in _BUILTIN})


def load_plugins(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)
