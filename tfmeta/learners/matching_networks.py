"""Matching Networks (Vinyals et al. 2016): attention over the support set's labels."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_choice, check_integer
from tfmeta.learners import support_set_classifier
from tfmeta.learners.n_way import flatten


COSINE = "cosine"
EUCLIDEAN = "euclidean"
SIMILARITIES = (COSINE, EUCLIDEAN)


def similarities(queries: tf.Tensor, support: tf.Tensor, kind: str = COSINE) -> tf.Tensor:
    """Attention scores `[Q, S]` between query and support embeddings `[Q, D]`, `[S, D]`.

    `"cosine"`: `cos(q, s_i)`, the paper's, bounded in [-1, 1] (in [0, 1] for
    non-negative features such as a ReLU's), so the softmax over a few support
    examples stays close to uniform. `"euclidean"`: `-||q - s_i||^2`, unbounded,
    as Prototypical Networks score prototypes.

    Example:

    ```python
    scores = tfmeta.learners.matching_networks.similarities(tf.ones([2, 4]), tf.eye(4))
    ```
    """
    if kind == COSINE:
        return tf.matmul(tf.math.l2_normalize(queries, axis=-1),
                         tf.math.l2_normalize(support, axis=-1), transpose_b=True)
    return -(tf.reduce_sum(tf.square(queries), axis=-1, keepdims=True)
             - 2.0 * tf.matmul(queries, support, transpose_b=True)
             + tf.reduce_sum(tf.square(support), axis=-1)[tf.newaxis])


def log_class_probabilities(scores: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """`log sum_i softmax(scores)_i onehot(y_i)`: `[Q, N]` from scores `[Q, S]` and one-hot
    targets `[S, N]`, in log space (a far support example's attention underflows to 0)."""
    log_attention = tf.nn.log_softmax(scores, axis=-1)
    in_class = tf.transpose(targets)[tf.newaxis] > 0  # [1, N, S]
    masked = tf.where(in_class, log_attention[:, tf.newaxis, :], log_attention.dtype.min)
    return tf.reduce_logsumexp(masked, axis=-1)


@keras.saving.register_keras_serializable(package="tfmeta")
class MatchingNetworks(support_set_classifier.SupportSetClassifier):
    """Matching Networks: a query's class distribution is attention over the support labels.

    `P(y | q, S) = sum_i a(q, x_i) onehot(y_i)` with `a` the softmax over
    the support set of the cosine similarities between the embeddings of the
    query and of each support example. Predictions are the log-probabilities
    `log P` `[Q, N]`, so `SparseCategoricalCrossentropy(from_logits=True)`
    is the paper's loss `-log P(y | q, S)` (a log-softmax of log-probabilities
    leaves them unchanged). Without full-context embeddings a query's
    prediction does not depend on the order of the support set.

    Full-context embeddings (`full_context_embeddings=True`, the paper's FCE):
    the support embeddings pass through a bidirectional LSTM over the support
    set (`g(x_i) = g'(x_i) + h_forward_i + h_backward_i`), and each query's
    through `fce_steps` steps of an LSTM that attends to them
    (`h_k = LSTM([f'(q), r_{k-1}], h_{k-1}, c_{k-1}) + f'(q)`, `r_k` the
    attention read-out of the support embeddings with `h_k`). The
    bidirectional LSTM reads the support set in the episode's order, so
    predictions then depend on it, as in the paper. The paper's Omniglot
    results use no FCE (it did not help there).

    Padded episodes (`tfmeta.data.variable_episodes`) need `ways=N`, N at
    least their largest way count: attention runs over the real support
    examples only, and classes without support examples (probability 0)
    score -1e30 instead of `log 0` (`SupportSetClassifier`).

    Args:
        model: a built Keras model mapping inputs to embeddings (flattened).
        ways: the classes of every episode, or None (per episode); padded episodes
            need N.
        full_context_embeddings: add the FCE LSTMs (learner weights).
        fce_steps: processing steps K of the query's attention LSTM (the
            paper does not state K).
        similarity: the attention's scores: `"cosine"` (the paper's) or
            `"euclidean"` (negative squared distances; see `similarities`).
        query_statistics: see `tfmeta.learners.support_set_classifier`.
        **kwargs: forwarded to `tfmeta.MetaLearner`.

    Example:

    ```python
    import keras, tfmeta
    matching = tfmeta.MatchingNetworks(tfmeta.models.conv4((28, 28, 1), num_classes=None),
                                       ways=5)
    matching.compile(optimizer=keras.optimizers.Adam(1e-3),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    matching.fit(sources["train"].episodes(ways=5, shots=1, queries=15, meta_batch_size=32,
                                           seed=0), steps_per_epoch=500)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        ways: int | None = None,
        full_context_embeddings: bool = False,
        fce_steps: int = 5,
        similarity: str = COSINE,
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, ways=ways, query_statistics=query_statistics, **kwargs)
        self.similarity = check_choice("similarity", similarity, SIMILARITIES)
        if not isinstance(full_context_embeddings, bool):
            raise ValueError(
                "Expected `full_context_embeddings` to be a bool. Received: "
                f"full_context_embeddings={full_context_embeddings!r}"
            )
        self.full_context_embeddings = full_context_embeddings
        self.fce_steps = check_integer("fce_steps", fce_steps)
        self.support_lstm = self.query_lstm = None
        if full_context_embeddings:
            dim = _embedding_size(model)
            dtype = model.outputs[0].dtype
            self.support_lstm = keras.layers.Bidirectional(
                keras.layers.LSTM(dim, return_sequences=True, dtype=dtype),
                merge_mode="sum", name="support_lstm", dtype=dtype,
            )
            self.support_lstm.build((1, None, dim))
            self.query_lstm = keras.layers.LSTMCell(dim, name="query_lstm", dtype=dtype)
            self.query_lstm.build((None, 2 * dim))

    @property
    def meta_variables(self) -> list:
        """The embedding's trainable weights, then the FCE LSTMs' (if any)."""
        own = []
        if self.full_context_embeddings:
            own = self.support_lstm.trainable_variables + self.query_lstm.trainable_variables
        return list(self.model.trainable_variables) + list(own)

    def head(self, support, support_y, queries, ways, state, training):
        support, queries = flatten(support), flatten(queries)
        if self.full_context_embeddings:
            support = self._support_context(support)
            queries = self._query_context(queries, support)
        targets = tf.one_hot(support_y, ways, dtype=support.dtype)
        return log_class_probabilities(similarities(queries, support, self.similarity),
                                       targets), state

    def _support_context(self, support: tf.Tensor) -> tf.Tensor:
        """`g(x_i) = g'(x_i) + h_forward_i + h_backward_i` over the support set in its order."""
        return support + self.support_lstm(support[tf.newaxis])[0]

    def _query_context(self, queries: tf.Tensor, support: tf.Tensor) -> tf.Tensor:
        """`f(q, S)`: `fce_steps` steps of the attention LSTM, each query on its own."""
        hidden = cell = readout = tf.zeros_like(queries)
        for _ in range(self.fce_steps):
            output, (hidden, cell) = self.query_lstm(
                tf.concat([queries, readout], axis=-1), (hidden, cell)
            )
            hidden = output + queries
            attention = tf.nn.softmax(tf.matmul(hidden, support, transpose_b=True), axis=-1)
            readout = tf.matmul(attention, support)
        return hidden

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(full_context_embeddings=self.full_context_embeddings,
                      fce_steps=self.fce_steps, similarity=self.similarity)
        return config


def _embedding_size(model: keras.Model) -> int:
    """D, the flattened size of the model's per-example output."""
    shape = model.outputs[0].shape[1:]
    if None in shape:
        raise ValueError(
            "Expected a model with a fully defined output shape for full-context embeddings "
            f"(the LSTMs' size). Received: output shape {tuple(shape)}"
        )
    return int(tf.reduce_prod(shape))
