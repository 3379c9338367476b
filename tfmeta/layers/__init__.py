"""Keras layers of tfmeta's own."""

from tfmeta.layers.task_normalization import TaskNormalization

__all__ = ["TaskNormalization"]
