"""`GradientLearner`: the inner loop of gradient descent shared by MAML and its family."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base


class GradientLearner(base.MetaLearner):
    """Base of the learners that adapt by gradient descent from meta-learned weights.

    Each task adapts the wrapped model's weights (all of them, or those of
    `adapted_indices`) with `inner_steps` SGD steps on the support loss
    (`adaptation.adapt`), then predicts the query with the adapted weights.
    Subclasses say how the outer loop uses that: MAML differentiates the
    query loss through the inner loop, Reptile moves towards the adapted
    weights.

    Args:
        model: a built Keras model; its variables are the meta-learned
            initialization and are only changed by the outer optimizer.
        inner_learning_rate: SGD step size of the inner loop in meta-training.
        inner_steps: inner steps in meta-training.
        eval_inner_learning_rate: step size in evaluation and prediction
            (default: `inner_learning_rate`).
        eval_inner_steps: inner steps in evaluation and prediction (default:
            `inner_steps`).
        query_statistics: see `MetaLearner` (default `"support"`).
        **kwargs: forwarded to `keras.Model`.
    """

    first_order = False  # whether the inner gradients are held constant (FOMAML)

    def __init__(
        self,
        model: keras.Model,
        inner_learning_rate: float = 0.01,
        inner_steps: int = 1,
        eval_inner_learning_rate: float | None = None,
        eval_inner_steps: int | None = None,
        query_statistics: str = query_statistics_lib.SUPPORT,
        **kwargs,
    ):
        super().__init__(model, query_statistics=query_statistics, **kwargs)
        base.set_inner_loop(
            self, inner_learning_rate, inner_steps, eval_inner_learning_rate, eval_inner_steps
        )

    @property
    def adapted_indices(self) -> list[int] | None:
        """Indices into `model.trainable_variables` of the weights that adapt (None: all)."""
        return None

    def num_adapted(self) -> int:
        """How many weight tensors the inner loop adapts."""
        indices = self.adapted_indices
        return len(self.model.trainable_variables) if indices is None else len(indices)

    def steps(self, training: bool) -> int:
        """Inner steps in meta-training (`training=True`) or in evaluation."""
        return self.inner_steps if training else self.eval_inner_steps

    def inner_learning_rates(self, training: bool) -> list[list[tf.Tensor | float]]:
        """Per step, per adapted weight: the inner learning rates (see `adaptation.adapt`)."""
        rate = self.inner_learning_rate if training else self.eval_inner_learning_rate
        return adaptation.constant_learning_rates(rate, self.steps(training), self.num_adapted())

    def adapt(
        self,
        support_x: tf.Tensor,
        support_y: tf.Tensor,
        state: adaptation.Weights | None = None,
        training: bool = False,
    ) -> tuple[adaptation.Weights, adaptation.Weights]:
        """Adapts the meta-learned weights to one task's support set.

        Args:
            support_x: `[S, *input_shape]` support inputs.
            support_y: `[S, *target_shape]` support targets.
            state: the wrapped model's non-trainable weights to start from
                (default: their current values).
            training: use the meta-training inner loop (steps, learning rates)
                instead of the evaluation one.

        Returns:
            `(adapted_trainable_weights, non_trainable_state)`, aligned with
            the wrapped model's variable lists; the model itself is unchanged.
        """
        params, initial_state = adaptation.initial_weights(self.model)
        with query_statistics_lib.support_passes(self.model, training, self.query_statistics):
            return adaptation.adapt(
                self.model,
                self.task_loss,
                params,
                initial_state if state is None else state,
                support_x,
                support_y,
                learning_rates=self.inner_learning_rates(training),
                first_order=self.first_order,
                adapted=self.adapted_indices,
                training=training,
            )

    def adapt_and_predict(self, task, state, training):
        support_x = task[episode_lib.SUPPORT_X]
        params, state = self.adapt(support_x, task[episode_lib.SUPPORT_Y], state, training)
        return query_statistics_lib.predict_queries(
            self.model,
            params,
            state,
            support_x,
            task[episode_lib.QUERY_X],
            mode=self.query_statistics,
            training=training,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            inner_learning_rate=self.inner_learning_rate,
            inner_steps=self.inner_steps,
            eval_inner_learning_rate=self.eval_inner_learning_rate,
            eval_inner_steps=self.eval_inner_steps,
        )
        return config
