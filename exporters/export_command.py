"""One entry point for every export format, for the `tfmeta export` command."""

from __future__ import annotations

import os

from tfmeta.argument_validation import check_choice
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.exporters.saved_model import export_saved_model
from tfmeta.exporters.tflite import export_tflite
from tfmeta.learners.base import MetaLearner

FORMATS = ("saved_model", "tflite")
TFLITE_FILENAME = "model.tflite"


def export(
    learner: MetaLearner,
    destination: str | os.PathLike,
    *,
    format: str = "saved_model",  # noqa: A002 - the name the command's flag uses
    ways: int | None,
    shots: int,
    version: int | None = None,
    query_size: int = 1,
    preprocessing: ImagePreprocessing | None = None,
    query_statistics: str | None = None,
    overwrite: bool = False,
) -> str:
    """Exports a learner in one format; returns what was written.

    Args:
        learner: a compiled tfmeta learner.
        destination: `saved_model`: the TF Serving model base directory
            (the version goes in `<destination>/<version>/`). `tflite`: a
            `.tflite` file, or a directory to hold `model.tflite`.
        format: one of `FORMATS`.
        ways: classes per task; None for regression.
        shots: support examples per class (per task for regression).
        version: `saved_model` only: the version number (default: the next
            free one).
        query_size: `tflite` only: queries per call (static).
        preprocessing: the training images' preprocessing: in the graph of
            the SavedModel's image signatures, in the TFLite metadata.
        query_statistics: None to serve queries in the learner's own mode, or a
            mode of `tfmeta.query_statistics.MODES` to serve them in instead
            (a learner trained with transductive statistics needs one).
        overwrite: replace an existing version or file.

    Returns:
        The version directory (`saved_model`) or the `.tflite` path.

    Example:

    ```python
    tfmeta.exporters.export(maml, "export/omniglot", format="saved_model", ways=5, shots=1)
    ```
    """
    check_choice("format", format, FORMATS)
    destination = os.fspath(destination)
    if format == "saved_model":
        return export_saved_model(
            learner, destination, version, ways=ways, shots=shots, preprocessing=preprocessing,
            query_statistics=query_statistics, overwrite=overwrite,
        )
    if version is not None:
        raise ValueError(
            "Expected no `version` for format='tflite' (a single file). "
            f"Received: version={version}"
        )
    path = destination if destination.endswith(".tflite") else os.path.join(
        destination, TFLITE_FILENAME
    )
    export_tflite(
        learner, path, ways=ways, shots=shots, query_size=query_size,
        preprocessing=preprocessing, query_statistics=query_statistics, overwrite=overwrite,
    )
    return path
