"""Adaptation plan: a learner's evaluation inner loop read as constants."""

import keras
import numpy as np
import pytest

import exporter_testing as et
import tfmeta
from tfmeta.exporters import adaptation_plan


def test_maml_plan_has_one_scalar_rate_per_step_and_weight(conv4_learner):
    plan = adaptation_plan.gradient_plan(conv4_learner)
    weights = len(conv4_learner.model.trainable_variables)
    assert plan.steps == 5 and plan.adapted == tuple(range(weights))
    assert plan.learning_rates[0] == (pytest.approx(0.1),) * weights
    assert plan.query_statistics == "support" and plan.loss == adaptation_plan.CROSS_ENTROPY


def test_per_step_and_per_parameter_rates_are_stacked():
    net = tfmeta.models.mlp(4, (3,), 2)
    lslr = et.compiled(tfmeta.MAML(net, inner_steps=2,
                                   learned_inner_learning_rates="per_layer_per_step"))
    lslr.inner_learning_rate_variables[0].assign([0.1, 0.2])
    stacked = adaptation_plan.gradient_plan(lslr).stacked_learning_rates()
    np.testing.assert_allclose(stacked[0], [0.1, 0.2])
    meta_sgd = et.compiled(tfmeta.MetaSGD(tfmeta.models.mlp(4, (3,), 2), eval_inner_steps=3))
    stacked = adaptation_plan.gradient_plan(meta_sgd).stacked_learning_rates()
    assert stacked[0].shape == (3, 4, 3)


def test_anil_adapts_the_head_only():
    net = tfmeta.models.mlp(4, (3,), 2)
    plan = adaptation_plan.gradient_plan(et.compiled(tfmeta.ANIL(net)))
    assert plan.adapted == (2, 3)


def test_zero_initialised_head_has_no_on_device_plan():
    learner = et.compiled(tfmeta.MAML(tfmeta.models.mlp(4, (3,), 2), head_initialization="zeros"))
    with pytest.raises(ValueError, match="head_initialization='learned'.*Received: MAML with "
                                         "head_initialization='zeros'"):
        adaptation_plan.gradient_plan(learner)


@pytest.mark.parametrize("loss, kind", [
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), adaptation_plan.CROSS_ENTROPY),
    ("mse", adaptation_plan.MEAN_SQUARED_ERROR),
    (keras.losses.MeanSquaredError(), adaptation_plan.MEAN_SQUARED_ERROR),
])
def test_supported_losses(loss, kind):
    assert adaptation_plan.loss_kind(et.compiled(tfmeta.MAML(tfmeta.models.mlp()), loss)) == kind


def test_probability_cross_entropy_is_rejected_with_the_supported_list():
    learner = et.compiled(tfmeta.MAML(tfmeta.models.mlp()), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="from_logits=True.*Received: loss='sparse_categorical"):
        adaptation_plan.loss_kind(learner)


def test_uncompiled_and_foreign_learners_are_rejected():
    with pytest.raises(ValueError, match="Expected a tfmeta learner"):
        adaptation_plan.check_learner(tfmeta.models.mlp())
    with pytest.raises(ValueError, match="compile"):
        adaptation_plan.check_learner(tfmeta.MAML(tfmeta.models.mlp()))
