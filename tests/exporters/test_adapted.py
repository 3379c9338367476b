"""Adapted-model export: one task's adapted model served as a plain predictor."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import exporter_testing as et
import tfmeta
from tfmeta.exporters import adapted, metadata, warmup


def test_adapted_maml_predicts_like_the_learner_on_that_task(tmp_path, conv4_learner):
    task = et.episode((28, 28, 1), seed=8)
    path = adapted.export_adapted(conv4_learner, task["support_x"], task["support_y"], tmp_path)
    assert path == str(tmp_path / "1")
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["serving_default"](inputs=task["query_x"])["outputs"]
    assert np.max(np.abs(outputs - et.learner_predict(conv4_learner, task))) < 1e-5
    info = metadata.read(path)
    assert (info["format"], info["ways"], info["shots"]) == ("saved_model_adapted", 5, 1)
    for signature, inputs in warmup.read(path):
        loaded.signatures[signature](**inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite values in `inputs`"):
        loaded.signatures["serving_default"](inputs=np.full((1, 28, 28, 1), np.nan, np.float32))


def test_adapted_protonet_serves_the_task_prototypes(tmp_path):
    keras.utils.set_random_seed(0)
    learner = et.compiled(tfmeta.ProtoNet(tfmeta.models.mlp(20, (16,), 8)))
    task = et.episode((20,), shots=3)
    path = adapted.export_adapted(learner, task["support_x"], task["support_y"], tmp_path, 4)
    outputs = tf.saved_model.load(path).signatures["serving_default"](inputs=task["query_x"])
    np.testing.assert_allclose(outputs["outputs"], et.learner_predict(learner, task),
                               rtol=1e-5, atol=1e-5)


def test_support_sets_that_are_not_n_way_k_shot_are_rejected(tmp_path, mlp_learner):
    task = et.episode((20,))
    with pytest.raises(ValueError, match="`shots` examples of each class"):
        adapted.export_adapted(mlp_learner, task["support_x"][:4],
                               np.array([0, 1, 2, 2], np.int32), tmp_path)
    with pytest.raises(ValueError, match="support_x` of shape \\(5, 20\\)"):
        adapted.export_adapted(mlp_learner, task["support_x"][:, :10], task["support_y"], tmp_path)


def test_fine_tune_has_no_adapted_export(tmp_path):
    learner = et.compiled(tfmeta.FineTune(tfmeta.models.mlp(20, (8,), 8), ways=et.WAYS))
    task = et.episode((20,))
    with pytest.raises(ValueError, match="GradientLearner .* or ProtoNet"):
        adapted.export_adapted(learner, task["support_x"], task["support_y"], tmp_path)
    assert tfmeta.exporters.versions(tmp_path) == []


@pytest.mark.parametrize("kind", [
    "maml", "protonet",
    *(pytest.param(kind, marks=pytest.mark.slow) for kind in ("maml_task_norm", "maml_layer_norm")),
])
def test_adapted_export_in_every_mode_predicts_each_query_like_the_learner(tmp_path, kind):
    normalization = {"maml_task_norm": "task", "maml_layer_norm": "layer"}.get(kind, "batch")
    for mode in ("support", "support_instance", "transductive", "moving"):
        keras.utils.set_random_seed(0)
        if kind.startswith("maml"):
            learner = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), et.WAYS, filters=4,
                                                      normalization=normalization),
                                  inner_learning_rate=0.1, eval_inner_steps=2,
                                  query_statistics=mode)
        else:
            learner = tfmeta.ProtoNet(tfmeta.models.conv4((28, 28, 1), None, filters=4),
                                      query_statistics=mode)
        task = et.episode((28, 28, 1), seed=9)
        path = adapted.export_adapted(et.compiled(learner), task["support_x"],
                                      task["support_y"], tmp_path / mode,
                                      query_statistics=mode)
        served = tf.saved_model.load(path).signatures["serving_default"]
        outputs = served(inputs=task["query_x"])["outputs"].numpy()
        if not (kind == "protonet" and mode == "transductive"):  # support embedded alone
            np.testing.assert_allclose(outputs, et.learner_predict(learner, task),
                                       rtol=1e-4, atol=1e-4, err_msg=mode)
        if mode != "transductive":
            alone = served(inputs=task["query_x"][:1])["outputs"].numpy()
            np.testing.assert_allclose(alone, outputs[:1], rtol=1e-5, atol=1e-5, err_msg=mode)
