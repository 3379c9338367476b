"""SavedModel export: what TF Serving would load gives the learner's outputs, in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import exporter_testing as et
import tfmeta
from tfmeta import query_statistics
from tfmeta.exporters import metadata, saved_model, warmup

RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from tfmeta.exporters import warmup

    requests = dict(np.load(sys.argv[1]))
    results, directories = {}, json.loads(sys.argv[3])
    for name, directory in directories.items():
        model = tf.saved_model.load(directory)
        results[name + "/predict_unadapted"] = model.signatures["predict_unadapted"](
            inputs=tf.constant(requests[name + "/query_x"]))["outputs"].numpy()
        results[name + "/serving_default"] = model.signatures["serving_default"](
            **{key: tf.constant(requests[name + "/" + key])
               for key in ("support_x", "support_y", "query_x")})["outputs"].numpy()
        results[name + "/adapt_and_predict"] = model.signatures["adapt_and_predict"](
            **{key: tf.constant(requests[name + "/" + key])
               for key in ("support_x", "support_y", "query_x")})["outputs"].numpy()
        for index, (signature, inputs) in enumerate(warmup.read(directory)):
            outputs = model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
            results[f"{name}/warmup/{index}/{signature}"] = next(iter(outputs.values())).numpy()
    np.savez(sys.argv[2], **results)
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, conv4_learner, mlp_learner):
    base = tmp_path_factory.mktemp("serving")
    learners = {"conv4": conv4_learner, "mlp": mlp_learner}
    paths = {name: saved_model.export_saved_model(learner, base / name, ways=et.WAYS,
                                                  shots=et.SHOTS)
             for name, learner in learners.items()}
    return learners, paths


@pytest.fixture(scope="module")
def reloaded(exported, tmp_path_factory):
    """Loads every export in a fresh Python process; returns its outputs."""
    learners, paths = exported
    directory = tmp_path_factory.mktemp("reload")
    requests = {}
    for name, learner in learners.items():
        task = et.episode(learner.model.inputs[0].shape[1:], queries=7, seed=11)
        requests.update({f"{name}/{key}": value for key, value in task.items()})
    np.savez(directory / "requests.npz", **requests)
    subprocess.run([sys.executable, "-c", RELOAD, str(directory / "requests.npz"),
                    str(directory / "results.npz"), json.dumps(paths)], check=True)
    return requests, dict(np.load(directory / "results.npz"))


@pytest.mark.parametrize("name", ["mlp", "conv4"])
def test_reloaded_predict_unadapted_predicts_like_the_learner(exported, reloaded, name):
    learners, _ = exported
    requests, results = reloaded
    expected = learners[name](requests[f"{name}/query_x"], training=False)
    assert np.max(np.abs(results[f"{name}/predict_unadapted"] - expected)) < 1e-5


@pytest.mark.parametrize("name", ["mlp", "conv4"])
def test_serving_default_without_preprocessing_adapts_like_adapt_and_predict(reloaded, name):
    _, results = reloaded
    np.testing.assert_array_equal(results[f"{name}/serving_default"],
                                  results[f"{name}/adapt_and_predict"])


@pytest.mark.parametrize("name", ["mlp", "conv4"])
def test_reloaded_adaptation_signature_matches_learner_predict(exported, reloaded, name):
    learners, _ = exported
    requests, results = reloaded
    task = {key: requests[f"{name}/{key}"] for key in ("support_x", "support_y", "query_x")}
    assert results[f"{name}/adapt_and_predict"].shape == (7, et.WAYS)  # any number of queries
    expected = et.learner_predict(learners[name], task)
    assert np.max(np.abs(results[f"{name}/adapt_and_predict"] - expected)) < 1e-5
    params, state = learners[name].adapt(task["support_x"], task["support_y"])
    forward, _ = query_statistics.predict_queries(
        learners[name].model, params, state, task["support_x"], task["query_x"],
        mode="support", training=False)
    assert np.max(np.abs(results[f"{name}/adapt_and_predict"] - forward)) < 1e-5


def test_warmup_requests_read_back_and_run_for_every_signature(exported, reloaded):
    _, paths = exported
    _, results = reloaded
    requests = warmup.read(paths["conv4"])
    signatures = ["adapt_and_predict", "metadata", "predict_unadapted", "serving_default"]
    assert sorted(signature for signature, _ in requests) == signatures
    ran = sorted(key.split("/")[-1] for key in results if key.startswith("conv4/warmup/"))
    assert ran == signatures


def test_saved_model_cli_lists_every_signature(exported):
    _, paths = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", paths["conv4"]], check=True,
                           capture_output=True, text=True).stdout
    for signature in ("serving_default", "adapt_and_predict", "predict_unadapted", "metadata"):
        assert f"signature_def['{signature}']" in shown
    for name in ("support_x", "support_y", "query_x"):
        assert f"inputs['{name}']" in shown


def test_metadata_is_in_assets_extra_and_in_a_signature(exported):
    learners, paths = exported
    info = metadata.read(paths["conv4"])
    assert (info["algorithm"], info["ways"], info["shots"]) == ("MAML", 5, 1)
    assert info["input_shape"] == [28, 28, 1] and info["inner_steps"] == 5
    assert info["inner_learning_rate"] == pytest.approx(0.1)
    assert info["tfmeta_version"] == tfmeta.__version__
    assert info["signatures"]["adapt_and_predict"]["inputs"]["support_x"]["shape"] == [5, 28, 28, 1]
    loaded = tf.saved_model.load(paths["conv4"])
    assert json.loads(loaded.signatures["metadata"]()["json"].numpy()) == info


BAD_REQUESTS = {
    "`support_x` with 5 examples (5-way 1-shot support set)":
        {"support_x": np.zeros((4, 28, 28, 1))},
    "`support_x` examples of shape (28, 28, 1)": {"support_x": np.zeros((5, 28, 27, 1))},
    "`support_y` class ids in 0..4": {"support_y": np.array([0, 1, 2, 3, 5])},
    "every class 0..4 in `support_y`": {"support_y": np.array([0, 1, 2, 3, 3])},
    "finite values in `support_x`": {"support_x": np.full((5, 28, 28, 1), np.nan)},
    "finite values in `query_x`": {"query_x": np.full((2, 28, 28, 1), np.inf)},
    "at least one example in `query_x`": {"query_x": np.zeros((0, 28, 28, 1))},
    "`support_y` with 5 examples": {"support_y": np.arange(6)},
}


@pytest.mark.parametrize("message", sorted(BAD_REQUESTS))
def test_bad_requests_fail_with_a_clear_error(exported, message):
    _, paths = exported
    adapt = tf.saved_model.load(paths["conv4"]).signatures["adapt_and_predict"]
    request = dict(et.episode((28, 28, 1)), **BAD_REQUESTS[message])
    request = {key: tf.constant(value, tf.int32 if key == "support_y" else tf.float32)
               for key, value in request.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace(".", r"\.")):
        adapt(**request)


def test_bad_requests_to_the_mlp_fail_with_a_clear_error(exported):
    _, paths = exported
    loaded = tf.saved_model.load(paths["mlp"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"examples of shape \(20,\)"):
        loaded.signatures["predict_unadapted"](inputs=tf.zeros([3, 21]))
    task = et.episode((20,))
    for key, value, message in [("support_x", np.zeros((6, 20), np.float32), "with 5 examples"),
                                ("support_y", np.arange(4, dtype=np.int32), "with 5 examples"),
                                ("support_y", -np.ones(5, np.int32), "class ids in 0..4")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["adapt_and_predict"](**dict(task, **{key: value}))


def test_protonet_export_has_embed_and_requires_every_class(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.ProtoNet(tfmeta.models.mlp(20, (16,), 8)))
    path = saved_model.export_saved_model(learner, tmp_path, ways=et.WAYS, shots=2)
    loaded = tf.saved_model.load(path)
    task = et.episode((20,), shots=2)
    outputs = loaded.signatures["adapt_and_predict"](**task)["outputs"]
    # negative squared distances: large values, so compare in float32 relative precision
    np.testing.assert_allclose(outputs, et.learner_predict(learner, task), rtol=1e-5, atol=1e-5)
    embeddings = loaded.signatures["embed"](inputs=task["query_x"])["embeddings"]
    np.testing.assert_allclose(embeddings, learner.model(task["query_x"]), atol=1e-6)
    missing_class = dict(task, support_y=np.array([0, 1, 2, 3, 3, 0, 1, 2, 3, 3], np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected every class 0..4"):
        loaded.signatures["adapt_and_predict"](**missing_class)


def test_learner_variables_such_as_meta_sgd_rates_are_saved(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.MetaSGD(tfmeta.models.mlp(20, (16,), et.WAYS),
                                         inner_learning_rate=0.1, eval_inner_steps=2))
    for variable in learner.inner_learning_rate_variables:
        variable.assign(np.random.default_rng(1).uniform(0.05, 0.5, variable.shape))
    path = saved_model.export_saved_model(learner, tmp_path, ways=et.WAYS, shots=1)
    task = et.episode((20,))
    outputs = tf.saved_model.load(path).signatures["adapt_and_predict"](**task)["outputs"]
    assert np.max(np.abs(outputs - et.learner_predict(learner, task))) < 1e-5
    assert metadata.read(path)["inner_learning_rate"] == "learned (per parameter or per step)"


def test_reptiles_carried_adam_moments_are_saved(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.Reptile(tfmeta.models.mlp(20, (16,), et.WAYS),
                                         inner_optimizer="adam", inner_learning_rate=0.01,
                                         eval_inner_steps=3, carry_inner_moments=True))
    step_count, *second_moments = learner.inner_moment_variables
    step_count.assign(40.0)
    for variable in second_moments:
        variable.assign(np.random.default_rng(1).uniform(1e-6, 1e-4, variable.shape))
    path = saved_model.export_saved_model(learner, tmp_path, ways=et.WAYS, shots=1)
    task = et.episode((20,))
    outputs = tf.saved_model.load(path).signatures["adapt_and_predict"](**task)["outputs"]
    assert np.max(np.abs(outputs - et.learner_predict(learner, task))) < 1e-5
    for variable in second_moments:
        variable.assign(tf.zeros_like(variable))  # the export keeps what it was given
    assert np.max(np.abs(outputs - et.learner_predict(learner, task))) > 1e-3


def test_reptiles_evaluation_minibatches_are_exported(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.Reptile(tfmeta.models.mlp(20, (16,), et.WAYS),
                                         inner_learning_rate=0.5, eval_inner_steps=4,
                                         eval_inner_batch_size=2))
    path = saved_model.export_saved_model(learner, tmp_path, ways=et.WAYS, shots=1)
    task = et.episode((20,))
    outputs = tf.saved_model.load(path).signatures["adapt_and_predict"](**task)["outputs"]
    assert np.max(np.abs(outputs - et.learner_predict(learner, task))) < 1e-5
    assert metadata.read(path)["inner_batch_size"] == 2
    whole = tfmeta.Reptile.from_config(dict(learner.get_config(), eval_inner_batch_size=None))
    whole.set_weights(learner.get_weights())
    whole = et.compiled(whole)
    assert np.max(np.abs(outputs - et.learner_predict(whole, task))) > 1e-3


def test_regression_export_takes_float_targets(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.MAML(tfmeta.models.mlp(), inner_learning_rate=0.01,
                                      eval_inner_steps=3), loss="mse")
    path = saved_model.export_saved_model(learner, tmp_path, ways=None, shots=10)
    rng = np.random.default_rng(0)
    task = {"support_x": rng.uniform(-5, 5, (10, 1)).astype(np.float32),
            "support_y": rng.uniform(-5, 5, (10, 1)).astype(np.float32),
            "query_x": rng.uniform(-5, 5, (50, 1)).astype(np.float32)}
    outputs = tf.saved_model.load(path).signatures["adapt_and_predict"](**task)["outputs"]
    batch = {key: value[None] for key, value in task.items()}
    batch["query_y"] = np.zeros((1, 50, 1), np.float32)
    assert np.max(np.abs(outputs - learner.predict(batch, verbose=0)[0])) < 1e-5
