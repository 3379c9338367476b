"""Keras layers of tfmeta's own."""

from tfmeta.layers.group_normalization import GroupNormalization
from tfmeta.layers.task_normalization import TaskNormalization

__all__ = ["GroupNormalization", "TaskNormalization"]
