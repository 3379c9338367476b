"""`MetaLearner`: misuse refused with one clear error, XLA compiled or refused by name, each
step traced once."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data.episode import EpisodeError

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def dense_net(outputs=3, seed=0, hidden=0):
    keras.utils.set_random_seed(seed)
    body = [keras.layers.Dense(hidden, activation="relu")] if hidden else []
    return keras.Sequential([keras.Input((4,)), *body, keras.layers.Dense(outputs)])


def episodes(ways, tasks=2, shots=1, queries=2, seed=0):
    rng = np.random.default_rng(seed)

    def labels(per_class):
        return np.tile(np.repeat(np.arange(ways), per_class), (tasks, 1)).astype(np.int32)

    return {
        "support_x": rng.normal(size=(tasks, ways * shots, 4)).astype(np.float32),
        "support_y": labels(shots),
        "query_x": rng.normal(size=(tasks, ways * queries, 4)).astype(np.float32),
        "query_y": labels(queries),
    }


def compiled(learner, **kwargs):
    learner.compile(optimizer="adam", loss=SPARSE, metrics=["accuracy"], **kwargs)
    return learner


def test_multi_output_and_multi_input_models_are_refused_at_construction():
    inputs = keras.Input((4,))
    two_heads = keras.Model(inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(1)(inputs)])
    with pytest.raises(
        ValueError,
        match=r"^Expected a model with one input and one output tensor .* Received: model "
        r"'\w+' with 2 outputs .*keras\.Model\(model\.inputs\[0\], model\.outputs\[0\]\)$",
    ):
        tfmeta.MAML(two_heads)
    first, second = keras.Input((4,)), keras.Input((2,))
    two_inputs = keras.Model(
        [first, second], keras.layers.Dense(3)(keras.layers.Concatenate()([first, second]))
    )
    with pytest.raises(ValueError, match=r"with 2 inputs"):
        tfmeta.ProtoNet(two_inputs)


class ListModel(keras.Model):
    """A subclassed model that returns a list: no symbolic outputs to check upfront."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return [self.dense(x)]


def test_a_subclassed_model_returning_a_list_is_one_clear_error_when_it_runs():
    model = ListModel()
    model(np.zeros([1, 4], np.float32))  # builds its layer
    learner = compiled(tfmeta.MAML(model))
    with pytest.raises(ValueError, match=r"^Expected a model that returns one tensor .*list"):
        learner.predict_on_batch(episodes(3))


def test_episodes_of_more_ways_than_outputs_raise_one_line_before_any_update():
    maml = compiled(tfmeta.MAML(dense_net(outputs=3)))
    before = [v.numpy() for v in maml.model.trainable_variables]
    five_way = tf.data.Dataset.from_tensors(episodes(5)).repeat()
    with pytest.raises(EpisodeError) as raised:
        maml.fit(five_way, steps_per_epoch=1, verbose=0)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(
        "Expected class ids in 0..2 in `support_y` (the model predicts 3 classes: episodes of "
        "more ways need a model with as many outputs"
    )
    assert isinstance(raised.value, ValueError)  # and a tf.errors.InvalidArgumentError
    for variable, value in zip(maml.model.trainable_variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)
    with pytest.raises(EpisodeError, match=r"^Expected class ids in 0\.\.2 in `support_y`"):
        tfmeta.evaluation.evaluate_episodes(maml, five_way.take(1))


def test_non_finite_inputs_are_one_line_from_evaluate():
    batch = episodes(3)
    batch["query_x"][0, 0, 0] = np.nan
    maml = compiled(tfmeta.MAML(dense_net()))
    with pytest.raises(EpisodeError, match=r"^Expected finite values in `query_x`\. Received: NaN"):
        maml.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)


def test_protonet_without_ways_refuses_xla_by_name():
    message = (
        r"^Expected a learner that XLA can compile for jit_compile=True\. Received: ProtoNet, "
        r"which cannot: ways=None infers the number of prototypes .*; pass ways=N .*; compile "
        r"with jit_compile=False$"
    )
    with pytest.raises(ValueError, match=message):
        compiled(tfmeta.ProtoNet(dense_net(outputs=8)), jit_compile=True)
    protonet = compiled(tfmeta.ProtoNet(dense_net(outputs=8)))
    with pytest.raises(ValueError, match=message):
        protonet.jit_compile = True
    assert compiled(tfmeta.ProtoNet(dense_net(outputs=8), ways=3), jit_compile=True).jit_compile


def test_auto_leaves_xla_off_for_learners_where_keras_would_turn_it_on(monkeypatch):
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda *args: [gpu])
    plain = dense_net()
    plain.compile(optimizer="adam", loss=SPARSE)
    assert plain.jit_compile is True  # Keras's "auto" with a GPU
    assert compiled(tfmeta.MAML(dense_net())).jit_compile is False
    assert tfmeta.ProtoNet(dense_net(outputs=8)).jit_compile is False  # never compiled


def test_maml_under_xla_predicts_what_it_predicts_without():
    batch = episodes(3)
    plain = compiled(tfmeta.MAML(dense_net(), inner_learning_rate=0.1, inner_steps=2))
    xla = compiled(
        tfmeta.MAML(dense_net(), inner_learning_rate=0.1, inner_steps=2), jit_compile=True
    )
    np.testing.assert_allclose(
        xla.predict_on_batch(batch), plain.predict_on_batch(batch), rtol=1e-5, atol=1e-5
    )


LEARNERS = {
    "maml": lambda: tfmeta.MAML(dense_net(), inner_learning_rate=0.1),
    "fomaml": lambda: tfmeta.MAML(dense_net(), first_order=True),
    "metasgd": lambda: tfmeta.MetaSGD(dense_net()),
    "anil": lambda: tfmeta.ANIL(dense_net(hidden=8)),
    "reptile": lambda: tfmeta.Reptile(dense_net()),
    "protonet": lambda: tfmeta.ProtoNet(dense_net(outputs=8), ways=3),
    "finetune": lambda: tfmeta.FineTune(dense_net(outputs=8), ways=3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_trains_and_evaluates_under_xla_as_without(name):
    batch = tf.data.Dataset.from_tensors(episodes(3)).repeat()
    results = []
    for jit_compile in (False, True):
        learner = compiled(LEARNERS[name](), jit_compile=jit_compile)
        if name != "finetune":  # pretrained, never meta-trained
            learner.fit(batch, steps_per_epoch=2, verbose=0)
        results.append(learner.evaluate(batch, steps=1, verbose=0, return_dict=True))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        np.testing.assert_allclose(results[1][key], results[0][key], rtol=1e-4, atol=1e-5)


def test_a_setting_changed_after_compiling_takes_effect():
    """`learner.eval_inner_steps = 5` after an evaluate retraces: a stale graph would ignore it."""
    data = episodes(ways=3)
    learner = compiled(tfmeta.MAML(dense_net(), inner_learning_rate=0.5, eval_inner_steps=0))
    unadapted = learner.evaluate(data, verbose=0, return_dict=True)["loss"]
    learner.eval_inner_steps = 5
    changed = learner.evaluate(data, verbose=0, return_dict=True)["loss"]
    fresh = compiled(tfmeta.MAML(dense_net(), inner_learning_rate=0.5, eval_inner_steps=5))
    expected = fresh.evaluate(data, verbose=0, return_dict=True)["loss"]
    assert changed != pytest.approx(unadapted)
    assert changed == pytest.approx(expected, rel=1e-6)


class TraceCounting(tfmeta.MAML):
    """MAML counting how often its steps are traced (Python runs only while tracing)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.traced_steps = []

    def train_step(self, data):
        self.traced_steps.append("train")
        return super().train_step(data)

    def test_step(self, data):
        self.traced_steps.append("test")
        return super().test_step(data)


@pytest.mark.parametrize("calls", ["on_batch", "dataset"])
def test_each_step_is_traced_once_though_optimizer_and_metrics_start_unbuilt(calls):
    """Keras makes the optimizer's slots and the metrics' variables inside the first traced
    step, and tf.function then traces that step a second time; the learner makes them first."""
    batch = episodes(ways=3)
    learner = compiled(TraceCounting(dense_net(), inner_steps=1))
    assert not learner.optimizer.built and not learner._compile_metrics.built
    if calls == "on_batch":
        learner.test_on_batch(batch)
        learner.train_on_batch(batch)
        learner.train_on_batch(batch)
    else:
        data = tf.data.Dataset.from_tensors(batch)
        learner.evaluate(data, verbose=0)
        learner.fit(data, epochs=2, verbose=0)
    assert sorted(learner.traced_steps) == ["test", "train"]
    assert learner.optimizer.iterations.numpy() == 2
