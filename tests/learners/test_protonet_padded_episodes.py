"""ProtoNet on padded variable-way, variable-shot episodes: the unpadded results, one trace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta

from padded_episodes_testing import (
    CONFIG,
    compiled,
    embedding,
    padded_batch,
    toy_source,
    unpadded,
)


def test_padded_predictions_losses_and_gradients_equal_the_unpadded_episodes():
    batch = padded_batch()
    assert len(set(batch["ways"].numpy())) > 1  # the meta-batch mixes way counts
    padded = compiled(tfmeta.ProtoNet(embedding(), ways=CONFIG.max_ways))
    plain = compiled(tfmeta.ProtoNet(embedding(), ways=None))
    logits = padded.predict_on_batch(batch)
    scores = padded.query_scores(padded.checked_episodes(batch))
    for task in range(4):
        episode = unpadded(batch, task)
        ways = int(batch["ways"][task])
        expected = plain.predict_on_batch(episode)[0]
        query = batch["query_mask"][task].numpy()
        np.testing.assert_allclose(logits[task][query][:, :ways], expected, rtol=1e-5, atol=1e-5)
        assert np.all(logits[task][query][:, ways:] < -1e29)
        assert not logits[task][~query].any()
        np.testing.assert_allclose(
            scores["loss"][task], plain.query_scores(plain.checked_episodes(episode))["loss"][0],
            rtol=1e-5,
        )
        # Meta-training: BatchNorm's batch statistics and the meta-gradients of the real examples.
        one_task = {key: value[task : task + 1] for key, value in batch.items()}
        loss, grads, _, state = padded.compute_meta_gradients(one_task)
        loss_plain, grads_plain, _, state_plain = plain.compute_meta_gradients(episode)
        np.testing.assert_allclose(loss, loss_plain, rtol=1e-5)
        for g, g_plain in zip(grads + state, grads_plain + state_plain):
            np.testing.assert_allclose(g, g_plain, rtol=1e-4, atol=1e-6)


def test_metrics_count_only_real_queries():
    batch = padded_batch(seed=1)
    learner = compiled(tfmeta.ProtoNet(embedding(), ways=CONFIG.max_ways))
    logs = learner.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    logits = learner.predict_on_batch(batch)
    mask = batch["query_mask"].numpy()
    correct = np.argmax(logits, -1) == batch["query_y"].numpy()
    np.testing.assert_allclose(logs["accuracy"], correct[mask].mean(), rtol=1e-6)


class CountingProtoNet(tfmeta.ProtoNet):
    traces = 0

    def adapt_and_predict(self, task, state, training):
        if training:
            type(self).traces += 1
        return super().adapt_and_predict(task, state, training)


def test_training_on_episodes_of_many_shapes_traces_once():
    data = tfmeta.data.variable_episodes(toy_source(), CONFIG, meta_batch_size=2, seed=0)
    shapes = {tuple(b["ways"].numpy()) for b in data.take(8)}
    assert len(shapes) > 3
    learner = compiled(CountingProtoNet(embedding(), ways=CONFIG.max_ways))
    learner.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    traces = CountingProtoNet.traces  # Keras's first step (one trace, or two with its build)
    learner.fit(data.skip(1), steps_per_epoch=8, epochs=1, verbose=0)
    assert CountingProtoNet.traces == traces <= 2


def test_learners_without_mask_support_refuse_padded_episodes():
    batch = padded_batch()
    fine_tune = compiled(tfmeta.FineTune(keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(6)]), ways=6))
    with pytest.raises(ValueError, match="masks this learner does not handle"):
        fine_tune.predict_on_batch(batch)
    with pytest.raises(ValueError, match="Expected ProtoNet\\(ways=N\\) for padded episodes"):
        compiled(tfmeta.ProtoNet(embedding(), ways=None)).train_on_batch(batch)


def test_evaluate_episodes_scores_real_queries_only():
    data = tfmeta.data.variable_episodes(toy_source(), CONFIG, meta_batch_size=2, num_episodes=4,
                                         seed=2)
    learner = compiled(tfmeta.ProtoNet(embedding(), ways=CONFIG.max_ways))
    result = tfmeta.evaluation.evaluate_episodes(learner, data)
    expected = []
    for batch in data:
        logits = learner.predict_on_batch(batch)
        for task in range(2):
            mask = batch["query_mask"][task].numpy()
            expected.append(np.mean(np.argmax(logits[task][mask], -1)
                                    == batch["query_y"][task].numpy()[mask]))
    np.testing.assert_allclose(result["accuracy"], np.mean(expected), rtol=1e-6)


@pytest.mark.slow
def test_omniglot_variable_episodes_train_protonet_far_above_chance(omniglot):
    """ProtoNet (Conv-4, 28x28) meta-trained on Meta-Dataset episodes of 5-20 ways and varying
    shots over Omniglot's training characters, tested on fixed 5-way and 20-way 1-shot episodes
    of unseen characters: far above chance (20% and 5%)."""
    config = tfmeta.data.VARIABLE_EPISODE_CONFIGS["small"]
    train = tfmeta.data.variable_episodes(omniglot["train"], config, meta_batch_size=1, seed=0)
    learner = compiled(tfmeta.ProtoNet(tfmeta.models.conv4(num_classes=None), ways=config.max_ways),
                       keras.optimizers.Adam(1e-3))
    learner.fit(train, steps_per_epoch=300, epochs=1, verbose=0)
    for ways, chance in ((5, 0.2), (20, 0.05)):
        test = omniglot["test"].episodes(ways, 1, 5, meta_batch_size=10, num_episodes=100, seed=1)
        accuracy = tfmeta.evaluation.evaluate_episodes(learner, test)["accuracy"]
        print(f"{ways}-way 1-shot: {accuracy:.3f}")
        assert accuracy > 3 * chance, (ways, accuracy)


def test_evaluate_episodes_reports_accuracy_per_source():
    sources = [toy_source(seed=0), toy_source(num_classes=8, seed=1)]
    data = tfmeta.data.variable_episodes(sources, CONFIG, weights=[1, 3], meta_batch_size=4,
                                         num_episodes=16, seed=0)
    learner = compiled(tfmeta.ProtoNet(embedding(), ways=CONFIG.max_ways))
    result = tfmeta.evaluation.evaluate_episodes(learner, data)
    scores = tfmeta.evaluation.task_scores(learner, data)
    assert sorted(result["per_source"]) == sorted(set(scores["source"])) == [0, 1]
    for source, summary in result["per_source"].items():
        chosen = scores["accuracy"][scores["source"] == source]
        assert summary["episodes"] == len(chosen)
        np.testing.assert_allclose(summary["accuracy"], chosen.mean(), rtol=1e-9)
    assert sum(s["episodes"] for s in result["per_source"].values()) == 16
