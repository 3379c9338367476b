"""Exports of the one-pass learners (R2-D2, Matching and Relation Networks, Conditional Neural
Processes): the SavedModel's `adapt_and_predict` is the learner's own forward pass."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import exporter_testing as et
import tfmeta
from tfmeta.exporters import metadata, saved_model

CLASSIFIERS = ("r2d2", "r2d2_logistic", "matching", "matching_fce", "matching_euclidean",
               "relation")


def classifier(kind, seed=0, query_statistics="moving"):
    """A compiled 5-way one-pass classifier over a small Conv-4 (with BatchNorm)."""
    keras.utils.set_random_seed(seed)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=None, filters=8)
    common = dict(ways=et.WAYS, query_statistics=query_statistics)
    if kind.startswith("r2d2"):
        head = "logistic" if kind == "r2d2_logistic" else "ridge"
        return et.compiled(tfmeta.R2D2(net, head=head, **common))
    if kind.startswith("matching"):
        return et.compiled(tfmeta.MatchingNetworks(
            net, full_context_embeddings=kind == "matching_fce",
            similarity="euclidean" if kind == "matching_euclidean" else "cosine", **common))
    maps = keras.Model(net.input, net.get_layer("block3_relu").output)
    module = tfmeta.models.relation_module(maps.outputs[0].shape[1:], filters=8)
    return et.compiled(tfmeta.RelationNetwork(maps, module, **common),
                       loss=tfmeta.losses.OneHotMeanSquaredError())


def trained(learner, seed=3):
    """`learner` after one meta-update on random images (BatchNorm statistics move)."""
    batch = et.episode((28, 28, 1), shots=2, seed=seed)
    learner.train_on_batch({**{k: v[None] for k, v in batch.items()},
                            "query_y": np.zeros((1, et.QUERIES), np.int32)})
    return learner


def neural_process(seed=0):
    keras.utils.set_random_seed(seed)
    cnp = tfmeta.ConditionalNeuralProcess(
        tfmeta.models.cnp_encoder(units=(32, 32)),
        tfmeta.models.cnp_decoder(representation_dim=32, units=(32,)))
    return et.compiled(cnp, loss=tfmeta.losses.GaussianNegativeLogLikelihood())


def gp_task(shots=10, queries=7, seed=0):
    episode = next(iter(tfmeta.data.GaussianProcessTasks().episodes(
        shots, queries, meta_batch_size=None, seed=seed)))
    return {key: episode[key].numpy() for key in ("support_x", "support_y", "query_x")}


# The variants of a learner (logistic head, full-context embeddings, euclidean) are `slow`.
@pytest.mark.parametrize("kind", [
    kind if kind in ("r2d2", "matching", "relation") else pytest.param(kind, marks=pytest.mark.slow)
    for kind in CLASSIFIERS
])
def test_classifier_saved_model_adapts_like_the_learner(tmp_path, kind):
    learner = trained(classifier(kind))
    path = saved_model.export_saved_model(learner, tmp_path, ways=et.WAYS, shots=2)
    loaded = tf.saved_model.load(path)
    task = et.episode((28, 28, 1), shots=2, queries=7, seed=4)
    served = loaded.signatures["adapt_and_predict"](**task)
    expected = et.learner_predict(learner, task)
    assert served["outputs"].shape == (7, et.WAYS)
    assert np.max(np.abs(served["outputs"] - expected)) < 1e-5
    np.testing.assert_array_equal(served["classes"], np.argmax(served["outputs"], -1))
    embeddings = loaded.signatures["embed"](inputs=task["query_x"])["embeddings"]
    np.testing.assert_allclose(embeddings, np.reshape(learner.model(task["query_x"]), (7, -1)),
                               atol=1e-5)
    assert metadata.read(path)["algorithm"] == type(learner).__name__
    missing_class = dict(task, support_y=np.array([0, 1, 2, 3, 3] * 2, np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected every class 0..4"):
        loaded.signatures["adapt_and_predict"](**missing_class)


def test_neural_process_saved_model_returns_the_learner_mean_and_stddev(tmp_path):
    cnp = neural_process()
    path = saved_model.export_saved_model(cnp, tmp_path, ways=None, shots=10)
    loaded = tf.saved_model.load(path)
    task = gp_task()
    served = loaded.signatures["serving_default"](**task)
    batch = {key: value[None] for key, value in task.items()}
    expected = cnp.predict_on_batch({**batch, "query_y": np.zeros((1, 7, 1), np.float32)})[0]
    assert served["outputs"].shape == (7, 1, 2)
    assert np.max(np.abs(served["outputs"] - expected)) < 1e-5
    np.testing.assert_array_equal(served["mean"], expected[..., 0])
    np.testing.assert_array_equal(served["stddev"], expected[..., 1])
    info = metadata.read(path)
    assert (info["task"], info["input_shape"], info["target_shape"], info["outputs_shape"]) == (
        "regression", [1], [1], [1, 2])
    assert info["signatures"]["adapt_and_predict"]["outputs"] == ["outputs", "mean", "stddev"]
    assert "embed" not in loaded.signatures and "predict_unadapted" not in loaded.signatures
    for key, value, message in [
        ("support_x", task["support_x"][:9], "`support_x` with 10 examples"),
        ("support_y", np.full((10, 1), np.nan, np.float32), "finite values in `support_y`"),
        ("query_x", np.zeros((3, 2), np.float32), r"`query_x` examples of shape \(1,\)"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["adapt_and_predict"](**dict(task, **{key: value}))


def test_neural_process_export_refuses_ways_and_query_statistics_before_writing(tmp_path):
    cnp = neural_process()
    with pytest.raises(ValueError, match="Expected ways=None for ConditionalNeuralProcess"):
        saved_model.export_saved_model(cnp, tmp_path / "ways", ways=5, shots=10)
    with pytest.raises(ValueError, match="Expected query_statistics=None for "
                                         "ConditionalNeuralProcess"):
        saved_model.export_saved_model(cnp, tmp_path / "mode", ways=None, shots=10,
                                       query_statistics="support")
    assert not (tmp_path / "mode").exists() and not (tmp_path / "ways").exists()


def test_neural_process_adapts_on_the_device_like_the_learner(tmp_path):
    from tfmeta.exporters import tflite, tflite_ops

    cnp = neural_process()
    path = tmp_path / "cnp.tflite"
    info = tflite.export_tflite(cnp, path, ways=None, shots=10, query_size=5)
    content = path.read_bytes()
    assert tflite_ops.custom_operators(content) == []
    assert info["weights_layout"] == [{"name": "representation", "shape": [32], "offset": 0,
                                       "size": 32, "trainable": False}]
    interpreter = tflite.interpreter(content)
    run = {name: interpreter.get_signature_runner(name)
           for name in interpreter.get_signature_list()}
    task = gp_task(queries=5, seed=2)
    expected = tflite.learner_predictions(cnp, task)
    assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"] - expected)) < 1e-4
    loss = run["train_step"](support_x=task["support_x"], support_y=task["support_y"])["loss"]
    on_support = tflite.learner_predictions(cnp, dict(task, query_x=task["support_x"]))
    nll = tfmeta.losses.GaussianNegativeLogLikelihood()(task["support_y"], on_support)
    assert abs(float(loss) - float(nll)) < 1e-4
    assert np.max(np.abs(run["infer"](query_x=task["query_x"])["outputs"] - expected)) < 1e-4
    other = gp_task(queries=5, seed=3)  # infer keeps the stored task, not the queries' own
    assert not np.allclose(run["infer"](query_x=other["query_x"])["outputs"],
                           tflite.learner_predictions(cnp, other), atol=1e-3)
    reset = run["reset"]()["weights"]
    np.testing.assert_array_equal(reset, np.zeros(32, np.float32))
    on_device = tfmeta.exporters.OnDeviceModel(path)  # checks calls against the metadata
    received = on_device.adapt_and_predict(task["support_x"], task["support_y"], task["query_x"])
    assert np.max(np.abs(received - expected)) < 1e-4
    with pytest.raises(ValueError, match="support_y"):
        on_device.adapt_and_predict(task["support_x"], task["support_y"][:9], task["query_x"])


# One case per learner, both statistics modes, by default; the other pairs are `slow`.
@pytest.mark.parametrize("kind, query_statistics", [
    ("matching", "moving"), ("relation", "moving"), ("r2d2", "support"),
    ("r2d2_logistic", "moving"),
    *(pytest.param(kind, mode, marks=pytest.mark.slow) for kind, mode in [
        ("matching", "support"), ("matching_fce", "moving"), ("matching_euclidean", "moving"),
        ("relation", "support"), ("r2d2", "moving"), ("r2d2_logistic", "support")]),
])
def test_one_pass_classifiers_adapt_on_the_device_like_the_learner(
        tmp_path, kind, query_statistics):
    from tfmeta.exporters import tflite, tflite_ops

    learner = trained(classifier(kind, query_statistics=query_statistics))
    path = tmp_path / "model.tflite"
    info = tflite.export_tflite(learner, path, ways=et.WAYS, shots=2, query_size=et.QUERIES)
    content = path.read_bytes()
    assert tflite_ops.custom_operators(content) == []
    state = {"r2d2": ["ridge_weights"], "r2d2_logistic": ["logistic_weights"]}.get(
        kind, ["support_embeddings", "support_labels"])
    assert [entry["name"] for entry in info["weights_layout"][:len(state)]] == state
    interpreter = tflite.interpreter(content)
    run = {name: interpreter.get_signature_runner(name)
           for name in interpreter.get_signature_list()}
    task = et.episode((28, 28, 1), shots=2, seed=5)
    expected = tflite.learner_predictions(learner, task)
    scale = 1.0 + np.max(np.abs(expected))
    assert np.max(np.abs(run["adapt_and_predict"](**task)["outputs"] - expected)) < 1e-4 * scale
    loss = run["train_step"](support_x=task["support_x"], support_y=task["support_y"])["loss"]
    on_support = tflite.learner_predictions(learner, dict(task, query_x=task["support_x"]))
    assert abs(float(loss) - float(learner.task_loss(task["support_y"], on_support))) < 1e-4
    inferred = run["infer"](query_x=task["query_x"])["outputs"]
    assert np.max(np.abs(inferred - expected)) < 1e-4 * scale
    embeddings = run["embed"](inputs=task["query_x"])["embeddings"]
    np.testing.assert_allclose(embeddings, np.reshape(learner.model(task["query_x"]),
                                                      (et.QUERIES, -1)), atol=1e-5)
    missing_class = np.array([0, 1, 2, 3, 3] * 2, np.int32)
    outputs = run["adapt_and_predict"](**dict(task, support_y=missing_class))["outputs"]
    assert np.isnan(outputs).all()


def test_support_instance_statistics_are_refused_on_the_device(tmp_path):
    from tfmeta.exporters import tflite

    learner = classifier("relation", query_statistics="support_instance")
    with pytest.raises(ValueError, match="Expected RelationNetwork with query_statistics "
                                         "'support', 'moving' or 'transductive'"):
        tflite.export_tflite(learner, tmp_path / "model.tflite", ways=et.WAYS, shots=1)
