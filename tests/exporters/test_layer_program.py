"""LayerProgram: the Keras model re-expressed with builtin-gradient ops, checked against Keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import adaptation
from tfmeta.exporters import layer_program

MODELS = {
    "conv4_omniglot": lambda: tfmeta.models.conv4((28, 28, 1), filters=8),
    "conv4_mini_imagenet": lambda: tfmeta.models.conv4((84, 84, 3), filters=4, max_pool=True),
    "mlp": lambda: tfmeta.models.mlp(20, (16, 16), 5),
    "activations": lambda: keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(8, activation="sigmoid", use_bias=False),
        keras.layers.BatchNormalization(center=False), keras.layers.Activation("relu"),
        keras.layers.Dense(3),
    ]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_program_matches_keras_outputs_state_and_gradients(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    program = layer_program.LayerProgram(model)
    program.check_matches_model(batch_size=3)  # outputs and BatchNorm statistics, both modes
    params, state = adaptation.initial_weights(model)
    x = tf.random.stateless_normal([3, *model.inputs[0].shape[1:]], seed=[1, 2])

    def loss(net):
        return lambda y_true, y_pred: tf.reduce_mean(tf.square(y_pred))

    everything = range(len(params))
    _, expected, _ = adaptation.loss_and_gradients(model, loss(model), params, state, x, x,
                                                   wrt=everything)
    _, received, _ = adaptation.loss_and_gradients(program, loss(program), params, state, x, x,
                                                   wrt=everything)
    for want, got in zip(expected, received):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_unsupported_layer_names_it_and_lists_the_supported_ones():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dropout(0.5),
                              keras.layers.Dense(2)])
    with pytest.raises(layer_program.UnsupportedModelError) as error:
        layer_program.LayerProgram(model)
    message = str(error.value)
    assert "Dropout" in message and "Supported layers: InputLayer, Dense, Conv2D" in message


def test_unsupported_options_are_rejected():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, dilation_rate=2)])
    with pytest.raises(layer_program.UnsupportedModelError, match="dilation_rate"):
        layer_program.LayerProgram(model)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softplus")])
    with pytest.raises(layer_program.UnsupportedModelError, match="'softplus'"):
        layer_program.LayerProgram(model)


def test_branching_models_are_rejected():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4)(inputs)
    outputs = keras.layers.Add()([hidden, keras.layers.Dense(4)(hidden)])
    with pytest.raises(layer_program.UnsupportedModelError, match="one input"):
        layer_program.LayerProgram(keras.Model(inputs, outputs))


def test_float64_models_are_rejected():
    model = keras.Sequential([keras.Input((4,), dtype="float64"),
                              keras.layers.Dense(2, dtype="float64")])
    with pytest.raises(layer_program.UnsupportedModelError, match="float32"):
        layer_program.LayerProgram(model)


def test_a_subclass_that_computes_differently_fails_the_check():
    class Dense(keras.layers.Dense):  # same name, other computation
        def call(self, inputs):
            return super().call(inputs) * 2.0

    model = keras.Sequential([keras.Input((4,)), Dense(3)])
    with pytest.raises(layer_program.UnsupportedModelError, match="match the Keras model"):
        layer_program.LayerProgram(model).check_matches_model(batch_size=2)
