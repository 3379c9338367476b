"""Exporters: SavedModel for TF Serving and TFLite for on-device adaptation (`tfmeta.exporters`).

- `export_saved_model`: the meta-learned model for TF Serving, with an
  `adapt_and_predict` signature that runs the learner's adaptation in the
  graph, written atomically as `<base_dir>/<version>/` with warmup requests
  and metadata.
- `export_adapted`: a model adapted to one task, as a plain predictor.
- `export_tflite`: a `.tflite` model that adapts on the device with stock
  LiteRT (builtin ops only, no Flex); `OnDeviceModel` runs one with every
  call checked against its metadata.
- `export`: one entry point for the `tfmeta export` command.
- `policy.export_policy` and `policy_tflite.export_policy_tflite`: meta-RL
  policies that adapt from rollouts, for TF Serving and for LiteRT;
  `OnDevicePolicy` runs the latter with every call checked.
"""

from tfmeta.exporters.adapted import export_adapted
from tfmeta.exporters.export_command import FORMATS, export
from tfmeta.exporters.layer_program import SUPPORTED_LAYERS, UnsupportedModelError
from tfmeta.exporters.metadata import read as read_metadata
from tfmeta.exporters.on_device import OnDeviceModel, OnDevicePolicy
from tfmeta.exporters.saved_model import export_saved_model
from tfmeta.exporters.serving_layout import versions
from tfmeta.exporters.tflite import export_tflite
from tfmeta.exporters.tflite_ops import custom_operators, operator_counts

__all__ = [
    "FORMATS",
    "OnDeviceModel",
    "OnDevicePolicy",
    "SUPPORTED_LAYERS",
    "UnsupportedModelError",
    "custom_operators",
    "export",
    "export_adapted",
    "export_saved_model",
    "export_tflite",
    "operator_counts",
    "read_metadata",
    "versions",
]
