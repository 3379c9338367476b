"""Model-Agnostic Meta-Learning (Finn et al. 2017), second and first order."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base


@keras.saving.register_keras_serializable(package="tfmeta")
class MAML(base.MetaLearner):
    """MAML: meta-learns an initialization that adapts by gradient descent.

    For each task the inner loop takes `inner_steps` SGD steps on the support
    loss from the meta-learned weights; the outer loop (the compiled
    optimizer) updates those initial weights with the gradient of the query
    loss after adaptation, differentiated through the inner loop (second
    order) or with the inner gradients held constant (`first_order=True`,
    FOMAML).

    Args:
        model: a built Keras model; its variables are the meta-learned
            initialization and are only changed by the outer optimizer.
        inner_learning_rate: SGD step size of the inner loop in meta-training.
        inner_steps: inner steps in meta-training.
        eval_inner_learning_rate: step size in evaluation and prediction
            (default: `inner_learning_rate`).
        eval_inner_steps: inner steps in evaluation and prediction (default:
            `inner_steps`).
        first_order: drop second-order terms (FOMAML).
        transductive: see `MetaLearner`.
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    import keras, tfmeta
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(40, activation="relu"),
                            keras.layers.Dense(40, activation="relu"), keras.layers.Dense(1)])
    maml = tfmeta.MAML(net, inner_learning_rate=0.01, inner_steps=1)
    maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    tasks = tfmeta.data.SinusoidTasks()
    maml.fit(tasks.episodes(support_shots=10, query_shots=10, meta_batch_size=25, seed=0),
             steps_per_epoch=100, epochs=1)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        inner_learning_rate: float = 0.01,
        inner_steps: int = 1,
        eval_inner_learning_rate: float | None = None,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        transductive: bool = True,
        **kwargs,
    ):
        super().__init__(model, transductive=transductive, **kwargs)
        self.inner_learning_rate = base.check_learning_rate(
            "inner_learning_rate", inner_learning_rate
        )
        self.inner_steps = base.check_steps("inner_steps", inner_steps)
        self.eval_inner_learning_rate = base.check_learning_rate(
            "eval_inner_learning_rate",
            inner_learning_rate if eval_inner_learning_rate is None else eval_inner_learning_rate,
        )
        self.eval_inner_steps = base.check_steps(
            "eval_inner_steps", inner_steps if eval_inner_steps is None else eval_inner_steps
        )
        self.first_order = bool(first_order)

    def inner_learning_rates(self, training: bool) -> list[list[float]]:
        """Per step, per trainable weight: the inner learning rates (see `adaptation.adapt`)."""
        rate, steps = (
            (self.inner_learning_rate, self.inner_steps)
            if training
            else (self.eval_inner_learning_rate, self.eval_inner_steps)
        )
        return adaptation.constant_learning_rates(
            rate, steps, len(self.model.trainable_variables)
        )

    def adapt(
        self,
        support_x: tf.Tensor,
        support_y: tf.Tensor,
        state: adaptation.Weights | None = None,
        training: bool = False,
    ) -> tuple[adaptation.Weights, adaptation.Weights]:
        """Adapts the meta-learned weights to one task's support set.

        Returns:
            `(adapted_trainable_weights, non_trainable_state)`, aligned with
            the wrapped model's variable lists; the model itself is unchanged.
        """
        params, initial_state = adaptation.initial_weights(self.model)
        return adaptation.adapt(
            self.model,
            self.task_loss,
            params,
            initial_state if state is None else state,
            support_x,
            support_y,
            learning_rates=self.inner_learning_rates(training),
            first_order=self.first_order,
            training=True,
        )

    def adapt_and_predict(self, task, state, training):
        params, state = self.adapt(
            task[episode_lib.SUPPORT_X], task[episode_lib.SUPPORT_Y], state, training
        )
        return adaptation.forward(
            self.model,
            params,
            state,
            task[episode_lib.QUERY_X],
            training=training or self.transductive,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            inner_learning_rate=self.inner_learning_rate,
            inner_steps=self.inner_steps,
            eval_inner_learning_rate=self.eval_inner_learning_rate,
            eval_inner_steps=self.eval_inner_steps,
            first_order=self.first_order,
        )
        return config
