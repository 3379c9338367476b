"""The episode structure shared by every task source and every learner.

An episode (one task) is a dict of four tensors:

- `support_x`: `[S, *input_shape]` inputs the learner adapts on.
- `support_y`: `[S, *target_shape]` their targets (int32 class ids `0..N-1`
  for classification, floats for regression).
- `query_x`: `[Q, *input_shape]` inputs the adapted learner predicts.
- `query_y`: `[Q, *target_shape]` their targets; the meta-loss is taken here.

Sources batch episodes into meta-batches, which add a leading task axis:
`support_x` becomes `[T, S, *input_shape]` and so on. Extra keys (for example
the amplitude and phase of a sinusoid task) may travel along; learners read
only the four above.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

SUPPORT_X = "support_x"
SUPPORT_Y = "support_y"
QUERY_X = "query_x"
QUERY_Y = "query_y"
EPISODE_KEYS = (SUPPORT_X, SUPPORT_Y, QUERY_X, QUERY_Y)


def select_episode(data: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Returns the four episode tensors of `data`, converted to tensors.

    Raises:
        ValueError: if `data` is not a mapping holding the four episode keys.
    """
    if not isinstance(data, Mapping):
        raise ValueError(
            f"Expected an episode dict with keys {list(EPISODE_KEYS)}. "
            f"Received: data of type {type(data).__name__}"
        )
    missing = [key for key in EPISODE_KEYS if key not in data]
    if missing:
        raise ValueError(
            f"Expected an episode dict with keys {list(EPISODE_KEYS)}. "
            f"Missing: {missing}; received keys: {sorted(data)}"
        )
    return {key: tf.convert_to_tensor(data[key]) for key in EPISODE_KEYS}


def validate_meta_batch(episodes: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Checks the static shapes of a meta-batch and returns its four tensors.

    A meta-batch has a leading task axis `T >= 1`; support and query share
    the task count and the per-example input shape; each target tensor has
    one row per input.

    Raises:
        ValueError: naming the first inconsistency found.
    """
    episodes = select_episode(episodes)
    sx, sy, qx, qy = (episodes[key] for key in EPISODE_KEYS)
    for key in (SUPPORT_X, QUERY_X):
        if episodes[key].shape.rank is not None and episodes[key].shape.rank < 2:
            raise ValueError(
                f"Expected `{key}` of shape [tasks, examples, ...]. "
                f"Received: {key}.shape={episodes[key].shape}"
            )
    if sx.shape[0] == 0:
        raise ValueError(
            "Expected a meta-batch of at least one task. Received: an empty "
            f"meta-batch (support_x.shape={sx.shape})"
        )
    if not sx.shape[2:].is_compatible_with(qx.shape[2:]):
        raise ValueError(
            "Support and query inputs must have the same per-example shape. "
            f"Received: support_x.shape={sx.shape}, query_x.shape={qx.shape}"
        )
    if not sx.shape[:1].is_compatible_with(qx.shape[:1]):
        raise ValueError(
            "Support and query must hold the same number of tasks. "
            f"Received: support_x.shape={sx.shape}, query_x.shape={qx.shape}"
        )
    for x_key, y_key, x, y in ((SUPPORT_X, SUPPORT_Y, sx, sy), (QUERY_X, QUERY_Y, qx, qy)):
        if not x.shape[:2].is_compatible_with(y.shape[:2]):
            raise ValueError(
                f"Expected one target per input in `{y_key}`. Received: "
                f"{x_key}.shape={x.shape}, {y_key}.shape={y.shape}"
            )
    return episodes


def episode_spec(
    input_shape: tuple[int | None, ...],
    target_shape: tuple[int | None, ...],
    support_size: int | None,
    query_size: int | None,
    input_dtype: tf.DType = tf.float32,
    target_dtype: tf.DType = tf.int32,
) -> dict[str, tf.TensorSpec]:
    """The `tf.TensorSpec` of one episode, as sources declare it."""
    return {
        SUPPORT_X: tf.TensorSpec((support_size, *input_shape), input_dtype),
        SUPPORT_Y: tf.TensorSpec((support_size, *target_shape), target_dtype),
        QUERY_X: tf.TensorSpec((query_size, *input_shape), input_dtype),
        QUERY_Y: tf.TensorSpec((query_size, *target_shape), target_dtype),
    }
