"""`export`: the single entry point the `tfmeta export` command calls."""

import os

import pytest

import tfmeta
from tfmeta.exporters import export_command


@pytest.fixture(scope="module")
def sinusoid_learner():
    learner = tfmeta.MAML(tfmeta.models.mlp(hidden_units=(4,)), inner_learning_rate=0.01,
                          eval_inner_steps=2)
    learner.compile(loss="mse")
    return learner


def test_saved_model_format_writes_a_version(tmp_path, sinusoid_learner):
    path = export_command.export(sinusoid_learner, tmp_path, format="saved_model", ways=None,
                                 shots=10, version=3)
    assert path == str(tmp_path / "3") and os.path.exists(os.path.join(path, "saved_model.pb"))
    assert tfmeta.exporters.read_metadata(path)["task"] == "regression"


def test_tflite_format_writes_a_file(tmp_path, sinusoid_learner):
    path = export_command.export(sinusoid_learner, tmp_path, format="tflite", ways=None, shots=10)
    assert path == str(tmp_path / "model.tflite") and os.path.getsize(path) > 0
    named = export_command.export(sinusoid_learner, tmp_path / "sine.tflite", format="tflite",
                                  ways=None, shots=10, query_size=4)
    assert named == str(tmp_path / "sine.tflite")


def test_bad_options_are_rejected(tmp_path, sinusoid_learner):
    with pytest.raises(ValueError, match="`format` to be one of \\['saved_model', 'tflite'\\]"):
        export_command.export(sinusoid_learner, tmp_path, format="onnx", ways=None, shots=10)
    with pytest.raises(ValueError, match="no `version` for format='tflite'"):
        export_command.export(sinusoid_learner, tmp_path, format="tflite", ways=None, shots=10,
                              version=2)
