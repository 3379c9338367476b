"""`SupportSetClassifier`: learners that classify queries from a support set in one forward pass.

R2-D2, Matching Networks and Relation Networks (like Prototypical Networks)
have no inner loop: the wrapped model embeds support set and queries in one
pass (`tfmeta.query_statistics.episode_forward`, so every `query_statistics`
mode applies), and a head maps the support embeddings, their labels and the
query embeddings straight to query scores. Adaptation is a forward pass, so
it costs what inference costs, in meta-training, in a server and on a phone.
"""

from __future__ import annotations

import tensorflow as tf

from tfmeta.learners import n_way, padded_episodes


class SupportSetClassifier(n_way.NWayClassifier):
    """Base class of R2-D2, Matching and Relation Networks: `NWayClassifier` with every class.

    Subclasses implement `head`. Support labels must be the class ids
    `0..N-1` (as `tfmeta.data` episodes are); predictions are query scores
    `[Q, N]` (the largest wins). There is no pre-adaptation loss.

    Padded episodes (`tfmeta.data.variable_episodes`) need `ways=N`, N at
    least their largest way count: the head sees only the real examples and
    the episode's own classes, the classes beyond them score -1e30
    (`padded_episodes.ABSENT_CLASS_LOGIT`) and padded queries zeros, so the results
    equal those of the unpadded episode (see `NWayClassifier`).

    Args:
        model: a built Keras model mapping inputs to embeddings (any rank).
        ways: the classes N of every episode, each of which must have a
            support example (checked in the graph; in padded episodes, only
            their own classes need one); None infers N per episode as
            `max(support_y) + 1`, so meta-training may use more ways than
            evaluation (not under XLA).
        query_statistics: how BatchNorm normalises the episode
            (`tfmeta.query_statistics`); default `"moving"`, as the papers
            evaluate.
        **kwargs: forwarded to `tfmeta.MetaLearner`.
    """

    def checked_labels(self, support_y: tf.Tensor, padded: bool) -> tf.Tensor:
        """`support_y` as int32 `[S]`; with `ways` set, checked in the graph to hold every class.

        (With `ways=None` the meta-batch checks already require every class
        below the largest. A padded episode's ways vary, so classes beyond
        its own score -1e30 instead.)
        """
        labels = super().checked_labels(support_y, padded)
        if self.ways is None or padded:
            return labels
        check = tf.debugging.Assert(
            tf.reduce_all(padded_episodes.present_classes(labels, self.ways)),
            [f"Expected a support example of every class 0..{self.ways - 1} in `support_y` "
             f"({type(self).__name__} with ways={self.ways}). Received: a support set missing a "
             "class; build episodes of `ways` classes, or pass ways=None"],
        )
        with tf.control_dependencies([check]):
            return tf.identity(labels)
