"""Export metadata: what a client needs to call an exported model correctly.

The same JSON object goes into a SavedModel's `assets.extra/tfmeta.json` and
its `metadata` signature, and into a TFLite model's `metadata` signature:
the algorithm, N-way K-shot, input and target shapes, the evaluation inner
loop (steps, learning rate), the signatures and the tfmeta version.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfmeta.exporters import adaptation_plan
from tfmeta.exporters.task_format import TaskFormat
from tfmeta.learners.base import MetaLearner
from tfmeta.version import __version__

FORMAT_VERSION = 1
ASSETS_EXTRA = "assets.extra"  # TF Serving's folder for files besides the model
FILENAME = "tfmeta.json"


def export_metadata(
    learner: MetaLearner, task: TaskFormat, fmt: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata of one export.

    Args:
        learner: the exported learner.
        task: the exported task format.
        fmt: what was exported (`"saved_model"`, `"saved_model_adapted"`,
            `"tflite"`).
        extra: format-specific entries (signatures, query size, ...).

    Returns:
        A JSON-serializable dict.
    """
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "tfmeta_version": __version__,
        **adaptation_plan.describe(learner),
        **task.to_json(),
    }
    info.update(extra or {})
    json.dumps(info)  # fails early, here, on anything not serializable
    return info


def path_in(saved_model_dir: str | os.PathLike) -> str:
    """The metadata file's path inside a SavedModel directory."""
    return os.path.join(os.fspath(saved_model_dir), ASSETS_EXTRA, FILENAME)


def write(saved_model_dir: str | os.PathLike, info: dict[str, Any]) -> str:
    """Writes `info` as `<saved_model_dir>/assets.extra/tfmeta.json`; returns the path."""
    path = path_in(saved_model_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(info, file, indent=2, sort_keys=True)
        file.write("\n")
    return path


def read(saved_model_dir: str | os.PathLike) -> dict[str, Any]:
    """Reads the metadata of an exported SavedModel (e.g. a version directory).

    Example:

    ```python
    info = tfmeta.exporters.read_metadata("models/omniglot/1")
    info["ways"], info["shots"], info["input_shape"]
    ```
    """
    with open(path_in(saved_model_dir), encoding="utf-8") as file:
        return json.load(file)
