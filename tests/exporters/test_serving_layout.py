"""TF Serving layout: `<base>/<version>/`, published atomically, never overwritten silently."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tfmeta.exporters import serving_layout


def write_files(directory):
    with open(os.path.join(directory, "saved_model.pb"), "w") as file:
        file.write("graph")


def test_versions_count_only_all_digit_directories(tmp_path):
    for name in ("1", "7", "10", ".tfmeta-partial-3-abc", "latest", "12x"):
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a version")
    assert serving_layout.versions(tmp_path) == [1, 7, 10]
    assert serving_layout.next_version(tmp_path) == 11
    assert serving_layout.next_version(tmp_path / "missing") == 1


def test_versions_are_numbered_in_order(tmp_path):
    first = serving_layout.write_version(tmp_path, write_files)
    second = serving_layout.write_version(tmp_path, write_files)
    assert (first, second) == (str(tmp_path / "1"), str(tmp_path / "2"))
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]  # nothing left behind


def test_an_existing_version_is_not_overwritten_silently(tmp_path):
    serving_layout.write_version(tmp_path, write_files, version=3)
    with pytest.raises(FileExistsError, match="version 3, which already exists.*overwrite=True"):
        serving_layout.write_version(tmp_path, lambda d: None, version=3)
    assert (tmp_path / "3" / "saved_model.pb").read_text() == "graph"


def test_overwrite_replaces_the_version(tmp_path):
    serving_layout.write_version(tmp_path, write_files, version=3)

    def write_other(directory):
        with open(os.path.join(directory, "saved_model.pb"), "w") as file:
            file.write("new graph")

    serving_layout.write_version(tmp_path, write_other, version=3, overwrite=True)
    assert (tmp_path / "3" / "saved_model.pb").read_text() == "new graph"
    assert os.listdir(tmp_path) == ["3"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    def fail(directory):
        write_files(directory)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        serving_layout.write_version(tmp_path, fail, version=1)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("version", [0, -1, 1.0, "2", True])
def test_invalid_versions_are_rejected(tmp_path, version):
    with pytest.raises(ValueError, match="Expected `version` to be an integer >= 1"):
        serving_layout.write_version(tmp_path, write_files, version=version)


KILLED_EXPORT = textwrap.dedent("""
    import os, sys, time
    import keras
    import tfmeta
    from tfmeta.exporters import saved_model, warmup

    real_write = warmup.write

    def write_then_hang(directory, *args, **kwargs):
        real_write(directory, *args, **kwargs)  # saved_model.pb and variables are written by now
        open(sys.argv[2], "w").write(directory)
        time.sleep(600)

    warmup.write = write_then_hang
    learner = tfmeta.MAML(tfmeta.models.mlp(4, (8,), 3), eval_inner_steps=1)
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    saved_model.export_saved_model(learner, sys.argv[1], ways=3, shots=1)
""")


def test_a_killed_export_leaves_no_version_a_server_would_load(tmp_path):
    base, marker = tmp_path / "model", tmp_path / "partial_written"
    child = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(base), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the export process ended before writing"
            assert time.monotonic() < deadline, "the export never reached the warmup writer"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    partial = marker.read_text()
    assert os.path.exists(os.path.join(partial, "saved_model.pb"))  # killed mid-version
    assert serving_layout.versions(base) == []
    assert all(not name.isdigit() for name in os.listdir(base))
    assert os.path.basename(partial).startswith(serving_layout.PARTIAL_PREFIX)
    # the next export is unaffected and gets version 1
    assert serving_layout.write_version(base, write_files) == str(base / "1")
