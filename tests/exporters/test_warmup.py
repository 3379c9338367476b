"""Warmup requests: a TFRecord of PredictionLog protos that reads back intact."""

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfmeta.exporters import warmup


def test_requests_round_trip_per_signature(tmp_path):
    requests = {
        "adapt_and_predict": {"support_x": np.ones((5, 3), np.float32),
                              "support_y": np.arange(5, dtype=np.int32)},
        "metadata": {},
    }
    path = warmup.write(tmp_path, requests, model_name="omniglot")
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    read = warmup.read(tmp_path)
    assert [name for name, _ in read] == ["adapt_and_predict", "metadata"]
    for (_, inputs), expected in zip(read, requests.values()):
        assert sorted(inputs) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(inputs[key], value)
            assert inputs[key].dtype == value.dtype


def test_records_are_prediction_logs_with_the_model_spec(tmp_path):
    warmup.write(tmp_path, {"serving_default": {"inputs": np.zeros((2, 4), np.float32)}}, "m")
    record = next(iter(tf.data.TFRecordDataset(warmup.path_in(tmp_path)))).numpy()
    log = prediction_log_pb2.PredictionLog.FromString(record)
    assert log.WhichOneof("log_type") == "predict_log"
    assert log.predict_log.request.model_spec.name == "m"
    assert log.predict_log.request.model_spec.signature_name == "serving_default"
