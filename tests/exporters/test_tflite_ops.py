"""The operator inventory of a .tflite flatbuffer, over every subgraph."""

import tensorflow as tf

from tfmeta.exporters import tflite_ops


def convert(fn, *ops_sets):
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = list(ops_sets)
    return converter.convert()


def test_builtin_model_has_no_custom_operators():
    @tf.function(input_signature=[tf.TensorSpec([2, 3])])
    def relu(x):
        return tf.nn.relu(x) + 1.0

    content = convert(relu, tf.lite.OpsSet.TFLITE_BUILTINS)
    assert tflite_ops.operator_counts(content) == {"RELU": 1, "ADD": 1}
    assert tflite_ops.custom_operators(content) == []


def test_flex_operators_are_reported():
    @tf.function(input_signature=[tf.TensorSpec([2, 3]), tf.TensorSpec([2, 3])])
    def relu_grad(dy, x):
        return tf.raw_ops.ReluGrad(gradients=dy, features=x)

    content = convert(relu_grad, tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS)
    assert tflite_ops.custom_operators(content) == ["FlexReluGrad"]
