"""In-graph checks of serving requests, with messages a client can act on.

SavedModel signatures declare inputs with the right rank but unknown
dimensions, so that a wrong support size or example shape reaches these
`tf.debugging` asserts (and fails with a clear message) instead of failing
deep in the model, or not at all. After the checks, inputs get their static
shapes back with `tf.reshape` of a copy that grappler cannot tie back to the
input (see `_unlinked`; with a plain `tf.ensure_shape` or reshape, grappler
reads the asserted shape off it and folds the asserts away).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def _unlinked(x: tf.Tensor) -> tf.Tensor:
    """A copy of `x` whose shape grappler cannot tie back to `x`.

    Grappler's shape inference unifies the dimensions of a tensor with those
    of the ops that consume it (a reshape to a static shape, a loss whose
    labels must match the logits) and constant-folds `tf.shape(x)` with the
    result, which deletes the very asserts that check it. A gather over
    `range(len(x))` has a fresh, unknown first dimension, so the checks of
    `x` stay in the graph.
    """
    return tf.gather(x, tf.range(tf.shape(x)[0]))


def _shape_checks(x: tf.Tensor, name: str, count: int | None, shape: Sequence[int] | None,
                  what: str) -> list:
    checks = [] if shape is None else [
        tf.debugging.assert_equal(
            tf.shape(x)[1:], tf.constant(list(shape), tf.int32),
            message=f"Expected `{name}` examples of shape {tuple(shape)}. Received another shape",
        )
    ]
    if count is None:
        checks.append(tf.debugging.assert_positive(
            tf.shape(x)[0], message=f"Expected at least one example in `{name}`. Received none"
        ))
    else:
        checks.append(tf.debugging.assert_equal(
            tf.shape(x)[0], count,
            message=f"Expected `{name}` with {count} examples ({what}). "
                    "Received another number (dimension 0)",
        ))
    return checks


def checked_inputs(x: tf.Tensor, name: str, count: int | None, shape: Sequence[int],
                   what: str = "") -> tf.Tensor:
    """`x` after checking its shape and that it holds no NaN or Inf.

    Args:
        x: a batch of inputs.
        name: the request field, for the messages.
        count: the required number of examples, or None for any number >= 1.
        shape: the per-example shape.
        what: what fixes `count`, e.g. `"5-way 1-shot support set"`.
    """
    checks = _shape_checks(x, name, count, shape, what)
    with tf.control_dependencies(checks):
        checks.append(tf.debugging.assert_all_finite(
            x, message=f"Expected finite values in `{name}`. Received NaN or Inf"
        ))
    with tf.control_dependencies(checks):
        return tf.reshape(_unlinked(x), [-1 if count is None else count, *shape])


def checked_count(x: tf.Tensor, name: str, count: int | None, what: str = "") -> tf.Tensor:
    """`x` after checking only its number of examples (images of any size, encoded bytes).

    Args:
        count: the required number of examples, or None for any number >= 1.
    """
    with tf.control_dependencies(_shape_checks(x, name, count, None, what)):
        return _unlinked(x)


def checked_labels(y: tf.Tensor, name: str, count: int, ways: int, what: str = "",
                   every_class: bool = False) -> tf.Tensor:
    """Integer class ids `y` after checking their number and range `0..ways-1`.

    Args:
        every_class: also require each class at least once (prototypes need it).
    """
    checks = _shape_checks(y, name, count, (), what)
    with tf.control_dependencies(checks):
        message = f"Expected `{name}` class ids in 0..{ways - 1}. Received a value out of range"
        checks.append(tf.debugging.assert_non_negative(y, message=message))
        checks.append(tf.debugging.assert_less(y, tf.constant(ways, y.dtype), message=message))
    if every_class:
        with tf.control_dependencies(checks):
            present = tf.reduce_max(tf.one_hot(y, ways, dtype=tf.int32), axis=0)
            checks.append(tf.debugging.assert_equal(
                present, tf.ones([ways], tf.int32),
                message=f"Expected every class 0..{ways - 1} in `{name}`. Received a class "
                        "with no example",
            ))
    with tf.control_dependencies(checks):
        return _unlinked(y)
