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

Every learner step checks its meta-batch (`validate_meta_batch`, then
`check_meta_batch_values`): at least one task, support example and query per
task; inputs of the wrapped model's shape; finite floating-point inputs and
targets; and, where the targets are class ids, an integer dtype and ids
`0..N-1`. Checks of values run in the graph (`tf.debugging`) and raise
`tf.errors.InvalidArgumentError` naming the field before any weight changes;
the learners' `fit`, `evaluate` and `predict` re-raise it as an
`EpisodeError` (also a `ValueError`) whose message is that one line.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator, Mapping

import keras
import tensorflow as tf

SUPPORT_X = "support_x"
SUPPORT_Y = "support_y"
QUERY_X = "query_x"
QUERY_Y = "query_y"
EPISODE_KEYS = (SUPPORT_X, SUPPORT_Y, QUERY_X, QUERY_Y)
# Padded episodes (`tfmeta.data.variable_episodes`) say which examples are real.
SUPPORT_MASK = "support_mask"
QUERY_MASK = "query_mask"
MASK_KEYS = (SUPPORT_MASK, QUERY_MASK)


class EpisodeError(tf.errors.InvalidArgumentError, ValueError):
    """A meta-batch failed a check of its values; the message names the field and the fix."""

    def __init__(self, message: str):
        super().__init__(None, None, message)


# What the in-graph checks report: `tf.debugging.assert_*` and `Assert` ("assertion failed:
# [message] ..."), `assert_all_finite` ("message : Tensor had NaN values").
_ASSERTION = re.compile(r"assertion failed: \[(Expected[^\]]*)\]")
_NOT_FINITE = re.compile(r"(Expected finite values in `\w+`) : Tensor had (\w+) values")


def check_failure(error: tf.errors.InvalidArgumentError) -> str | None:
    """The one-line message of a failed episode check inside `error`, or None for other errors."""
    match = _ASSERTION.search(error.message)
    if match:
        return match[1]
    match = _NOT_FINITE.search(error.message)
    if match:
        return f"{match[1]}. Received: {match[2]} values"
    return None


@contextlib.contextmanager
def episode_errors() -> Iterator[None]:
    """Re-raises a failed in-graph episode check as one `EpisodeError` line (no graph trace)."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = None if isinstance(error, EpisodeError) else check_failure(error)
        if message is None:
            raise
        raise EpisodeError(message) from None


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


def model_input_shape(model: keras.Model) -> tuple[int | None, ...] | None:
    """The per-example input shape of a single-input model, or None if it declares none."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # a subclassed model without symbolic inputs
        return None
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape[1:])


def validate_meta_batch(
    episodes: Mapping[str, tf.Tensor],
    model: keras.Model | None = None,
    padded: bool = False,
) -> dict[str, tf.Tensor]:
    """Checks the static shapes of a meta-batch and returns its four tensors.

    A meta-batch has a leading task axis `T >= 1`; every task has at least
    one support example and one query; support and query share the task
    count and the per-example input shape, which must fit `model`'s input
    shape when given; each target tensor has one row per input. Sizes
    unknown until run time are checked by `check_meta_batch_values`.

    Padded episodes (with `support_mask` and `query_mask`, as
    `tfmeta.data.variable_episodes` makes them) pass only where the caller
    handles their masks (`padded=True`); the masks are then kept.

    Raises:
        ValueError: naming the first inconsistency found, or padded episodes
            where `padded` is False.
    """
    masks = [key for key in MASK_KEYS if isinstance(episodes, Mapping) and key in episodes]
    if masks and not padded:
        raise ValueError(
            f"Expected episodes without padding. Received: padded episodes ({masks}), whose "
            "masks this learner does not handle: use one whose `accepts_padded_episodes` is "
            "True (e.g. ProtoNet(ways=N), N >= the episodes' largest way count), or sample "
            "fixed-shape episodes (FewShotEpisodes.episodes)"
        )
    mask_tensors = {key: tf.convert_to_tensor(episodes[key]) for key in masks}
    episodes = select_episode(episodes)
    if masks:
        _check_masks(episodes, mask_tensors)
    sx, sy, qx, qy = (episodes[key] for key in EPISODE_KEYS)
    for key in (SUPPORT_X, QUERY_X):
        if episodes[key].shape.rank is not None and episodes[key].shape.rank < 2:
            raise ValueError(
                f"Expected `{key}` of shape [tasks, examples, ...]. "
                f"Received: {key}.shape={episodes[key].shape}"
            )
    if sx.shape[0] == 0 or qx.shape[0] == 0:
        raise ValueError(
            "Expected a meta-batch of at least one task. Received: an empty "
            f"meta-batch (support_x.shape={sx.shape}, query_x.shape={qx.shape})"
        )
    for key, what in ((SUPPORT_X, "support example"), (QUERY_X, "query")):
        if episodes[key].shape.rank is not None and episodes[key].shape[1] == 0:
            raise ValueError(
                f"Expected at least one {what} per task. Received: "
                f"{key}.shape={episodes[key].shape}"
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
    expected = model_input_shape(model) if model is not None else None
    if expected is not None:
        for key in (SUPPORT_X, QUERY_X):
            if not episodes[key].shape[2:].is_compatible_with(expected):
                raise ValueError(
                    f"Expected `{key}` examples of the model's input shape {expected} (model "
                    f"'{model.name}'). Received: {key}.shape={episodes[key].shape}"
                )
    return {**episodes, **mask_tensors}


def _check_masks(episodes: dict[str, tf.Tensor], masks: dict[str, tf.Tensor]) -> None:
    """Both masks, bool, one entry per support example / query."""
    if sorted(masks) != sorted(MASK_KEYS):
        raise ValueError(
            f"Expected both {list(MASK_KEYS)} in padded episodes. Received: {sorted(masks)}"
        )
    for mask_key, key in ((SUPPORT_MASK, SUPPORT_Y), (QUERY_MASK, QUERY_Y)):
        mask = masks[mask_key]
        if mask.dtype != tf.bool or not mask.shape.is_compatible_with(episodes[key].shape[:2]):
            raise ValueError(
                f"Expected `{mask_key}` as a bool tensor [tasks, examples] matching `{key}`. "
                f"Received: dtype={mask.dtype.name}, shape={mask.shape}; {key}.shape="
                f"{episodes[key].shape}"
            )


def class_count(targets: tf.Tensor, prediction_spec: tf.TensorSpec | None) -> int | None | bool:
    """How many classes the targets of a meta-batch index, if they are class ids.

    Targets are class ids when each one is a scalar and each prediction a
    vector of `N > 1` scores (sparse categorical labels): returns `N`, or
    None when `N` is known only per episode (the number of classes in the
    support set, as `ProtoNet(ways=None)` infers it). Returns False for
    other targets (regression).

    Args:
        targets: `support_y` or `query_y` of a meta-batch (`[T, S, ...]`).
        prediction_spec: the spec of one task's query predictions (`[Q, ...]`).
    """
    if prediction_spec is None or prediction_spec.shape.rank is None or targets.shape.rank is None:
        return False
    if targets.shape.rank != prediction_spec.shape.rank or targets.shape.rank < 2:
        return False
    classes = prediction_spec.shape[-1]
    return False if classes == 1 else classes


def check_meta_batch_values(
    episodes: dict[str, tf.Tensor], prediction_spec: tf.TensorSpec | None = None
) -> dict[str, tf.Tensor]:
    """Adds the run-time checks of a meta-batch; returns episodes that depend on them.

    Checked in the graph: at least one task, support example and query;
    floating-point inputs and targets hold no NaN or Inf; class ids (see
    `class_count`) lie in `0..N-1`, and where `N` comes from the episode,
    every class `0..N-1` has a support example. Checked now: class ids have
    an integer dtype (float labels would be truncated silently).

    Args:
        episodes: a meta-batch that passed `validate_meta_batch`.
        prediction_spec: the spec of one task's query predictions (the
            learner's), to tell class ids from regression targets.

    Raises:
        ValueError: for float class ids.
        tf.errors.InvalidArgumentError: when the checks run, naming the
            field that failed.
    """
    sx, sy, qx, qy = (episodes[key] for key in EPISODE_KEYS)
    checks = [
        tf.debugging.assert_positive(
            tf.shape(sx)[:2], message="Expected at least one task and one support example"
        ),
        tf.debugging.assert_positive(
            tf.shape(qx)[:2], message="Expected at least one task and one query"
        ),
    ]
    classes = class_count(qy, prediction_spec)
    for key in EPISODE_KEYS:
        value = episodes[key]
        if value.dtype.is_floating and not (key in (SUPPORT_Y, QUERY_Y) and classes is not False):
            checks.append(
                tf.debugging.assert_all_finite(value, f"Expected finite values in `{key}`")
            )
    if classes is not False:
        checks.extend(_class_id_checks(sy, qy, classes))
    with tf.control_dependencies(checks):
        return {key: tf.identity(value) for key, value in episodes.items()}


def _class_id_checks(support_y: tf.Tensor, query_y: tf.Tensor, classes: int | None) -> list:
    for key, value in ((SUPPORT_Y, support_y), (QUERY_Y, query_y)):
        if not value.dtype.is_integer:
            raise ValueError(
                f"Expected integer class ids in `{key}` (the model predicts "
                f"{classes or 'one score per'} classes). Received: {key}.dtype={value.dtype.name}; "
                f"cast them, e.g. tf.cast({key}, tf.int32)"
            )
    tasks = tf.shape(support_y)[0]
    support = tf.reshape(tf.cast(support_y, tf.int64), [tasks, -1])
    query = tf.reshape(tf.cast(query_y, tf.int64), [tasks, -1])
    checks = [
        tf.debugging.assert_non_negative(value, message=f"Expected class ids >= 0 in `{key}`")
        for key, value in ((SUPPORT_Y, support), (QUERY_Y, query))
    ]
    if classes is not None:
        for key, value in ((SUPPORT_Y, support), (QUERY_Y, query)):
            checks.append(
                tf.debugging.assert_less(
                    value,
                    tf.constant(classes, tf.int64),
                    message=f"Expected class ids in 0..{classes - 1} in `{key}` (the model "
                    f"predicts {classes} classes: episodes of more ways need a model with as "
                    "many outputs, or a learner for any way count such as ProtoNet)",
                )
            )
        return checks
    # N from the episode: its support set must hold every class 0..N-1.
    ways = tf.reduce_max(support, axis=1) + 1  # [T]
    depth = tf.maximum(tf.reduce_max(ways), 1)
    present = tf.reduce_max(tf.one_hot(support, tf.cast(depth, tf.int32)), axis=1) > 0
    needed = tf.range(depth)[tf.newaxis, :] < ways[:, tf.newaxis]
    checks.append(
        tf.debugging.Assert(
            tf.reduce_all(present | ~needed),
            [f"Expected class ids 0..N-1 in `{SUPPORT_Y}`, each with a support example (N: the "
             "classes of the episode). Received: a task whose support set misses a class id "
             "below its largest"],
        )
    )
    checks.append(
        tf.debugging.Assert(
            tf.reduce_all(query < ways[:, tf.newaxis]),
            [f"Expected class ids in `{QUERY_Y}` below N, the number of classes in the task's "
             "support set. Received: a query of a class the support set lacks"],
        )
    )
    return checks


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
