"""ANIL: only the head adapts in the inner loop; the body is meta-learned."""

import keras
import numpy as np
import pytest

import tfmeta


def conv_net(seed=0):
    keras.utils.set_random_seed(seed)
    return tfmeta.models.conv4(num_classes=5, filters=4)


def compiled_anil(net, **kwargs):
    learner = tfmeta.ANIL(net, **kwargs)
    learner.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


def test_inner_loop_changes_the_head_and_leaves_the_body_as_it_was(omniglot_like_batch):
    learner = compiled_anil(conv_net(), inner_learning_rate=0.5, inner_steps=3)
    batch = omniglot_like_batch(tasks=1)
    initial = [v.numpy() for v in learner.model.trainable_variables]
    adapted, _ = learner.adapt(batch["support_x"][0], batch["support_y"][0], training=True)
    head = set(learner.adapted_indices)
    assert [learner.model.trainable_variables[i].path for i in sorted(head)] == [
        "head/kernel", "head/bias"]
    for index, (before, after) in enumerate(zip(initial, adapted)):
        if index in head:
            assert np.abs(after.numpy() - before).max() > 1e-4, index
        else:
            np.testing.assert_array_equal(after.numpy(), before)


def test_outer_loop_meta_learns_the_body_too(omniglot_like_batch):
    learner = compiled_anil(conv_net(), inner_learning_rate=0.5, inner_steps=1)
    _, grads, _, _ = learner.compute_meta_gradients(omniglot_like_batch())
    body = [g for i, g in enumerate(grads) if i not in learner.adapted_indices]
    assert all(np.abs(g.numpy()).max() > 0 for g in body if g.shape.rank > 1)


def test_head_layers_choose_the_adapted_weights(omniglot_like_batch):
    learner = compiled_anil(conv_net(), head_layers=["block3_conv", "head"], inner_steps=1)
    paths = [learner.model.trainable_variables[i].path for i in learner.adapted_indices]
    assert paths == ["block3_conv/kernel", "block3_conv/bias", "head/kernel", "head/bias"]


def test_learned_rates_exist_for_the_head_only():
    learner = compiled_anil(conv_net(), inner_steps=2,
                            learned_inner_learning_rates="per_layer_per_step")
    assert [tuple(r.shape) for r in learner.inner_learning_rate_variables] == [(2,), (2,)]


def test_unknown_head_layer_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match=r"Received unknown: \['classifier'\]"):
        tfmeta.ANIL(conv_net(), head_layers=["classifier"])


def test_a_head_holding_every_weight_is_rejected():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="only")])
    with pytest.raises(ValueError, match="head smaller than the whole model"):
        tfmeta.ANIL(model)


def test_saved_and_reloaded_anil_gives_identical_outputs(tmp_path, omniglot_like_batch):
    learner = compiled_anil(conv_net(), head_layers=["head"], inner_learning_rate=0.3,
                            inner_steps=2)
    batch = omniglot_like_batch()
    learner.train_on_batch(batch)
    path = tmp_path / "anil.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, tfmeta.ANIL)
    assert restored.head_layers == ["head"] and restored.adapted_indices == learner.adapted_indices
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


@pytest.mark.slow  # real training; MAML's and ProtoNet's run by default
def test_anil_beats_chance_on_held_out_omniglot_characters(omniglot_5way_1shot):
    keras.utils.set_random_seed(0)
    learner = tfmeta.ANIL(tfmeta.models.conv4(num_classes=5, filters=32),
                          inner_learning_rate=1.0, inner_steps=1, eval_inner_steps=3)
    result = omniglot_5way_1shot(learner, iterations=100, optimizer=keras.optimizers.Adam(0.005))
    assert result["accuracy"] > 0.5, result  # chance: 0.2
