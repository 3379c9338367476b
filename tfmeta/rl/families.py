"""Task families by name: `get("navigation_2d")`, `get({"name": "ml1", "env_name": "push-v3"})`."""

from __future__ import annotations

import importlib

from tfmeta.rl.task_family import TaskFamily
from tfmeta.rl.task_observed import TaskObserved

# Each family's module and class, imported only when asked for (the MuJoCo ones load a simulator).
_CLASSES: dict[str, tuple[str, str]] = {
    "navigation_2d": ("navigation", "Navigation2D"),
    "halfcheetah_vel": ("mujoco_families", "HalfCheetahVelocity"),
    "halfcheetah_dir": ("mujoco_families", "HalfCheetahDirection"),
    "ant_dir": ("mujoco_families", "AntDirection"),
    "ant_vel": ("mujoco_families", "AntVelocity"),
    "ml1": ("meta_world", "MetaWorldML1"),
}


def names() -> list[str]:
    """The names `get` accepts."""
    return sorted(_CLASSES)


def family_class(name: str) -> type[TaskFamily]:
    """The class `get(name)` builds (its class attributes, such as `in_graph`, without a build).

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in _CLASSES:
        raise ValueError(f"Unknown task family '{name}'. Expected one of {names()}")
    module_name, class_name = _CLASSES[name]
    return getattr(importlib.import_module(f"tfmeta.rl.{module_name}"), class_name)


def get(family: TaskFamily | str | dict) -> TaskFamily:
    """A task family from itself, its name, or its `get_config()` dict.

    A `TaskObserved` family's dict (`{"name": "task_observed", "family":
    {...}}`) rebuilds the family it wraps too.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if isinstance(family, TaskFamily):
        return family
    if isinstance(family, str):
        config = {"name": family}
    elif isinstance(family, dict) and "name" in family:
        config = dict(family)
    else:
        raise ValueError(
            "Expected a TaskFamily, a family name or a family config dict with a 'name'. "
            f"Received: {family!r}"
        )
    name = config.pop("name")
    if name == TaskObserved.name and "family" in config:
        return TaskObserved(get(config["family"]))
    return family_class(name)(**config)
