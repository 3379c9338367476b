"""Proto-MAML (Triantafillou et al. 2020), head-only: a linear head initialised from prototypes,
fine-tuned on the support set by a few differentiable gradient steps."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import query_statistics as query_statistics_lib
from tfmeta.learners import base, padded_episodes, protonet


@keras.saving.register_keras_serializable(package="tfmeta")
class ProtoMAML(protonet.ProtoNet):
    """A prototype-initialised linear head, adapted to each task by gradient descent.

    The wrapped model embeds images, as for `ProtoNet`. Each task's head
    starts as the linear layer equivalent to ProtoNet's squared distances,
    `W_n = 2 c_n`, `b_n = -||c_n||^2` (`c_n` the prototype of class `n`), then
    takes `inner_steps` SGD steps on the support loss; the queries are scored
    by the adapted head. The outer loop meta-learns the embedding through the
    prototypes and the inner steps (second order unless `first_order=True`).

    This is the head-only variant: the embedding is meta-learned but not
    fine-tuned per task. Triantafillou et al.'s Proto-MAML also fine-tunes
    the embedding's weights in the inner loop, at the cost of MAML's memory
    and time.

    With `inner_steps=0` the predictions equal ProtoNet's up to a per-query
    constant (the same softmax). Padded episodes (`tfmeta.data.variable_episodes`)
    are handled as by `ProtoNet(ways=N)`: classes absent from a task have
    logits of -1e30 in the inner loop and for the queries.

    Args:
        model: a built embedding model, e.g. `tfmeta.models.conv4(num_classes=None)`.
        ways: see `ProtoNet`; padded episodes need `ways=N`.
        inner_learning_rate: SGD step size of the head in meta-training.
        inner_steps: SGD steps in meta-training.
        eval_inner_learning_rate: step size in evaluation (default: `inner_learning_rate`).
        eval_inner_steps: steps in evaluation (default: `inner_steps`).
        first_order: hold the inner gradients constant in the meta-gradient.
        query_statistics: see `ProtoNet` (default `"moving"`).
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    import keras, tfmeta
    learner = tfmeta.ProtoMAML(tfmeta.models.conv4((28, 28, 1), num_classes=None), ways=20,
                               inner_learning_rate=0.1, inner_steps=3)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        ways: int | None = None,
        inner_learning_rate: float = 0.1,
        inner_steps: int = 1,
        eval_inner_learning_rate: float | None = None,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, ways=ways, query_statistics=query_statistics, **kwargs)
        base.set_inner_loop(
            self, inner_learning_rate, inner_steps, eval_inner_learning_rate, eval_inner_steps
        )
        if not isinstance(first_order, bool):
            raise ValueError(f"Expected first_order to be a bool. Received: {first_order!r}")
        self.first_order = first_order

    def query_logits(self, support_embeddings, support_y, query_embeddings, ways, training):
        """Scores of the queries under the head initialised from the prototypes, then adapted."""
        prototypes = self.prototypes(support_embeddings, support_y, ways)
        weights = 2.0 * prototypes
        bias = -tf.reduce_sum(tf.square(prototypes), axis=-1)
        labels = tf.cast(tf.reshape(support_y, [-1]), tf.int32)
        steps = self.inner_steps if training else self.eval_inner_steps
        rate = self.inner_learning_rate if training else self.eval_inner_learning_rate
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch([weights, bias])
                logits = self._head(support_embeddings, weights, bias, labels)
                loss = self.task_loss(labels, logits)
            grad_w, grad_b = tape.gradient(loss, [weights, bias])
            if self.first_order:
                grad_w, grad_b = tf.stop_gradient(grad_w), tf.stop_gradient(grad_b)
            weights, bias = weights - rate * grad_w, bias - rate * grad_b
        return self._head(query_embeddings, weights, bias, labels)

    def _head(self, embeddings, weights, bias, support_labels):
        logits = tf.matmul(embeddings, weights, transpose_b=True) + bias
        if self.ways is None:
            return logits
        return padded_episodes.without_absent_classes(logits, support_labels)

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
