"""`TaskBatchedModel`: one policy network evaluated with a different weight list per task."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation


class TaskBatchedModel:
    """Runs a Keras model once for a whole batch of tasks, each with its own weights.

    `stateless_call(params, state, inputs)` takes every weight with a leading
    task axis (`[tasks, *weight.shape]`) and inputs `[tasks, ..., features]`,
    and returns `[tasks, ..., outputs]`: `tf.vectorized_map` turns the
    model's per-task forward pass into batched matrix products. It has the
    `stateless_call` of a Keras model, so `tfmeta.adaptation` adapts all
    tasks in one call: with a loss that *sums* per-task losses, the gradient
    w.r.t. the stacked weights is every task's own gradient, in one backward
    pass. Sampling many environments per step with per-task adapted policies
    uses the same call.

    The model must hold no non-trainable state (BatchNorm statistics, Dropout
    seeds), which one shared state list could not give each task.

    Args:
        model: a built Keras model taking `[batch, features]`.

    Example:

    ```python
    import tensorflow as tf
    from tfmeta import adaptation, rl
    from tfmeta.rl.task_batched import TaskBatchedModel

    batched = TaskBatchedModel(rl.gaussian_mlp_policy(2, 2))
    params = batched.tile(adaptation.initial_weights(batched.model)[0], tasks=3)
    outputs, _ = batched.stateless_call(params, [], tf.zeros([3, 20, 100, 2]))  # [3, 20, 100, 4]
    ```
    """

    def __init__(self, model: keras.Model):
        adaptation.check_built(model)
        if model.non_trainable_variables:
            names = [v.path for v in model.non_trainable_variables]
            raise ValueError(
                "Expected a policy without non-trainable state (BatchNorm statistics, Dropout "
                f"seeds), which tasks cannot share. Received: model '{model.name}' with "
                f"non-trainable variables {names[:3]}"
            )
        self.model = model

    @staticmethod
    def tile(params: adaptation.Weights, tasks: int | tf.Tensor) -> adaptation.Weights:
        """The same weights for every task: `[tasks, *weight.shape]` each."""
        return [tf.repeat(p[None], tasks, axis=0) for p in params]

    def stateless_call(
        self,
        params: adaptation.Weights,
        state: adaptation.Weights,
        inputs: tf.Tensor,
        training: bool = False,
    ) -> tuple[tf.Tensor, adaptation.Weights]:
        """Each task's outputs `[tasks, ..., outputs]` from its weights; `state` unchanged."""

        def one_task(elems):
            task_params, task_inputs = elems
            leading = tf.shape(task_inputs)[:-1]
            flat = tf.reshape(task_inputs, [-1, task_inputs.shape[-1]])
            outputs, _ = self.model.stateless_call(task_params, state, flat, training=training)
            return tf.reshape(outputs, tf.concat([leading, tf.shape(outputs)[-1:]], axis=0))

        return tf.vectorized_map(one_task, (list(params), inputs)), state
