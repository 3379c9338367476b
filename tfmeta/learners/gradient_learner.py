"""`GradientLearner`: the inner loop of gradient descent shared by MAML and its family."""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base, padded_episodes


class GradientLearner(base.MetaLearner):
    """Base of the learners that adapt by gradient descent from meta-learned weights.

    Each task adapts the wrapped model's weights (all of them, or those of
    `adapted_indices`) with `inner_steps` SGD steps on the support loss
    (`adaptation.adapt`), then predicts the query with the adapted weights.
    Subclasses say how the outer loop uses that: MAML differentiates the
    query loss through the inner loop, Reptile moves towards the adapted
    weights.

    Padded episodes (`tfmeta.data.variable_episodes`: varying ways and
    shots) are accepted by a classifier with N outputs, N at least their
    largest way count. Each task adapts and predicts on its real examples
    only (so BatchNorm's batch statistics, in every `query_statistics`
    mode, are those of the unpadded episode); the logits of classes without
    a support example are -1e30 in the inner loop and for the queries, so
    they never win and add nothing to the loss or its gradients; padded
    queries get zero predictions and count in no loss or metric. The
    results equal those of the unpadded episode with the head restricted to
    its classes, in one trace for every episode shape.

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

    accepts_padded_episodes = True

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

    def inner_update_rule(self) -> adaptation.SGD | adaptation.Adam:
        """How an inner step turns gradients into an update (`adaptation.SGD()`; Reptile
        may use `adaptation.Adam`)."""
        return adaptation.SGD()

    def task_initial_weights(self) -> adaptation.Weights:
        """The trainable weights every task's inner loop starts from (the meta-learned ones).

        Read under a tape, they carry the meta-gradient back to the model's
        variables. MAML's `head_initialization="zeros"` overrides the head's.
        """
        params, _ = adaptation.initial_weights(self.model)
        return params

    def checked_episodes(self, episodes):
        """As `MetaLearner.checked_episodes`; padded episodes also need as many class scores
        as their largest way count (`padded_episodes.check_way_count`)."""
        if isinstance(episodes, Mapping) and padded_episodes.is_padded(episodes):
            episodes = episode_lib.validate_meta_batch(episodes, self.model, padded=True)
            episodes = padded_episodes.check_way_count(
                episodes, self._prediction_spec(episodes), type(self).__name__
            )
        return super().checked_episodes(episodes)

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
                (default: the learner's current state).
            training: use the meta-training inner loop (steps, learning rates)
                instead of the evaluation one.

        Returns:
            `(adapted_trainable_weights, non_trainable_state)`, aligned with
            the wrapped model's variable lists, ready to predict the query
            with `adaptation.forward`; the model itself is unchanged. The
            BatchNorm layers compute as in the learner's own steps
            (`batch_norm_kernel`), so the weights round as `predict`'s do.
        """
        if state is None:
            state = self.read_state()
        with self.batch_norm_kernel(training):
            return self._adapt(support_x, support_y, state, training, self.task_loss)

    def _adapt(
        self,
        support_x: tf.Tensor,
        support_y: tf.Tensor,
        state: adaptation.Weights,
        training: bool,
        loss_fn: adaptation.LossFn,
    ) -> tuple[adaptation.Weights, adaptation.Weights]:
        """`adapt` on the support loss `loss_fn` (a padded task's: over its classes only)."""
        params, state, _ = self._adapt_with_rule_state(
            support_x, support_y, state, training, loss_fn
        )
        return params, state

    def _adapt_with_rule_state(
        self,
        support_x: tf.Tensor,
        support_y: tf.Tensor,
        state: adaptation.Weights,
        training: bool,
        loss_fn: adaptation.LossFn,
        rule_state: adaptation.Weights | None = None,
        minibatches: tf.Tensor | None = None,
    ) -> tuple[adaptation.Weights, adaptation.Weights, adaptation.Weights]:
        """`_adapt` from the update rule's state `rule_state` (default: its zero state),
        each step on its minibatch of `minibatches` (default: the whole support set),
        also returning the rule's state after the last step
        (`adaptation.adapt_with_rule_state`)."""
        with query_statistics_lib.support_passes(self.model, training, self.query_statistics):
            return adaptation.adapt_with_rule_state(
                self.model,
                loss_fn,
                self.task_initial_weights(),
                state,
                support_x,
                support_y,
                learning_rates=self.inner_learning_rates(training),
                first_order=self.first_order,
                adapted=self.adapted_indices,
                training=training,
                update_rule=self.inner_update_rule(),
                rule_state=rule_state,
                minibatches=minibatches,
            )

    def adapt_and_predict(self, task, state, training):
        episode = padded_episodes.real_examples(task)
        params, state = self._adapt_episode(episode, state, training)
        return self._predict_queries(params, state, episode, training)

    def _adapt_episode(
        self, episode: padded_episodes.RealExamples, state: adaptation.Weights, training: bool
    ) -> tuple[adaptation.Weights, adaptation.Weights]:
        """`adapt` to a task's real support examples, on the loss over its classes."""
        return self._on_support(self._adapt, episode, state, training)

    def _on_support(self, inner_loop, episode: padded_episodes.RealExamples,
                    state: adaptation.Weights, training: bool):
        """`inner_loop(support_x, support_y, state, training, loss_fn)` (`_adapt` or a
        learner's own) on a task's real support examples, `loss_fn` over its classes."""
        return inner_loop(
            episode.task[episode_lib.SUPPORT_X],
            episode.task[episode_lib.SUPPORT_Y],
            state,
            training,
            episode.loss_over_classes(self.task_loss),
        )

    def _predict_queries(
        self,
        params: adaptation.Weights,
        state: adaptation.Weights,
        episode: padded_episodes.RealExamples,
        training: bool,
    ) -> tuple[tf.Tensor, adaptation.Weights]:
        """`(query_predictions, new_state)` of the (adapted) weights on a task's real queries,
        over its classes and in its padded rows when it is padded."""
        predictions, state = query_statistics_lib.predict_queries(
            self.model,
            params,
            state,
            episode.task[episode_lib.SUPPORT_X],
            episode.task[episode_lib.QUERY_X],
            mode=self.query_statistics,
            training=training,
            fused_kernel=self._fused_query_pass(training),
        )
        return episode.in_padded_rows(episode.classes_only(predictions)), state

    def _fused_query_pass(self, training: bool) -> bool:
        """Whether the query pass may run TF's fused BatchNorm kernel
        (`query_statistics.predict_queries`'s `fused_kernel`): in meta-training.

        The meta-gradient differentiates the query pass once (second order
        runs through the support passes of the inner loop only), so the
        kernel is exact there, also when the step's other passes need the
        exact BatchNorm; the queries are most of a task's images.
        Evaluation keeps `batch_norm_kernel`'s choice.
        """
        return training

    def predict_without_adaptation(self, task, state):
        """Query predictions of the weights each task starts from (`task_initial_weights`)."""
        episode = padded_episodes.real_examples(task)
        predictions, _ = self._predict_queries(
            self.task_initial_weights(), self.model_state(state), episode, training=False
        )
        return predictions

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            inner_learning_rate=self.inner_learning_rate,
            inner_steps=self.inner_steps,
            eval_inner_learning_rate=self.eval_inner_learning_rate,
            eval_inner_steps=self.eval_inner_steps,
        )
        return config
