"""Tasks, a registry: `task: <name>` is scpo/tasks/<name>.py, or a dotted path 'mypkg.tasks:MyTask' to user code.

A task says how a problem is asked, how a final answer is extracted from a completion, and when
two answers are equivalent (scpo/tasks/_base.py). Adding one is one new file here.
"""

from __future__ import annotations

import dataclasses

from scpo.core.errors import ScpoError
from scpo.core.registry import Registry
from scpo.tasks._base import Task
from scpo.tasks.gsm8k import GSM8K
from scpo.tasks.math import Math
from scpo.tasks.multiple_choice import MultipleChoice
from scpo.tasks.numeric import Numeric
from scpo.tasks.zebra import Zebra

TASKS: Registry = Registry("task", __name__, Task)


def get_task(name: str, **options) -> Task:
    """Builds a task by registry name or dotted path; `options` set its dataclass fields."""
    cls = TASKS.get(name)
    fields = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    unknown = set(options) - fields
    if unknown:
        raise ScpoError(f"task {name!r} has no option(s) {sorted(unknown)}; it has {sorted(fields)}")
    return cls(**{k: v for k, v in options.items() if v is not None})


__all__ = ["TASKS", "Task", "get_task", "GSM8K", "Math", "Numeric", "MultipleChoice", "Zebra"]
