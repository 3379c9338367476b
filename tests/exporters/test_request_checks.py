"""In-graph request checks: clear messages, and grappler does not fold them away."""

import pytest
import tensorflow as tf

from tfmeta.exporters import request_checks


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                              tf.TensorSpec([None], tf.int32)])
def loss(x, y):
    """A consumer that ties the labels' length to the inputs' count (as a task loss does)."""
    x = request_checks.checked_inputs(x, "support_x", 3, (2,), "3-way 1-shot support set")
    y = request_checks.checked_labels(y, "support_y", 3, 3, "3-way 1-shot support set")
    logits = tf.matmul(x, tf.ones([2, 3]))
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))


@pytest.mark.parametrize("x, y, message", [
    ([[0.0, 1.0]] * 2, [0, 1, 2], r"`support_x` with 3 examples \(3-way 1-shot support set\)"),
    ([[0.0, 1.0, 2.0]] * 3, [0, 1, 2], r"`support_x` examples of shape \(2,\)"),
    ([[0.0, 1.0]] * 3, [0, 1], "`support_y` with 3 examples"),
    ([[0.0, 1.0]] * 3, [0, 1, 3], r"`support_y` class ids in 0\.\.2"),
    ([[0.0, 1.0]] * 3, [0, -1, 2], r"`support_y` class ids in 0\.\.2"),
    ([[0.0, float("nan")]] * 3, [0, 1, 2], "finite values in `support_x`"),
])
def test_bad_requests_raise_the_check_message(x, y, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loss(tf.constant(x), tf.constant(y))


def test_valid_requests_pass_and_keep_static_shapes():
    assert loss(tf.constant([[0.0, 1.0]] * 3), tf.constant([0, 1, 2])).shape == ()

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float32)])
    def queries(x):
        checked = request_checks.checked_inputs(x, "query_x", None, (4, 2))
        assert checked.shape.as_list() == [None, 4, 2]
        return checked

    assert queries(tf.zeros([7, 4, 2])).shape == (7, 4, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one example"):
        queries(tf.zeros([0, 4, 2]))


def test_every_class_check_for_prototypes():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def labels(y):
        return request_checks.checked_labels(y, "support_y", 4, 3, every_class=True)

    assert labels(tf.constant([0, 1, 2, 2])).shape == (4,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="every class 0..2"):
        labels(tf.constant([0, 1, 1, 0]))
