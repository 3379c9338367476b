"""FineTune (Chen et al.'s Baseline): pretrain a classifier, fine-tune a new head per episode."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta


def body(seed=0):
    keras.utils.set_random_seed(seed)
    return tfmeta.models.conv4(num_classes=None, filters=4)


def compiled_fine_tune(net, **kwargs):
    learner = tfmeta.FineTune(net, **kwargs)
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    return learner


def test_new_zero_head_is_fine_tuned_on_the_frozen_body_features(omniglot_like_batch):
    learner = compiled_fine_tune(body(), ways=5, eval_inner_learning_rate=0.5, eval_inner_steps=4)
    batch = omniglot_like_batch(tasks=1)
    support = learner.model(batch["support_x"][0], training=False)
    query = learner.model(batch["query_x"][0], training=False)
    kernel, bias = tf.zeros((4, 5)), tf.zeros((5,))
    for _ in range(4):
        with tf.GradientTape() as tape:
            tape.watch([kernel, bias])
            loss = learner.task_loss(batch["support_y"][0], support @ kernel + bias)
        grad_kernel, grad_bias = tape.gradient(loss, [kernel, bias])
        kernel, bias = kernel - 0.5 * grad_kernel, bias - 0.5 * grad_bias
    before = [v.numpy().copy() for v in learner.variables]
    np.testing.assert_allclose(learner.predict_on_batch(batch)[0], query @ kernel + bias,
                               rtol=1e-5, atol=1e-6)
    for old, variable in zip(before, learner.variables):
        np.testing.assert_array_equal(old, variable.numpy())


def test_fine_tuning_the_body_too_changes_the_predictions(omniglot_like_batch):
    batch = omniglot_like_batch()
    options = dict(ways=5, eval_inner_steps=3, eval_inner_learning_rate=0.5,
                   head_initializer="glorot_uniform")
    frozen = compiled_fine_tune(body(), **options)
    tuned = compiled_fine_tune(body(), fine_tune_body=True, **options)
    frozen_logits = frozen.predict_on_batch(batch)
    difference = np.abs(frozen_logits - tuned.predict_on_batch(batch)).max()
    assert difference > 1e-3 * np.abs(frozen_logits).max()


def test_pretraining_trains_the_body_as_a_classifier():
    learner = compiled_fine_tune(body(), ways=5)
    random = np.random.default_rng(0)
    images = random.uniform(size=(64, 28, 28, 1)).astype("float32")
    labels = random.integers(0, 8, size=64)
    before = [v.numpy().copy() for v in learner.model.trainable_variables]
    history = learner.pretrain(tf.data.Dataset.from_tensor_slices((images, labels)).batch(32),
                               num_classes=8, epochs=3, optimizer=keras.optimizers.Adam(0.01),
                               verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = [v.numpy() for v in learner.model.trainable_variables]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))


def test_episodic_fit_is_rejected_with_a_pointer_to_pretrain(omniglot_like_batch):
    learner = compiled_fine_tune(body(), ways=5)
    with pytest.raises(ValueError, match=r"pretrain\(dataset, num_classes\)"):
        learner.train_on_batch(omniglot_like_batch())


def test_evaluate_reports_no_pre_adaptation_loss(omniglot_like_batch):
    learner = compiled_fine_tune(body(), ways=5, eval_inner_steps=2)
    logs = learner.evaluate(tf.data.Dataset.from_tensors(omniglot_like_batch()), return_dict=True,
                            verbose=0)
    assert set(logs) == {"loss", "accuracy"}


def test_saved_and_reloaded_fine_tune_gives_identical_outputs(tmp_path, omniglot_like_batch):
    learner = compiled_fine_tune(body(), ways=5, eval_inner_steps=3, fine_tune_body=True,
                                 head_initializer="glorot_uniform")
    batch = omniglot_like_batch()
    path = tmp_path / "fine_tune.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, tfmeta.FineTune)
    assert (restored.ways, restored.eval_inner_steps, restored.fine_tune_body) == (5, 3, True)
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


@pytest.mark.slow  # real training; MAML's and ProtoNet's run by default
def test_fine_tune_beats_chance_on_held_out_omniglot_characters(omniglot, omniglot_5way_1shot):
    keras.utils.set_random_seed(0)
    learner = tfmeta.FineTune(tfmeta.models.conv4(num_classes=None, filters=32), ways=5,
                              eval_inner_learning_rate=0.2, eval_inner_steps=50)
    train = omniglot["train"].class_images  # base characters, without rotations
    labels = np.repeat(np.arange(train.num_base_classes), train.counts)
    images = (
        tf.data.Dataset.from_tensor_slices((train.images, labels))
        .shuffle(len(labels), seed=0)
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .batch(128)
    )
    learner.pretrain(images, num_classes=train.num_base_classes, steps_per_epoch=150,
                     optimizer=keras.optimizers.Adam(0.003), verbose=0)
    result = omniglot_5way_1shot(learner, iterations=0, optimizer="sgd")
    assert result["accuracy"] > 0.5, result  # chance: 0.2
