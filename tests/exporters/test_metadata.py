"""Export metadata: what a client needs, JSON-ready, written where a client can read it."""

import json

import pytest

import exporter_testing as et
import tfmeta
from tfmeta.exporters import metadata, task_format


def test_metadata_describes_algorithm_task_and_inner_loop(conv4_learner):
    task = task_format.task_format(conv4_learner, 5, 1)
    info = metadata.export_metadata(conv4_learner, task, fmt="saved_model", extra={"x": 1})
    assert info["algorithm"] == "MAML" and info["format"] == "saved_model"
    assert (info["ways"], info["shots"], info["support_size"]) == (5, 1, 5)
    assert info["input_shape"] == [28, 28, 1] and info["target_dtype"] == "int32"
    assert info["inner_steps"] == 5 and info["inner_learning_rate"] == pytest.approx(0.1)
    assert info["query_statistics"] == "support" and info["query_independent"] is True
    assert info["tfmeta_version"] == tfmeta.__version__
    assert info["x"] == 1
    json.dumps(info)


def test_anil_metadata_names_the_adapted_weights():
    net = tfmeta.models.mlp(20, (8,), et.WAYS)
    learner = et.compiled(tfmeta.ANIL(net))
    info = metadata.export_metadata(learner, task_format.task_format(learner, 5, 1), "tflite")
    assert info["adapted_weights"] == [v.path for v in net.layers[-1].trainable_weights]


def test_write_and_read_in_assets_extra(tmp_path):
    path = metadata.write(tmp_path, {"ways": 5})
    assert path == str(tmp_path / "assets.extra" / "tfmeta.json")
    assert metadata.read(tmp_path) == {"ways": 5}


def test_unserializable_extras_fail_at_export(mlp_learner):
    task = task_format.task_format(mlp_learner, 5, 1)
    with pytest.raises(TypeError):
        metadata.export_metadata(mlp_learner, task, fmt="tflite", extra={"bad": object()})
