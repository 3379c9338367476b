"""The checks of counts, step sizes and choices that learners, data, checkpoints and meta-RL
share."""

import numpy as np
import pytest

import tfmeta
from tfmeta import rl
from tfmeta.argument_validation import check_choice, check_integer, check_learning_rate
from tfmeta.exporters import export_command


@pytest.mark.parametrize("value, minimum", [(1, 1), (7, 1), (0, 0), (2, 2), (np.int64(3), 1)])
def test_integers_at_or_above_the_minimum_come_back_as_python_ints(value, minimum):
    checked = check_integer("steps", value, minimum=minimum)
    assert checked == value and type(checked) is int


@pytest.mark.parametrize("value", [0, -1, 2.0, 2.5, True, "3", None, [2]])
def test_anything_else_is_refused_with_the_name_and_the_value(value):
    with pytest.raises(ValueError, match=rf"^Expected `ways` to be an integer >= 1\. "
                                         rf"Received: ways={value!r}$".replace("[", r"\[")):
        check_integer("ways", value)


def test_none_only_where_allowed_and_the_message_says_so():
    assert check_integer("num_episodes", None, allow_none=True) is None
    with pytest.raises(ValueError, match=r"an integer >= 2 or None\. Received: num_classes=1$"):
        check_integer("num_classes", 1, minimum=2, allow_none=True)


@pytest.mark.parametrize("value", [0, 0.5, 3, np.float32(0.25), np.float64(1e-4)])
def test_finite_rates_at_or_above_zero_come_back_as_python_floats(value):
    checked = check_learning_rate("inner_learning_rate", value)
    assert checked == pytest.approx(float(value)) and type(checked) is float


@pytest.mark.parametrize("value, message", [
    (-0.1, "to be a finite float >= 0. Received: rate=-0.1$"),
    (float("inf"), "to be a finite float >= 0. Received: rate=inf$"),
    (float("nan"), "to be a finite float >= 0. Received: rate=nan$"),
    (True, "to be a float. Received: rate=True of type bool$"),
    ("0.1", "to be a float. Received: rate='0.1' of type str$"),
    (None, "to be a float. Received: rate=None of type NoneType$"),
])
def test_other_rates_are_refused_with_the_name_and_the_value(value, message):
    with pytest.raises(ValueError, match="^Expected `rate` " + message.replace(".", r"\.")):
        check_learning_rate("rate", value)


def test_gradient_learners_and_policy_maml_share_the_rate_check():
    """Meta-RL's learner refuses a bad step size in the words of the supervised learners."""
    with pytest.raises(ValueError, match=r"^Expected `inner_learning_rate` to be a finite float"):
        rl.PolicyMAML(rl.gaussian_mlp_policy(2, 2), rl.Navigation2D(),
                      inner_learning_rate=-1.0)


@pytest.mark.parametrize("choices", [("sgd", "adam"), ["sgd", "adam"], {"sgd": 0, "adam": 1}])
def test_a_choice_comes_back_and_anything_else_is_refused_naming_the_choices(choices):
    assert check_choice("inner_optimizer", "adam", choices) == "adam"
    for value in ("rmsprop", None, ["sgd"]):
        message = f"Expected `inner_optimizer` to be one of ['sgd', 'adam']. Received: " \
                  f"inner_optimizer={value!r}"
        with pytest.raises(ValueError) as error:
            check_choice("inner_optimizer", value, choices)
        assert str(error.value) == message


def test_learners_models_and_exporters_share_the_choice_check():
    """Options named by strings are refused in one wording wherever they are taken."""
    net = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    with pytest.raises(ValueError, match=r"^Expected `inner_optimizer` to be one of \['sgd', "):
        tfmeta.Reptile(net, inner_optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"^Expected `normalization` to be one of \["):
        tfmeta.models.conv4((28, 28, 1), num_classes=5, normalization="instance")
    with pytest.raises(ValueError, match=r"^Expected `format` to be one of \['saved_model', "):
        export_command.export(tfmeta.MAML(net), "unused", format="onnx", ways=5, shots=1)
