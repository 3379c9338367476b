"""Task sources of the command: TFDS names, the pretraining stream, real Omniglot."""

import json
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfmeta
import tfmeta.data.tfds_images
from tfmeta.cli import options, tasks

UNREACHABLE_HOSTS = tfmeta.data.tfds_images.unreachable_hosts  # conftest makes hosts reachable

TINY = [
    "--ways=3",
    "--shots=1",
    "--queries=2",
    "--iterations=2",
    "--steps_per_epoch=1",
    "--meta_batch_size=1",
    "--eval_episodes=3",
    "--filters=4",
]


def _mnist_like(self, split, decoders=None, read_config=None, shuffle_files=False):
    """An `as_dataset_fn` for `tfds.testing.mock_data`: 5 blank 28x28 images of 6 labels."""
    labels = np.repeat(np.arange(6), 5)
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image": np.zeros([len(labels), 28, 28, 1], np.uint8), "label": labels}
    )
    if decoders and "image" in decoders:  # tfds.decode.SkipDecoding(): encoded bytes
        dataset = dataset.map(
            lambda example: {**example, "image": tf.io.encode_png(example["image"])}
        )
    return dataset


def test_a_tfds_name_is_a_dataset(run_tfmeta, tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_mnist_like):
        result = run_tfmeta(
            "train", "--dataset=mnist", "--algorithm=protonet", *TINY, f"--output_dir={tmp_path}"
        )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["eval"]["accuracy"]["tasks"] == 3 and metrics["options"]["dataset"] == "mnist"


def test_pretraining_batches_are_reproducible_and_labelled_by_rotated_class():
    images = np.zeros([6, 4, 4, 1], np.uint8)
    images[:, 0, 0, 0] = 255  # a corner pixel: its place after rotation tells the turn
    data = tfmeta.data.ClassImages(images, [2, 4], ["a", "b"]).with_rotations()
    first = [(x.numpy(), y.numpy()) for x, y in tasks.labelled_batches(data, 16, seed=3).take(2)]
    again = [
        (x.numpy(), y.numpy()) for x, y in tasks.labelled_batches(data, 16, seed=3).skip(1).take(1)
    ]
    np.testing.assert_array_equal(first[1][0], again[0][0])
    for x, y in first:
        assert x.shape == (16, 4, 4, 1) and x.dtype == np.float32 and set(y) <= set(range(8))
        for image, label in zip(x, y, strict=True):
            turned = np.rot90(np.pad([[1.0]], [[0, 3], [0, 3]]), k=label % 4)
            np.testing.assert_array_equal(image[..., 0], turned)


@pytest.mark.slow
def test_omniglot_protonet_from_the_offline_archive_beats_chance(
    tfmeta_command, omniglot_tarball, tmp_path
):
    result = tfmeta_command(
        "train",
        "--config=omniglot_5w1s_protonet",
        f"--data_dir={omniglot_tarball}",
        "--iterations=100",
        "--steps_per_epoch=50",
        "--eval_episodes=100",
        f"--output_dir={tmp_path}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = json.loads((tmp_path / "metrics.json").read_text())["eval"]["accuracy"]
    assert accuracy["tasks"] == 100 and accuracy["mean"] > 0.5  # chance: 0.2
    assert "held-out 5-way 1-shot accuracy" in result.stdout


def test_a_resumed_training_stream_is_the_rest_of_the_whole_stream():
    # 40 epochs of one meta-batch: 20 blocks of 2 epochs, so epoch 3 starts mid-block.
    run_options = options.RunOptions(
        iterations=40, steps_per_epoch=1, meta_batch_size=1, shots=1, queries=1
    )
    source = tasks.RegressionSource(run_options)
    whole = [batch["support_x"].numpy() for batch in source.train_episodes()]
    assert len(whole) == 40 and len({a.tobytes() for a in whole}) == 40  # blocks differ
    for initial_epoch, expected in ((3, whole[3:]), (40, whole[39:])):  # 40: a finished run
        rest = [batch["support_x"].numpy() for batch in source.train_episodes(initial_epoch)]
        for a, b in zip(expected, rest, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_tfds_name_offline_fails_within_seconds_with_one_line(run_tfmeta, monkeypatch, tmp_path):
    def refuse(address, timeout=None):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tfmeta.data.tfds_images, "unreachable_hosts", UNREACHABLE_HOSTS)
    start = time.monotonic()
    result = run_tfmeta(
        "train", "--dataset=mnist", "--algorithm=protonet", *TINY,
        f"--data_dir={tmp_path / 'tfds'}", f"--output_dir={tmp_path / 'run'}",
    )
    assert time.monotonic() - start < 60
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "tfmeta: error: could not read TFDS mnist[train] (TFDS dataset 'mnist' is not prepared in "
    )
    assert lines[0].endswith(
        "cannot be reached ([Errno 101] Network is unreachable)); check the network, pass "
        "--data_dir holding a prepared copy, or pass the images as --dataset=DIR, an ImageFolder "
        "<DIR>/<split>/<class>/<image>"
    )
