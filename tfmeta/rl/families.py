"""Task families by name: `get("navigation_2d")`, `get({"name": "ml1", "env_name": "push-v3"})`."""

from __future__ import annotations

import importlib
from typing import Callable

from tfmeta.rl.navigation import Navigation2D
from tfmeta.rl.task_family import TaskFamily
from tfmeta.rl.task_observed import TaskObserved


def _lazy(module_name: str, class_name: str) -> Callable[..., TaskFamily]:
    """A builder that imports the family's module (and its simulator) only when called."""

    def build(**kwargs) -> TaskFamily:
        module = importlib.import_module(f"tfmeta.rl.{module_name}")
        return getattr(module, class_name)(**kwargs)

    return build


_BUILDERS: dict[str, Callable[..., TaskFamily]] = {
    "navigation_2d": Navigation2D,
    "halfcheetah_vel": _lazy("mujoco_families", "HalfCheetahVelocity"),
    "halfcheetah_dir": _lazy("mujoco_families", "HalfCheetahDirection"),
    "ant_dir": _lazy("mujoco_families", "AntDirection"),
    "ant_vel": _lazy("mujoco_families", "AntVelocity"),
    "ml1": _lazy("meta_world", "MetaWorldML1"),
}


def names() -> list[str]:
    """The names `get` accepts."""
    return sorted(_BUILDERS)


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
    if name not in _BUILDERS:
        raise ValueError(f"Unknown task family '{name}'. Expected one of {names()}")
    return _BUILDERS[name](**config)
