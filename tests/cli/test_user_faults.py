"""User faults that used to end in a traceback, a warning or lost files: now exit 2 and one line.

Each case runs in this process (`run_tfmeta`, fast) and in a subprocess as a
user runs it (`tfmeta_command`: stderr then also holds whatever TensorFlow
prints, so "exactly one line" covers its start-up logs); the subprocess runs
of most cases are marked slow, each costing a TensorFlow import. Every case
compares the bytes of the files it could have harmed before and after.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import keras
import pytest
from absl import flags
from cli_testing import TOY

import tfmeta
from tfmeta.cli import main, options, run_directory

SUBPROCESS_BY_DEFAULT = ("empty_output_dir", "truncated_archive")


def snapshot(*paths: Path) -> dict[str, bytes]:
    """The bytes of every file under `paths`, by path."""
    files = {}
    for path in paths:
        for file in [path] if path.is_file() else sorted(path.rglob("*")):
            if file.is_file():
                files[str(file)] = file.read_bytes()
    return files


def _saved_run(directory: Path, model: keras.Model) -> Path:
    """A run directory as `tfmeta train` leaves it (marker, options, learner), around a MAML."""
    run_directory.mark(directory)
    learner = tfmeta.MAML(model, inner_learning_rate=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    learner.save(directory / options.LEARNER_FILE)
    run_options = options.RunOptions(output_dir=str(directory))
    (directory / options.OPTIONS_FILE).write_text(options.saved_options_text(run_options))
    return directory


def _replace_in_zip(path: Path, name: str, edit) -> None:
    with zipfile.ZipFile(path) as archive:
        files = {member: archive.read(member) for member in archive.namelist()}
    files[name] = edit(files[name])
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)


def _omniglot_like_tar(path: Path, mode: str = "w:gz") -> bytes:
    with tarfile.open(path, mode) as tar:
        for index in range(8):
            data = bytes(range(256)) * 4
            info = tarfile.TarInfo(f"omniglot/train/class{index}/1.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


@pytest.fixture(scope="module")
def places(tmp_path_factory, image_folder):
    """Everything the cases name: a user's folder, flagfiles, damaged data and runs."""
    root = tmp_path_factory.mktemp("faults")
    user_dir = root / "my_project"
    user_dir.mkdir()
    (user_dir / "README.md").write_text("My own notes: never to be replaced.\n")
    (user_dir / "data.csv").write_text("1,2,3\n")
    (root / "self.flags").write_text(f"--shots=3\n--flagfile={root}/self.flags\n")
    (root / "a.flags").write_text(f"--flagfile={root}/b.flags\n")
    (root / "b.flags").write_text(f"--flagfile={root}/./a.flags\n")

    good = _omniglot_like_tar(root / "good.tar.gz")
    (root / "truncated.tar.gz").write_bytes(good[: len(good) // 2])
    plain = _omniglot_like_tar(root / "good.tar", "w")
    second_header = 512 + 1024  # the first member's header and data
    (root / "garbled_header.tar").write_bytes(
        plain[:second_header] + b"\xff" * 512 + plain[second_header + 512 :]
    )
    with tarfile.open(root / "hostile.tar.gz", "w:gz") as tar:
        link = tarfile.TarInfo("omniglot/train/a/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)

    tif = root / "tif_images"
    for split in ("train", "test"):
        for label in ("a", "b", "c"):
            (tif / split / label).mkdir(parents=True)
            for index in range(3):
                (tif / split / label / f"{index}.tif").write_bytes(b"II*\0" + bytes(60))

    runs = {}
    for name in ("truncated_learner", "os_system_learner", "lambda_learner", "bad_metrics"):
        runs[name] = _saved_run(root / name, tfmeta.models.mlp())
    learner_file = runs["truncated_learner"] / options.LEARNER_FILE
    learner_file.write_bytes(learner_file.read_bytes()[:-1000])

    def os_system(config: bytes) -> bytes:
        crafted = json.loads(config)
        crafted.update(module="os", class_name="system", registered_name=None)
        return json.dumps(crafted).encode()

    _replace_in_zip(runs["os_system_learner"] / options.LEARNER_FILE, "config.json", os_system)
    lambda_net = keras.Sequential(
        [keras.Input((1,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(1)]
    )
    runs["lambda_learner"] = _saved_run(root / "lambda_learner_run", lambda_net)
    (runs["bad_metrics"] / "metrics.json").write_text('{"status": "completed", "eval": ')
    return {"root": root, "user_dir": user_dir, "images": image_folder, "tif": tif, **runs}


# (case id, arguments, expected part of the message, places whose files must not change)
CASES = [
    ("empty_output_dir", ["train", "--output_dir="], "--output_dir is empty", ["user_dir"]),
    ("empty_export_dir", ["export", "--output_dir={bad_metrics}", "--export_dir="],
     "--export_dir is empty", ["bad_metrics"]),
    ("empty_data_dir", ["train", "--dataset=omniglot", "--data_dir="], "--data_dir is empty", []),
    (
        "not_a_run_directory",
        ["train", "--output_dir={user_dir}"],
        "is a directory that is not a tfmeta run (it holds README.md, data.csv",
        ["user_dir"],
    ),
    ("flagfile_including_itself", ["train", "--flagfile={root}/self.flags"],
     "self.flags includes itself", []),
    ("flagfiles_in_a_loop", ["train", "--flagfile={root}/a.flags"], "a.flags includes itself", []),
    (
        "truncated_archive",
        ["train", "--dataset=omniglot", "--data_dir={root}/truncated.tar.gz", *TOY,
         "--output_dir={root}/r1"],
        "which is truncated or damaged",
        ["root"],
    ),
    (
        "damaged_member_header",
        ["train", "--dataset=omniglot", "--data_dir={root}/garbled_header.tar", *TOY,
         "--output_dir={root}/r2"],
        "which is truncated or damaged (unreadable data after",
        ["root"],
    ),
    (
        "archive_member_refused_by_the_filter",
        ["train", "--dataset=omniglot", "--data_dir={root}/hostile.tar.gz", *TOY,
         "--output_dir={root}/r3"],
        "Refusing to extract",
        ["root"],
    ),
    (
        "only_unsupported_image_types",
        ["train", "--dataset={tif}", *TOY, "--output_dir={root}/r4"],
        "Received: only files of type ['.tif']; convert them to PNG or JPEG",
        ["tif"],
    ),
    (
        "truncated_learner",
        ["evaluate", "--output_dir={truncated_learner}"],
        "learner.keras: it is not a .keras zip archive (truncated or damaged?)",
        ["truncated_learner"],
    ),
    (
        "learner_naming_os_system",
        ["evaluate", "--output_dir={os_system_learner}"],
        "could not load {os_system_learner}/learner.keras: Could not locate class 'system'",
        ["os_system_learner"],
    ),
    (
        "learner_with_lambda_layer",
        ["export", "--output_dir={lambda_learner}", "--export_dir={root}/lambda_export"],
        "learner.keras: Requested the deserialization of a `Lambda` layer",
        ["lambda_learner"],
    ),
    (
        "corrupt_metrics_file",
        ["evaluate", "--output_dir={bad_metrics}"],
        "bad_metrics/metrics.json is not a tfmeta metrics file",
        ["bad_metrics"],
    ),
]
_IDS = [case[0] for case in CASES]


def _arguments(args, places):
    return [arg.format(**places) for arg in args]


def _check_one_line(returncode, stdout, stderr, message, places):
    assert returncode == 2, (stdout[-2000:], stderr[-2000:])
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfmeta: error: "), stderr[-3000:]
    assert message.format(**places) in lines[0], lines[0]
    assert "Traceback" not in stdout


@pytest.mark.parametrize("args, message, guarded", [c[1:] for c in CASES], ids=_IDS)
def test_user_fault_in_process_exits_2_with_one_line_and_changes_nothing(
    run_tfmeta, places, cache_dir, args, message, guarded
):
    before = snapshot(*(places[name] for name in guarded))
    archives_before = snapshot(cache_dir / "archives") if (cache_dir / "archives").exists() else {}
    result = run_tfmeta(*_arguments(args, places))
    _check_one_line(result.returncode, result.stdout, result.stderr, message, places)
    assert snapshot(*(places[name] for name in guarded)) == before
    assert list(Path.cwd().iterdir()) == []  # no default run directory either
    after = snapshot(cache_dir / "archives") if (cache_dir / "archives").exists() else {}
    assert after == archives_before  # a refused archive leaves nothing in the cache


@pytest.mark.parametrize(
    "args, message, guarded",
    [
        pytest.param(*c[1:], marks=() if c[0] in SUBPROCESS_BY_DEFAULT else pytest.mark.slow)
        for c in CASES
    ],
    ids=_IDS,
)
def test_user_fault_as_a_user_sees_it_is_exactly_one_stderr_line(
    tfmeta_command, places, args, message, guarded
):
    before = snapshot(*(places[name] for name in guarded))
    result = tfmeta_command(*_arguments(args, places), timeout=120)
    _check_one_line(result.returncode, result.stdout, result.stderr, message, places)
    assert snapshot(*(places[name] for name in guarded)) == before


def test_train_accepts_a_new_an_empty_and_an_old_run_directory(places, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for directory in (tmp_path / "new" / "run", empty, places["bad_metrics"]):
        main.resolve_options("train", {"output_dir": str(directory)})
    old_run = tmp_path / "old"  # written before the marker: recognised by its options.json
    old_run.mkdir()
    (old_run / options.OPTIONS_FILE).write_text(options.saved_options_text(options.RunOptions()))
    assert run_directory.is_run(old_run) and not run_directory.is_run(places["user_dir"])
    main.resolve_options("train", {"output_dir": str(old_run)})


def _limited_file_size(limit: int):
    """`preexec_fn` of a process whose files cannot grow beyond `limit` bytes (a full disk)."""

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too large write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


QUICK = ["--steps_per_epoch=2", "--eval_episodes=4", "--meta_batch_size=2"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A sinusoid run of 4 meta-updates (checkpoints at 2 and 4), trained in this process."""
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    flags.FLAGS.unparse_flags()
    try:
        main.run(["tfmeta", "train", *QUICK, "--iterations=4", f"--output_dir={output_dir}"])
    except SystemExit as exit_:
        assert not exit_.code, exit_.code
    finally:
        flags.FLAGS.unparse_flags()
    return output_dir


@pytest.mark.parametrize(
    "limit, message, kept_files",
    [
        (
            12_000,
            "could not write the checkpoint {run}/checkpoints/ckpt-6: File too large",
            [
                "checkpoints/checkpoint",
                "checkpoints/ckpt-4.index",
                "checkpoints/ckpt-4.data-00000-of-00001",
                "learner.keras",
                "metrics.json",
            ],
        ),
        pytest.param(
            30_000,
            "{run}/learner.keras: File too large; free space on that disk",
            ["learner.keras", "metrics.json"],
            marks=pytest.mark.slow,
        ),
    ],
    ids=["during_checkpoint", "during_learner_save"],
)
def test_a_full_disk_while_training_exits_2_and_keeps_every_earlier_file(
    finished_run, command_env, tmp_path, limit, message, kept_files
):
    # 12 kB: the first new checkpoint's data file (23 kB) cannot be written; 30 kB: training
    # and its checkpoints succeed, the final learner.keras (50 kB) cannot be written.
    run = tmp_path / "run"
    subprocess.run(["cp", "-a", str(finished_run), str(run)], check=True)
    kept = snapshot(*(run / name for name in kept_files))
    result = subprocess.run(
        [sys.executable, "-m", "tfmeta.cli.main", "train", *QUICK, "--iterations=8",
         f"--output_dir={run}"],
        capture_output=True, text=True, env=command_env, timeout=300,
        preexec_fn=_limited_file_size(limit),
    )
    _check_one_line(result.returncode, result.stdout, result.stderr, message, {"run": run})
    assert snapshot(*(run / name for name in kept_files)) == kept
    assert not [p.name for p in run.rglob("*") if "tmp" in p.name or "_temp" in p.name]


@pytest.fixture
def read_only(tmp_path):
    """Makes a populated directory read-only: a read-only tmpfs for root (who ignores modes)."""
    made = []

    def make(populate) -> Path:
        directory = tmp_path / f"read_only{len(made)}"
        directory.mkdir()
        if os.geteuid() != 0:
            populate(directory)
            for path in [directory, *directory.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
        else:
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(directory)],
                capture_output=True,
            )
            if mounted.returncode:
                pytest.skip("root without permission to mount a read-only file system")
            populate(directory)
            subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
        made.append(directory)
        return directory

    yield make
    for directory in made:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(directory)], check=True)
        else:
            for path in [directory, *directory.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)


def test_read_only_destinations_are_refused_before_any_work(run_tfmeta, read_only, places):
    ro_parent = read_only(lambda directory: None)
    result = run_tfmeta("train", f"--output_dir={ro_parent}/run")
    _check_one_line(result.returncode, result.stdout, result.stderr,
                    f"--output_dir={ro_parent}/run: cannot write in {ro_parent}", {})

    def copy_run(directory):
        subprocess.run(["cp", "-a", f"{places['bad_metrics']}/.", str(directory)], check=True)
        (directory / "metrics.json").write_text("{}")

    ro_run = read_only(copy_run)
    before = snapshot(ro_run)
    result = run_tfmeta("evaluate", f"--output_dir={ro_run}")
    _check_one_line(result.returncode, result.stdout, result.stderr,
                    f"--output_dir={ro_run}: cannot write in {ro_run} (read-only", {})
    result = run_tfmeta("export", f"--output_dir={ro_run}")
    _check_one_line(result.returncode, result.stdout, result.stderr,
                    f"--export_dir={ro_run}/export: cannot write in {ro_run}", {})
    assert snapshot(ro_run) == before


@pytest.mark.slow
def test_a_full_disk_during_export_exits_2_and_leaves_no_partial_version(
    finished_run, command_env, tmp_path
):
    base = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, "-m", "tfmeta.cli.main", "export", f"--output_dir={finished_run}",
         f"--export_dir={base}"],
        capture_output=True, text=True, env=command_env, timeout=300,
        preexec_fn=_limited_file_size(20_000),
    )
    _check_one_line(result.returncode, result.stdout, result.stderr, "File too large", {})
    assert not base.exists() or list(base.iterdir()) == []
