"""Which statistics BatchNorm normalises query inputs with, and the query pass of the learners.

A learner's `query_statistics` chooses one of three modes:

- `"support"`: every BatchNorm layer normalises the queries with the mean and
  variance of the task's **support set** at that layer, computed with the
  weights the queries are predicted with (MetaBN in Bronskill et al. 2020,
  "TaskNorm"). A query's prediction depends only on the support set, the
  meta-learned weights and that query: it is the same sent alone or in any
  batch, which is what a server or a phone needs. Meta-training runs the
  same computation, so what is served is what was trained.
- `"support_instance"`: as `"support"`, but every example (support and
  query) is normalised with the pooled statistics of the support set and
  itself: the support moments and the example's own spatial (instance)
  moments blended with weights `n / (n + 1)` and `1 / (n + 1)` for `n`
  support examples (TaskNorm-I of Bronskill et al. 2020, with its blend fixed
  to this pooling instead of learned). Still independent of the other
  queries; it lets a query's own contrast count when the support set is
  tiny (1-shot). Layers without spatial axes use the support moments alone.
- `"transductive"`: the statistics of the query batch itself (the convention
  of Finn et al. 2017 and learn2learn, for comparing with papers). A query's
  prediction depends on the other queries of its batch.
- `"moving"`: BatchNorm's moving statistics (Keras's inference mode). Query
  batches are still normalised with their own statistics in meta-training,
  so training and prediction differ.

The modes concern BatchNorm statistics only: Dropout and other training-only
behaviour are on in meta-training and off whenever a learner evaluates or
predicts (support passes of an evaluation inner loop included). Models
without BatchNorm (or with frozen BatchNorm layers) predict the same in every
mode.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import keras
import tensorflow as tf

from tfmeta import adaptation, fused_batch_norm
from tfmeta.argument_validation import check_choice
from tfmeta.layers import task_normalization

SUPPORT = "support"
SUPPORT_INSTANCE = "support_instance"
TRANSDUCTIVE = "transductive"
MOVING = "moving"
MODES = (SUPPORT, SUPPORT_INSTANCE, TRANSDUCTIVE, MOVING)
_SUPPORT_MODES = (SUPPORT, SUPPORT_INSTANCE)


def check_mode(value: Any) -> str:
    """Returns `value` unless it is not one of `MODES`."""
    return check_choice("query_statistics", value, MODES)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNorm layers that normalise with batch statistics in training."""
    return [
        layer for layer in model._flatten_layers()  # noqa: SLF001 - nested layers too
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def depends_on_query_batch(model: keras.Model, mode: str) -> bool:
    """Whether a prediction in `mode` depends on the other queries of its batch."""
    return mode == TRANSDUCTIVE and bool(batch_norm_layers(model))


@contextlib.contextmanager
def batch_statistics(
    model: keras.Model,
    rows: int | tf.Tensor | None = None,
    replace_moving: bool = False,
    with_instance: bool = False,
) -> Iterator[None]:
    """While active, `model`'s BatchNorm layers normalise with batch statistics in every call.

    Whatever the `training` flag says (so Dropout can be off while BatchNorm
    still uses batch statistics), each trainable BatchNorm layer normalises
    its whole input with the mean and variance of the input's first `rows`
    rows (all rows when None), and updates its moving statistics as in
    training. The switch is per layer instance and undone on exit; use it
    around the tracing of a forward pass.

    The statistics are computed here as `mean(x)` and `mean((x - mean(x))^2)`.
    Keras's own BatchNorm takes them from `tf.nn.moments`, which stops the
    gradient through the mean inside the variance: first derivatives are
    unaffected, but second derivatives (second-order MAML's meta-gradient
    through an inner step) come out wrong, by 3% in a float64 check. Where
    TF's fused kernel is active (only where it is exact, see
    `tfmeta.fused_batch_norm`), calls over whole batches keep it.

    Args:
        model: the Keras model whose layers switch.
        rows: how many leading rows (the support set, when support and
            queries run in one batch) the statistics come from.
        replace_moving: set the moving statistics to these statistics instead
            of moving them by `momentum` (to bake a support set's statistics
            into an exported state).
        with_instance: pool each example's own spatial moments into its
            statistics (`"support_instance"` mode).

    Raises:
        ValueError: with `rows` or `replace_moving` set, for a BatchNorm layer
            whose computation this cannot reproduce (a subclass with its own
            `call`, renorm).
    """
    layers = batch_norm_layers(model)
    if rows is not None or replace_moving or with_instance:
        for layer in layers:
            if not _reproducible(layer):
                raise ValueError(
                    "Expected Keras's own BatchNormalization computation to normalise queries "
                    f"with support statistics. Received: layer '{layer.name}' "
                    f"({type(layer).__name__}{', renorm=True' if layer.renorm else ''}); use "
                    f"query_statistics='{TRANSDUCTIVE}' or '{MOVING}' for this model"
                )
    previous = {id(layer): vars(layer).get("call") for layer in layers}
    for layer in layers:
        # An instance attribute shadows the class's `call`; Keras calls `self.call`.
        object.__setattr__(
            layer, "call", _batch_statistics_call(layer, rows, replace_moving, with_instance)
        )
    try:
        yield
    finally:
        for layer in layers:
            if previous[id(layer)] is None:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", previous[id(layer)])


def _reproducible(layer: keras.layers.BatchNormalization) -> bool:
    """Whether `_normalise` computes what the layer's own training-mode `call` does."""
    own_call = type(layer).call not in (keras.layers.BatchNormalization.call,
                                        task_normalization.TaskNormalization.call)
    return not (own_call or layer.renorm)


def _batch_statistics_call(layer: keras.layers.BatchNormalization, rows, replace_moving: bool,
                           with_instance: bool):
    patched_call = vars(layer).get("call")  # the fused kernel's, while that is active
    layer_call = patched_call or layer.call

    def call(inputs, training=None, mask=None):
        del training  # batch statistics whatever the flag; the flag still drives Dropout
        whole_batch = rows is None and not replace_moving and not with_instance
        if whole_batch and (patched_call or mask is not None or not _reproducible(layer)):
            return layer_call(inputs, training=True, mask=mask)
        if mask is not None:
            raise ValueError(
                f"Expected no mask in BatchNorm layer '{layer.name}' when normalising with "
                "support statistics. Received a mask"
            )
        return _normalise(layer, inputs, rows, replace_moving, with_instance)

    return call


def _normalise(layer, inputs, rows, replace_moving: bool, with_instance: bool) -> tf.Tensor:
    """Keras's BatchNorm training computation, with statistics of the first `rows` rows
    (pooled with each example's own spatial moments when `with_instance`, or with the
    layer's learned blend for a `TaskNormalization` layer)."""
    compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
    inputs = tf.cast(inputs, compute_dtype)
    rank = inputs.shape.rank
    axis = layer.axis % rank
    sample = inputs if rows is None else inputs[:rows]
    mean, variance = task_normalization.batch_moments(sample, axis)
    count = tf.cast(tf.shape(sample)[0], compute_dtype)
    momentum = 0.0 if replace_moving else layer.momentum
    if isinstance(layer, task_normalization.TaskNormalization):
        layer.move_statistics(mean, variance, count, momentum)
        return tf.cast(layer.normalise(inputs, mean, variance, count), layer.compute_dtype)
    moving_mean = tf.cast(layer.moving_mean, compute_dtype)
    moving_variance = tf.cast(layer.moving_variance, compute_dtype)
    layer.moving_mean.assign(moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(moving_variance * momentum + variance * (1.0 - momentum))
    offset = tf.cast(layer.beta, compute_dtype) if layer.center else None
    scale = tf.cast(layer.gamma, compute_dtype) if layer.scale else None
    if with_instance and rank > 2:
        outputs = task_normalization.normalise_pooled(
            inputs, mean, variance, count / (count + 1.0), axis, scale, offset, layer.epsilon)
    else:
        outputs = keras.ops.batch_normalization(
            inputs, mean, variance, axis=axis, offset=offset, scale=scale,
            epsilon=layer.epsilon,
        )
    return tf.cast(outputs, layer.compute_dtype)


def predict_queries(
    model: keras.Model,
    params: adaptation.Weights,
    state: adaptation.Weights,
    support_x: tf.Tensor,
    query_x: tf.Tensor,
    *,
    mode: str,
    training: bool,
    fused_kernel: bool = False,
) -> tuple[tf.Tensor, adaptation.Weights]:
    """The query predictions of (adapted) weights, normalised as `mode` says.

    Args:
        model: the wrapped Keras model.
        params, state: its trainable and non-trainable weights (adapted).
        support_x: the task's support inputs (read in `"support"` mode only).
        query_x: the inputs to predict.
        mode: one of `MODES`.
        training: meta-training (Dropout on) or evaluation (Dropout off).
        fused_kernel: in the modes that normalise the queries with their own
            batch statistics in meta-training (`"transductive"`, `"moving"`),
            BatchNorm by TF's fused kernel wherever it covers the layer,
            whatever the step's own computation
            (`fused_batch_norm.fused_query_pass`; exact to first order only):
            for a pass differentiated at most once, such as the query pass of
            meta-training, whose meta-gradient's second order (if any) runs
            through the support passes only. The support-statistics modes
            keep their computation (a fused normalisation with the support's
            moments measured no faster).

    Returns:
        `(predictions, new_state)`.
    """
    if mode in _SUPPORT_MODES:
        _, predictions, state = episode_forward(
            model, params, state, support_x, query_x, mode=mode, training=training
        )
        return predictions, state
    if mode == TRANSDUCTIVE and not training:
        with batch_statistics(model):
            return adaptation.forward(model, params, state, query_x, training=False)
    kernel = fused_batch_norm.fused_query_pass(model) if fused_kernel else contextlib.nullcontext()
    with kernel:
        return adaptation.forward(model, params, state, query_x, training=training)


def episode_forward(
    model: keras.Model,
    params: adaptation.Weights,
    state: adaptation.Weights,
    support_x: tf.Tensor,
    query_x: tf.Tensor,
    *,
    mode: str,
    training: bool,
) -> tuple[tf.Tensor, tf.Tensor, adaptation.Weights]:
    """Support and query outputs of one forward pass over both (metric learners' embedding).

    In meta-training, and in evaluation with `"transductive"`, BatchNorm
    normalises with the statistics of support and queries together (the
    Prototypical Networks authors' convention); `"support"` uses the support
    rows' statistics for all; `"moving"` evaluates with moving statistics.

    Returns:
        `(support_outputs, query_outputs, new_state)`.
    """
    num_support = tf.shape(support_x)[0]
    inputs = tf.concat([support_x, query_x], axis=0)
    if mode in _SUPPORT_MODES:
        context = batch_statistics(model, rows=num_support,
                                   with_instance=mode == SUPPORT_INSTANCE)
    elif mode == TRANSDUCTIVE and not training:
        context = batch_statistics(model)
    else:
        context = contextlib.nullcontext()
    with context:
        outputs, state = adaptation.forward(model, params, state, inputs, training=training)
    return outputs[:num_support], outputs[num_support:], state


def support_passes(
    model: keras.Model, training: bool, mode: str = SUPPORT
) -> contextlib.AbstractContextManager:
    """The context of an inner loop's passes over the support set, run with `training=training`.

    Meta-training: Keras's training mode. Evaluation: BatchNorm still with the
    support batch's statistics (as the task was adapted in meta-training),
    Dropout and other training-only behaviour off. With `"support_instance"`,
    each support example pools its own moments in, in both.
    """
    if mode == SUPPORT_INSTANCE:
        return batch_statistics(model, with_instance=True)
    return contextlib.nullcontext() if training else batch_statistics(model)


def support_statistics_state(
    model: keras.Model, params: adaptation.Weights, state: adaptation.Weights, support_x: tf.Tensor
) -> adaptation.Weights:
    """`state` whose BatchNorm moving statistics are the support set's statistics under `params`.

    Predicting in inference mode with the returned state normalises queries
    exactly as `"support"` mode does, without the support set at hand: how
    an adapted task is exported.
    """
    with batch_statistics(model, rows=None, replace_moving=True):
        _, state = adaptation.forward(model, params, state, support_x, training=False)
    return state
