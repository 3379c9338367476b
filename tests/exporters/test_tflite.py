"""TFLite export: LiteRT (stock, builtin ops only) adapts on the device exactly like the learner."""

import json

import keras
import numpy as np
import pytest

import exporter_testing as et
import tfmeta
from tfmeta.exporters import task_format, tflite, tflite_ops

ATOL = 1e-4


def export(learner, directory, name, ways=et.WAYS, shots=et.SHOTS, **kwargs):
    path = directory / f"{name}.tflite"
    info = tflite.export_tflite(learner, path, ways=ways, shots=shots,
                                query_size=et.QUERIES, **kwargs)
    return path.read_bytes(), info


@pytest.fixture(scope="module")
def exported(tmp_path_factory, conv4_learner, mlp_learner):
    directory = tmp_path_factory.mktemp("tflite")
    return {
        "conv4": (conv4_learner, *export(conv4_learner, directory, "conv4")),
        "mlp": (mlp_learner, *export(mlp_learner, directory, "mlp")),
    }


def runners(content):
    interpreter = tflite.interpreter(content)
    return {name: interpreter.get_signature_runner(name)
            for name in interpreter.get_signature_list()}


def with_steps(learner, steps):
    """The same meta-learned model, adapting with `steps` evaluation steps."""
    return et.compiled(tfmeta.MAML(learner.model, inner_learning_rate=learner.inner_learning_rate,
                                   eval_inner_steps=steps,
                                   query_statistics=learner.query_statistics))


@pytest.mark.parametrize("name", ["mlp", "conv4"])
def test_litert_matches_tensorflow_after_1_3_and_5_inner_steps(exported, name):
    learner, content, _ = exported[name]
    task = et.episode(learner.model.inputs[0].shape[1:])
    run = runners(content)
    run["reset"]()
    for steps in range(1, 6):
        run["train_step"](support_x=task["support_x"], support_y=task["support_y"])
        if steps in (1, 3, 5):
            expected = tflite.learner_predictions(with_steps(learner, steps), task)
            received = run["infer"](query_x=task["query_x"])["outputs"]
            assert np.max(np.abs(received - expected)) < ATOL, steps
            params, _ = with_steps(learner, steps).adapt(task["support_x"], task["support_y"])
            expected_weights = np.concatenate([np.ravel(p) for p in params])
            received_weights = run["get_weights"]()["weights"][: expected_weights.size]
            assert np.max(np.abs(received_weights - expected_weights)) < ATOL, steps


@pytest.mark.parametrize("name", ["mlp", "conv4"])
def test_adapt_and_predict_matches_learner_predict(exported, name):
    learner, content, _ = exported[name]
    task = et.episode(learner.model.inputs[0].shape[1:], seed=5)
    received = runners(content)["adapt_and_predict"](**task)["outputs"]
    assert np.max(np.abs(received - et.learner_predict(learner, task))) < ATOL


@pytest.mark.parametrize("name", ["mlp", "conv4"])
def test_converted_model_needs_no_flex_or_custom_ops(exported, name):
    _, content, _ = exported[name]
    assert tflite_ops.custom_operators(content) == []
    operators = tflite_ops.operator_counts(content)
    assert not [op for op in operators if op.startswith("Flex")]
    assert {"WHILE", "ASSIGN_VARIABLE", "READ_VARIABLE"} <= set(operators)
    if name == "conv4":
        assert "CONV_2D" in operators


def test_weights_get_set_and_reset_keep_a_task_on_the_device(exported):
    learner, content, info = exported["conv4"]
    task = et.episode((28, 28, 1), seed=3)
    model = learner.model
    initial = np.concatenate(
        [np.ravel(v) for v in model.trainable_variables + model.non_trainable_variables]
    )
    first = runners(content)
    np.testing.assert_array_equal(first["get_weights"]()["weights"], initial)
    for _ in range(learner.eval_inner_steps):
        first["train_step"](support_x=task["support_x"], support_y=task["support_y"])
    adapted = first["get_weights"]()["weights"]
    adapted_outputs = first["infer"](query_x=task["query_x"])["outputs"]
    # `eval_inner_steps` train steps then infer == adapt_and_predict
    one_call = first["adapt_and_predict"](**task)["outputs"]
    assert np.max(np.abs(adapted_outputs - one_call)) < ATOL

    second = runners(content)  # e.g. the app restarted: restore the saved task weights
    np.testing.assert_array_equal(second["set_weights"](weights=adapted)["weights"], adapted)
    np.testing.assert_array_equal(second["infer"](query_x=task["query_x"])["outputs"],
                                  adapted_outputs)
    np.testing.assert_array_equal(second["reset"]()["weights"], initial)
    assert info["weights_layout"][-1]["offset"] + info["weights_layout"][-1]["size"] == initial.size


def test_metadata_signature_describes_the_export(exported):
    learner, content, info = exported["mlp"]
    received = json.loads(runners(content)["metadata"]()["json"].item())
    assert received == json.loads(json.dumps(info))
    assert received["algorithm"] == "MAML" and received["format"] == "tflite"
    assert (received["ways"], received["shots"], received["query_size"]) == (5, 1, et.QUERIES)
    assert received["inner_steps"] == 5 and received["inner_learning_rate"] == pytest.approx(0.3)
    assert received["input_shape"] == [20]


def test_invalid_requests_give_nan_on_the_device(exported):
    """TFLite has no asserts: NaN inputs and invalid labels give NaN outputs, not a result."""
    _, content, _ = exported["mlp"]
    task = et.episode((20,))
    run = runners(content)
    nan_support = dict(task, support_x=np.full_like(task["support_x"], np.nan))
    assert np.isnan(run["adapt_and_predict"](**nan_support)["outputs"]).all()
    out_of_range = dict(task, support_y=task["support_y"] + 7)
    assert np.isnan(run["adapt_and_predict"](**out_of_range)["outputs"]).all()


# The default mode ("support" with BatchNorm) runs in the tests above; here two more by
# default, the others `slow`.
@pytest.mark.parametrize("mode,normalization", [
    ("transductive", "batch"), ("support", "task"),
    *(pytest.param(mode, normalization, marks=pytest.mark.slow) for mode, normalization in [
        ("support_instance", "batch"), ("moving", "batch"), ("transductive", "task"),
        ("support", "layer")]),
])
def test_every_query_statistics_mode_adapts_on_the_device_like_the_learner(
    tmp_path, mode, normalization
):
    keras.utils.set_random_seed(0)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=et.WAYS, filters=4,
                              normalization=normalization)
    if normalization == "task":  # a blend away from its initial value, different per channel
        for layer in net.layers:
            if isinstance(layer, tfmeta.layers.TaskNormalization):
                layer.blend_scale.assign(np.linspace(-0.3, 0.3, 4))
                layer.blend_offset.assign(np.linspace(1.0, -1.0, 4))
    learner = et.compiled(tfmeta.MAML(net, inner_learning_rate=0.1, eval_inner_steps=3,
                                      query_statistics=mode))
    content, info = export(learner, tmp_path, mode, query_statistics=mode)
    assert info["query_statistics"] == mode
    task = et.episode((28, 28, 1), seed=3)
    expected = et.learner_predict(learner, task)
    run = runners(content)
    assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"] - expected)) < ATOL
    for _ in range(3):
        run["train_step"](support_x=task["support_x"], support_y=task["support_y"])
    assert np.max(np.abs(run["infer"](query_x=task["query_x"])["outputs"] - expected)) < ATOL


def test_head_only_adaptation_of_a_conv4_matches_the_learner_on_the_device(tmp_path):
    keras.utils.set_random_seed(0)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=et.WAYS, filters=8)
    learner = et.compiled(tfmeta.ANIL(net, inner_learning_rate=0.3, eval_inner_steps=3))
    content, info = export(learner, tmp_path, "anil_conv4")
    task = et.episode((28, 28, 1), seed=2)
    expected = et.learner_predict(learner, task)
    run = runners(content)
    assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"] - expected)) < ATOL
    before = run["get_weights"]()["weights"]
    for _ in range(3):
        run["train_step"](support_x=task["support_x"], support_y=task["support_y"])
    after = run["get_weights"]()["weights"]
    head = [entry for entry in info["weights_layout"] if entry["name"].startswith("head/")]
    body_end = head[0]["offset"]
    np.testing.assert_array_equal(after[:body_end], before[:body_end])
    assert np.max(np.abs(run["infer"](query_x=task["query_x"])["outputs"] - expected)) < ATOL


@pytest.mark.parametrize("kind", ["meta_sgd", "anil", "reptile"])
def test_gradient_learner_family_adapts_on_the_device(tmp_path, kind):
    keras.utils.set_random_seed(0)
    net = tfmeta.models.mlp(20, (16, 16), et.WAYS)
    learner = et.compiled({
        "meta_sgd": lambda: tfmeta.MetaSGD(net, inner_learning_rate=0.2, eval_inner_steps=3),
        "anil": lambda: tfmeta.ANIL(net, inner_learning_rate=0.3, eval_inner_steps=3),
        "reptile": lambda: tfmeta.Reptile(net, inner_learning_rate=0.3, eval_inner_steps=3),
    }[kind]())
    if kind == "meta_sgd":  # distinct learned rates per parameter
        for variable in learner.inner_learning_rate_variables:
            variable.assign(np.random.default_rng(0).uniform(0.05, 0.5, variable.shape))
    content, _ = export(learner, tmp_path, kind)  # verifies adapt_and_predict in LiteRT
    task = et.episode((20,), seed=2)
    run = runners(content)
    assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"]
                         - et.learner_predict(learner, task))) < ATOL
    before = run["get_weights"]()["weights"]
    for _ in range(3):
        run["train_step"](support_x=task["support_x"], support_y=task["support_y"])
    after = run["get_weights"]()["weights"]
    if kind == "anil":  # only the head (the last kernel and bias) moved
        head = 16 * et.WAYS + et.WAYS
        np.testing.assert_array_equal(after[:-head], before[:-head])
        assert np.abs(after[-head:] - before[-head:]).max() > 0
    assert np.max(np.abs(run["infer"](query_x=task["query_x"])["outputs"]
                         - et.learner_predict(learner, task))) < ATOL


def test_protonet_computes_prototypes_on_the_device(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.ProtoNet(tfmeta.models.conv4((28, 28, 1), num_classes=None,
                                                              filters=8)))
    content, info = export(learner, tmp_path, "protonet", shots=2)
    assert "embed" in info["signatures"] and tflite_ops.custom_operators(content) == []
    task = et.episode((28, 28, 1), shots=2, seed=4)
    expected = et.learner_predict(learner, task)
    run = runners(content)
    assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"] - expected)) < ATOL
    run["train_step"](support_x=task["support_x"], support_y=task["support_y"])
    assert np.max(np.abs(run["infer"](query_x=task["query_x"])["outputs"] - expected)) < ATOL
    assert info["weights_layout"][0] == {"name": "prototypes", "shape": [et.WAYS, 8], "offset": 0,
                                         "size": et.WAYS * 8, "trainable": False}
    size = sum(entry["size"] for entry in info["weights_layout"])
    assert run["get_weights"]()["weights"].shape == (size,)
    embeddings = run["embed"](inputs=task["query_x"])["embeddings"]
    np.testing.assert_allclose(embeddings, learner.model(task["query_x"]), atol=1e-5)


def test_regression_adapts_with_mean_squared_error(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.MAML(tfmeta.models.mlp(), inner_learning_rate=0.01,
                                      eval_inner_steps=5), loss="mse")
    content, info = export(learner, tmp_path, "sinusoid", ways=None, shots=10)
    assert info["task"] == "regression" and info["support_size"] == 10
    rng = np.random.default_rng(0)
    task = {"support_x": rng.uniform(-5, 5, (10, 1)).astype(np.float32),
            "support_y": rng.uniform(-5, 5, (10, 1)).astype(np.float32),
            "query_x": rng.uniform(-5, 5, (et.QUERIES, 1)).astype(np.float32)}
    received = runners(content)["adapt_and_predict"](**task)["outputs"]
    assert np.max(np.abs(received - tflite.learner_predictions(learner, task))) < ATOL


def test_learners_without_an_on_device_version_are_rejected(tmp_path):
    with_batch_norm = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8),
                                        keras.layers.BatchNormalization(), keras.layers.Dense(5)])
    per_step = et.compiled(tfmeta.MAML(with_batch_norm, inner_steps=2,
                                       per_step_batch_norm_statistics=True))
    net = tfmeta.models.mlp(20, (8,), et.WAYS)
    with pytest.raises(ValueError, match="state variables of its own"):
        export(per_step, tmp_path, "per_step")
    fine_tune = et.compiled(tfmeta.FineTune(tfmeta.models.mlp(20, (8,), 8), ways=et.WAYS))
    with pytest.raises(ValueError, match="GradientLearner .* or ProtoNet"):
        export(fine_tune, tmp_path, "fine_tune")
    cosine = et.compiled(tfmeta.MAML(net), loss=keras.losses.CategoricalCrossentropy())
    with pytest.raises(ValueError, match="SparseCategoricalCrossentropy\\(from_logits=True\\)"):
        export(cosine, tmp_path, "loss")


@pytest.mark.parametrize("carry_inner_moments", [False, True])
def test_reptile_with_an_adam_inner_loop_is_refused_with_the_reason(tmp_path, carry_inner_moments):
    learner = et.compiled(tfmeta.Reptile(tfmeta.models.mlp(20, (8,), et.WAYS),
                                         inner_optimizer="adam", inner_learning_rate=0.001,
                                         carry_inner_moments=carry_inner_moments))
    with pytest.raises(ValueError, match="plain gradient descent .*carries no optimizer moments"
                                         ".*Received: Reptile with inner_optimizer='adam'"):
        export(learner, tmp_path, "reptile_adam")
    assert not (tmp_path / "reptile_adam.tflite").exists()


@pytest.mark.parametrize("sizes", [dict(inner_batch_size=2), dict(eval_inner_batch_size=3)])
def test_reptile_on_minibatches_is_refused_with_the_reason(tmp_path, sizes):
    learner = et.compiled(tfmeta.Reptile(tfmeta.models.mlp(20, (8,), et.WAYS), **sizes))
    received = ", ".join(f"{name}={sizes.get(name)}"
                         for name in ("inner_batch_size", "eval_inner_batch_size"))
    with pytest.raises(ValueError, match="whole support set: the on-device module draws no "
                                         f"minibatches. Received: Reptile with {received}"):
        export(learner, tmp_path, "reptile_minibatches")
    assert not (tmp_path / "reptile_minibatches.tflite").exists()


def test_verification_against_the_learner_catches_a_wrong_model(tmp_path, mlp_learner):
    content, _ = export(mlp_learner, tmp_path, "mlp")
    task = task_format.task_format(mlp_learner, et.WAYS, et.SHOTS)
    other = et.mlp_maml(seed=1)  # same architecture, other weights
    episode = et.episode((20,))
    assert tflite.verify(content, mlp_learner, task, et.QUERIES, episode) < 1e-5
    with pytest.raises(ValueError, match="adapt like the learner.*verification_episode"):
        tflite.verify(content, other, task, et.QUERIES, episode)


def test_existing_file_is_not_overwritten_silently(tmp_path, mlp_learner):
    (tmp_path / "model.tflite").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        tflite.export_tflite(mlp_learner, tmp_path / "model.tflite", ways=5, shots=1)
    assert (tmp_path / "model.tflite").read_bytes() == b"keep"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["omniglot_64_filters", "mini_imagenet", "lslr",
                                     "transductive", "moving"])
def test_full_size_conv4_variants_match_tensorflow(tmp_path, variant):
    keras.utils.set_random_seed(0)
    options = {}
    if variant == "mini_imagenet":
        net = tfmeta.models.conv4((84, 84, 3), num_classes=et.WAYS, filters=32, max_pool=True)
    else:
        net = tfmeta.models.conv4((28, 28, 1), num_classes=et.WAYS,
                                  filters=64 if variant == "omniglot_64_filters" else 16)
    if variant == "lslr":
        options = {"inner_steps": 3, "learned_inner_learning_rates": "per_layer_per_step"}
    # Finn et al.'s inner learning rates: 0.4 on Omniglot, 0.01 on mini-ImageNet (0.1 makes this
    # untrained network's adaptation chaotic: 1e-6 input noise moves TensorFlow's own logits 0.3)
    rate = 0.01 if variant == "mini_imagenet" else 0.1
    mode = variant if variant in ("transductive", "moving") else "support"
    learner = et.compiled(tfmeta.MAML(net, inner_learning_rate=rate, eval_inner_steps=3,
                                      query_statistics=mode, **options))
    if variant == "lslr":
        for i, variable in enumerate(learner.inner_learning_rate_variables):
            variable.assign(np.array([0.05, 0.15, 0.1], np.float32) * (1 + i / 10))
    content, _ = export(learner, tmp_path, variant, query_statistics=mode)
    run = runners(content)
    for seed in (6, 7, 8):  # max-pooling gradients jump at near-ties: try several episodes
        task = et.episode(net.inputs[0].shape[1:], seed=seed)
        expected = et.learner_predict(learner, task)
        assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"] - expected)) < ATOL
        run["reset"]()
        for _ in range(3):
            run["train_step"](support_x=task["support_x"], support_y=task["support_y"])
        assert np.max(np.abs(run["infer"](query_x=task["query_x"])["outputs"] - expected)) < ATOL
