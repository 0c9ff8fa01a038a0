"""Task registry: built-in tasks by name, or any Task subclass by dotted path ('mypkg.tasks:MyTask')."""

from __future__ import annotations

import dataclasses
import importlib

from scpo.errors import ScpoError
from scpo.tasks.base import Task
from scpo.tasks.gsm8k import GSM8K
from scpo.tasks.math import Math
from scpo.tasks.multiple_choice import MultipleChoice
from scpo.tasks.numeric import Numeric

TASKS: dict[str, type[Task]] = {
    "gsm8k": GSM8K,
    "math": Math,
    "numeric": Numeric,
    "multiple_choice": MultipleChoice,
}


def get_task(name: str, **options) -> Task:
    """Builds a task by registry name or dotted path; `options` set its dataclass fields."""
    if name in TASKS:
        cls = TASKS[name]
    elif "." in name or ":" in name:
        module_name, _, attr = name.replace(":", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ScpoError(f"task {name!r}: cannot import it ({e})") from None
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ScpoError(f"task {name!r} is not a subclass of scpo.tasks.Task")
    else:
        raise ScpoError(f"unknown task {name!r}; built in: {', '.join(TASKS)}, or a dotted path to a Task subclass")
    fields = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    unknown = set(options) - fields
    if unknown:
        raise ScpoError(f"task {name!r} has no option(s) {sorted(unknown)}; it has {sorted(fields)}")
    return cls(**{k: v for k, v in options.items() if v is not None})


__all__ = ["TASKS", "Task", "get_task", "GSM8K", "Math", "Numeric", "MultipleChoice"]
