"""The one check of counts that learners, data, checkpoints and meta-RL share."""

import numpy as np
import pytest

from tfmeta.argument_validation import check_integer


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
