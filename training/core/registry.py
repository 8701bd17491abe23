"""Tasks by name, so the loop, the checkpoints and (later) the CLI find a task the same way."""
from __future__ import annotations

TASKS: dict[str, type] = {}


def register(name: str):
    """Register a task class under ``name`` (its checkpoints carry that name)."""
    def add(cls: type) -> type:
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"task {name!r} is registered twice ({TASKS[name].__name__}, {cls.__name__})")
        cls.name = name
        TASKS[name] = cls
        return cls
    return add


def get(name: str) -> type:
    """Return the task class registered as ``name``; a ValueError lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS)) or 'none'})") from None
