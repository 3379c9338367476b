"""Serving-safe exports, as a deployer meets them: each query predicted alone equals it in a batch
(SavedModel in a fresh process, LiteRT), PNG bytes over TF Serving's REST JSON, bad requests."""

import json
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import exporter_testing as et
import rest_json
import tfmeta
from tfmeta.exporters import OnDeviceModel, image_inputs, saved_model, tflite

QUERIES_PER_CLASS = 3
EPISODES = 3
PREPROCESSING = tfmeta.data.omniglot_preprocessing()


@pytest.fixture(scope="module")
def learner(omniglot_vinyals):
    """Conv-4 (16 filters) second-order MAML in support mode, briefly trained on Omniglot;
    evaluation adapts with MAML's 10 steps."""
    keras.utils.set_random_seed(0)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=et.WAYS, filters=16)
    maml = et.compiled(tfmeta.MAML(net, inner_learning_rate=0.4, eval_inner_steps=10))
    train = omniglot_vinyals["train"].episodes(et.WAYS, 1, 5, meta_batch_size=4, seed=0)
    maml.fit(train, steps_per_epoch=20, verbose=0)
    return maml


@pytest.fixture(scope="module")
def episodes(omniglot_vinyals):
    """Real Omniglot test episodes: 5-way 1-shot, 3 queries per class."""
    test = omniglot_vinyals["test"].episodes(et.WAYS, 1, QUERIES_PER_CLASS, meta_batch_size=1,
                                             num_episodes=EPISODES, seed=3)
    return [{key: value[0].numpy() for key, value in batch.items()} for batch in test]


@pytest.fixture(scope="module")
def exported(learner, tmp_path_factory):
    path = saved_model.export_saved_model(learner, tmp_path_factory.mktemp("serving") / "omniglot",
                                          ways=et.WAYS, shots=1, preprocessing=PREPROCESSING)
    return path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, sys.argv[3])
    import rest_json

    model = tf.saved_model.load(sys.argv[1])
    job = json.loads(open(sys.argv[2]).read())
    results = {}
    for index, body in enumerate(job["rest_bodies"]):
        name, inputs = rest_json.decode_request(body, model)
        results[f"rest/{index}/{name}"] = model.signatures[name](**inputs)["outputs"].numpy()
    episodes = dict(np.load(job["episodes"]))
    for index in range(job["count"]):
        task = {key: tf.constant(episodes[f"{index}/{key}"])
                for key in ("support_x", "support_y", "query_x")}
        adapt = model.signatures["adapt_and_predict"]
        results[f"batch/{index}"] = adapt(**task)["outputs"].numpy()
        results[f"alone/{index}"] = np.concatenate([
            adapt(support_x=task["support_x"], support_y=task["support_y"],
                  query_x=task["query_x"][i:i + 1])["outputs"].numpy()
            for i in range(task["query_x"].shape[0])])
    np.savez(job["results"], **results)
""")


def run_fresh_process(path, tmp_path, episodes, rest_bodies):
    """Loads the SavedModel in a new Python process (no tfmeta import) and runs the requests."""
    arrays = {f"{i}/{key}": value for i, task in enumerate(episodes) for key, value in task.items()}
    np.savez(tmp_path / "episodes.npz", **arrays)
    job = {"episodes": str(tmp_path / "episodes.npz"), "count": len(episodes),
           "rest_bodies": list(rest_bodies), "results": str(tmp_path / "results.npz")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(path), str(tmp_path / "job.json"),
                    str(et.__file__).rsplit("/", 1)[0]], check=True)
    return dict(np.load(tmp_path / "results.npz"))


@pytest.fixture(scope="module")
def client_requests(omniglot_dir):
    """What a client sends: real Omniglot PNG files as REST JSON bodies (bytes as b64)."""
    support, queries = omniglot_png(omniglot_dir, 5), omniglot_png(omniglot_dir, 4, offset=5)
    labels = np.arange(5, dtype=np.int32)
    bodies = [
        rest_json.encode_request({"support_images": support, "support_y": labels,
                                  "query_images": queries}),  # no signature_name
        rest_json.encode_request({"support_images": support, "support_y": labels,
                                  "query_images": queries[:1]}, "adapt_and_predict_images"),
    ]
    return {"support": support, "queries": queries, "labels": labels, "bodies": bodies}


@pytest.fixture(scope="module")
def fresh_process(exported, episodes, client_requests, tmp_path_factory):
    """The results of every request, served by a new process that never imports tfmeta."""
    return run_fresh_process(exported, tmp_path_factory.mktemp("fresh"), episodes=episodes,
                             rest_bodies=client_requests["bodies"])


def test_each_query_alone_gets_its_batched_prediction_in_a_fresh_process(
        fresh_process, episodes, learner):
    for index, task in enumerate(episodes):
        batch, alone = fresh_process[f"batch/{index}"], fresh_process[f"alone/{index}"]
        np.testing.assert_allclose(alone, batch, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(alone.argmax(-1), batch.argmax(-1))
        np.testing.assert_allclose(batch, et.learner_predict(learner, task), rtol=1e-5, atol=1e-5)


def test_every_adaptation_signature_calls_one_stored_inner_loop(exported, learner):
    """The four adaptation signatures (floats, images, pixels, serving_default) share one traced
    adaptation: the SavedModel holds the 10 evaluation steps' kernel gradients once."""
    proto = saved_model_pb2.SavedModel.FromString(
        (pathlib.Path(exported) / "saved_model.pb").read_bytes())
    library = proto.meta_graphs[0].graph_def.library.function
    kernel_gradients = [sum(node.op == "Conv2DBackpropFilter" for node in function.node_def)
                        for function in library]
    convolutions = sum(isinstance(layer, keras.layers.Conv2D) for layer in learner.model.layers)
    assert sorted(kernel_gradients)[-1] == sum(kernel_gradients) == 10 * convolutions


@pytest.fixture(scope="module")
def litert_models(learner, episodes, tmp_path_factory):
    """LiteRT exports taking one query per call and a whole episode's queries per call."""
    directory = tmp_path_factory.mktemp("litert")
    queries = len(episodes[0]["query_x"])
    models = {}
    for query_size in (1, queries):
        path = directory / f"q{query_size}.tflite"
        tflite.export_tflite(learner, path, ways=et.WAYS, shots=1, query_size=query_size,
                             preprocessing=PREPROCESSING,
                             verification_episode=dict(episodes[0],
                                                       query_x=episodes[0]["query_x"][:query_size]))
        models[query_size] = OnDeviceModel(path, num_threads=1)
    return models


def test_litert_predicts_each_query_alone_as_in_a_batch(litert_models, episodes):
    one, batched = litert_models[1], litert_models[len(episodes[0]["query_x"])]
    for task in episodes:
        together = batched.adapt_and_predict(task["support_x"], task["support_y"], task["query_x"])
        alone = np.concatenate([one.adapt_and_predict(task["support_x"], task["support_y"], q[None])
                                for q in task["query_x"]])
        np.testing.assert_allclose(alone, together, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(alone.argmax(-1), together.argmax(-1))
        one.reset()
        for _ in range(one.metadata["inner_steps"]):
            one.train_step(task["support_x"], task["support_y"])
        on_device = np.concatenate([one.infer(q[None]) for q in task["query_x"]])
        np.testing.assert_allclose(on_device, together, rtol=1e-4, atol=1e-4)


def test_litert_matches_the_saved_model_after_the_learners_ten_evaluation_steps(
        litert_models, loaded, episodes):
    """Within 1e-4 (relative to the logits' scale) after all 10 evaluation steps."""
    adapt = loaded.signatures["adapt_and_predict"]
    model = litert_models[len(episodes[0]["query_x"])]
    assert model.metadata["inner_steps"] == 10
    for task in episodes:
        expected = adapt(**{k: tf.constant(task[k]) for k in ("support_x", "support_y",
                                                              "query_x")})["outputs"].numpy()
        received = model.adapt_and_predict(task["support_x"], task["support_y"], task["query_x"])
        assert np.max(np.abs(received - expected)) <= 1e-4 * (1 + np.max(np.abs(expected)))


def omniglot_png(omniglot_dir, count, offset=0):
    """`count` real Omniglot PNG files (105x105, strokes dark), one per character folder."""
    characters = sorted((omniglot_dir / "test").iterdir())[offset:offset + count]
    return [(character / "01.png").read_bytes() for character in characters]


def training_pixels(encoded):
    """What training feeds the model for these files: tfmeta.data's decoding and preprocessing."""
    return np.stack([tfmeta.data.preprocessing.to_model_inputs(PREPROCESSING.decode(data)).numpy()
                     for data in encoded])


def test_png_bytes_sent_as_rest_json_get_the_float_paths_outputs(
        fresh_process, client_requests, learner):
    labels = client_requests["labels"]
    expected = et.learner_predict(learner, {
        "support_x": training_pixels(client_requests["support"]), "support_y": labels,
        "query_x": training_pixels(client_requests["queries"])})
    np.testing.assert_allclose(fresh_process["rest/0/serving_default"], expected,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fresh_process["rest/1/adapt_and_predict_images"], expected[:1],
                               rtol=1e-5, atol=1e-5)


def test_any_encoding_or_size_of_an_image_gets_the_training_preprocessing(
        loaded, learner, omniglot_dir):
    """Whatever a client sends (RGB PNG, gray or RGBA pixels at 105x105), the graph applies
    exactly what training applied to that image; no float scaling is left to the client."""
    model = loaded
    support = omniglot_png(omniglot_dir, 5)
    gray = np.stack([tf.io.decode_png(data, channels=1).numpy() for data in support])
    as_rgb = [tf.io.encode_png(np.repeat(image, 3, axis=-1)).numpy() for image in gray]
    rgba = np.concatenate([np.repeat(gray, 3, -1), np.full_like(gray, 255)], -1)
    labels = np.arange(5, dtype=np.int32)
    from_rgb_png = model.signatures["adapt_and_predict_images"](
        support_images=tf.constant(as_rgb), support_y=labels,
        query_images=tf.constant(as_rgb))["outputs"].numpy()
    expected = training_pixels(as_rgb)
    np.testing.assert_allclose(
        from_rgb_png, et.learner_predict(learner, {"support_x": expected, "support_y": labels,
                                                   "query_x": expected}), rtol=1e-5, atol=1e-5)
    from_pixels = model.signatures["adapt_and_predict_pixels"](
        support_pixels=tf.constant(gray), support_y=labels,
        query_pixels=tf.constant(rgba))["outputs"].numpy()
    to_inputs = tfmeta.data.preprocessing.to_model_inputs
    support_x = np.stack([to_inputs(PREPROCESSING(image)).numpy() for image in gray])
    query_x = np.stack([to_inputs(PREPROCESSING(image)).numpy() for image in rgba])
    np.testing.assert_allclose(
        from_pixels, et.learner_predict(learner, {"support_x": support_x, "support_y": labels,
                                                  "query_x": query_x}), rtol=1e-5, atol=1e-5)
    info = json.loads(model.signatures["metadata"]()["json"].numpy())
    assert info["preprocessing"]["invert"] is True and info["preprocessing"]["channels"] == 1
    assert info["query_statistics"] == "support" and info["query_independent"] is True


@pytest.mark.parametrize("request_change, message", [
    ({"support_images": [b"not an image"] * 5}, "Unknown image file format"),
    ({"support_images": [b"x"] * 4}, r"`support_images` with 5 examples"),
    ({"support_y": [0, 1, 2, 3, 3]}, r"Expected every class 0\.\.4 in `support_y`"),
    ({"query_images": []}, "at least one example in `query_images`"),
])
def test_bad_image_requests_fail_with_a_clear_error(loaded, omniglot_dir, request_change,
                                                    message):
    request = {"support_images": omniglot_png(omniglot_dir, 5), "support_y": list(range(5)),
               "query_images": omniglot_png(omniglot_dir, 2)}
    request.update(request_change)
    model = loaded
    inputs = {"support_images": tf.constant(request["support_images"], tf.string),
              "support_y": tf.constant(request["support_y"], tf.int32),
              "query_images": tf.constant(request["query_images"], tf.string)}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.signatures["serving_default"](**inputs)


def test_litert_graph_refuses_wrong_sizes_and_bad_labels_without_touching_the_state(
        litert_models, episodes):
    model = litert_models[1]
    runners = model._runners  # the raw signature runners an app without the wrapper calls
    model.reset()
    before = model.get_weights()
    for size in (before.size - 1, before.size + 1):
        with pytest.raises(RuntimeError):
            runners["set_weights"](weights=np.zeros(size, np.float32))
        np.testing.assert_array_equal(model.get_weights(), before)
    task = episodes[0]
    for labels in ([0, 1, 2, 3, 3], [0, 1, 2, 3, 7]):
        labels = np.array(labels, np.int32)
        loss = runners["train_step"](support_x=task["support_x"], support_y=labels)["loss"]
        assert np.isnan(loss)
        np.testing.assert_array_equal(model.get_weights(), before)
        outputs = runners["adapt_and_predict"](support_x=task["support_x"], support_y=labels,
                                               query_x=task["query_x"][:1])["outputs"]
        assert np.all(np.isnan(outputs))


@pytest.mark.parametrize("call, message", [
    (lambda m, t: m.set_weights(np.zeros(m.get_weights().size - 1)),
     r"Expected `weights` of shape \(\d+,\)"),
    (lambda m, t: m.adapt_and_predict(t["support_x"], [0, 1, 2, 3, 3], t["query_x"][:1]),
     r"Expected every class 0\.\.4 in `support_y`. Received no example of class\(es\) \[4\]"),
    (lambda m, t: m.train_step(t["support_x"], [0, 1, 2, 3, 5]),
     r"class ids in 0\.\.4. Received values 0\.\.5"),
    (lambda m, t: m.train_step(t["support_x"], [0.5, 1, 2, 3, 4]), "integer class ids"),
    (lambda m, t: m.infer(t["query_x"][:2]), r"Expected `query_x` of shape \(1, 28, 28, 1\)"),
    (lambda m, t: m.infer(np.full((1, 28, 28, 1), np.nan)), "finite values in `query_x`"),
])
def test_on_device_model_raises_a_clear_error_for_each_bad_call(litert_models, episodes, call,
                                                                message):
    model = litert_models[1]
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        call(model, episodes[0])
    np.testing.assert_array_equal(model.get_weights(), before)


def test_a_transductive_learner_is_refused_or_converted_by_name(tmp_path, learner):
    transductive = et.compiled(tfmeta.MAML(learner.model, inner_learning_rate=0.4,
                                           eval_inner_steps=10, query_statistics="transductive"))
    with pytest.raises(ValueError, match="Retrain with query_statistics='support'"):
        saved_model.export_saved_model(transductive, tmp_path / "m", ways=et.WAYS, shots=1)
    with pytest.raises(ValueError, match="does not depend on the other queries"):
        tflite.export_tflite(transductive, tmp_path / "m.tflite", ways=et.WAYS, shots=1)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tflite").exists()
    path = saved_model.export_saved_model(transductive, tmp_path / "m", ways=et.WAYS, shots=1,
                                          query_statistics="support")
    info = tfmeta.exporters.read_metadata(path)
    assert (info["query_statistics"], info["query_independent"]) == ("support", True)
    assert transductive.query_statistics == "transductive"  # the learner itself is unchanged
    kept = saved_model.export_saved_model(transductive, tmp_path / "m", ways=et.WAYS, shots=1,
                                          query_statistics="transductive")
    assert tfmeta.exporters.read_metadata(kept)["query_independent"] is False


def test_example_images_encode_to_png_bytes():
    images = image_inputs.example_images(2, PREPROCESSING)
    encoded = image_inputs.encode_png(images)
    np.testing.assert_array_equal(tf.io.decode_png(encoded[1]).numpy(), images[1])


@pytest.mark.slow  # about a minute; the fast exporter tests cover TaskNormalization too
def test_a_task_normalization_learner_predicts_each_query_alone_as_in_a_batch_when_served(
        omniglot_vinyals, episodes, tmp_path):
    """TaskNorm-I Conv-4 (support mode): alone through LiteRT (one query per call) and alone
    through the SavedModel in a fresh process equal the SavedModel's whole-batch predictions."""
    keras.utils.set_random_seed(0)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=et.WAYS, filters=8, normalization="task")
    maml = et.compiled(tfmeta.MAML(net, inner_learning_rate=0.4, eval_inner_steps=3))
    maml.fit(omniglot_vinyals["train"].episodes(et.WAYS, 1, 5, meta_batch_size=4, seed=0),
             steps_per_epoch=10, verbose=0)
    path = saved_model.export_saved_model(maml, tmp_path / "saved", ways=et.WAYS, shots=1)
    served = run_fresh_process(path, tmp_path, episodes=episodes, rest_bodies=[])
    tflite.export_tflite(maml, tmp_path / "q1.tflite", ways=et.WAYS, shots=1, query_size=1)
    one = OnDeviceModel(tmp_path / "q1.tflite", num_threads=1)
    for index, task in enumerate(episodes):
        batch = served[f"batch/{index}"]
        np.testing.assert_allclose(served[f"alone/{index}"], batch, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch, et.learner_predict(maml, task), rtol=1e-5, atol=1e-5)
        on_device = np.concatenate([one.adapt_and_predict(task["support_x"], task["support_y"],
                                                          q[None]) for q in task["query_x"]])
        np.testing.assert_allclose(on_device, batch, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(on_device.argmax(-1), batch.argmax(-1))
