"""Bad input to `tfmeta`: exit code 2 and one line that names the problem and the fix.

Cases run in-process (`run_tfmeta`, the same `main.run` the console script
calls), so the suite pays no TensorFlow import per case; `test_train.py`
checks a few in a real subprocess.
"""

import shutil
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from cli_testing import TOY

import tfmeta
from tfmeta.cli import commands, main, options, tasks, user_errors


def _write_run(directory: Path, model: keras.Model, **option_values) -> Path:
    """A run directory as `tfmeta train` leaves it, around a MAML over `model`."""
    directory.mkdir(parents=True)
    learner = tfmeta.MAML(model, inner_learning_rate=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    learner.optimizer.build(learner.trainable_variables)
    learner.save(directory / options.LEARNER_FILE)
    run_options = options.RunOptions(output_dir=str(directory), **option_values)
    (directory / options.OPTIONS_FILE).write_text(options.saved_options_text(run_options))
    (directory / options.CHECKPOINT_DIR).mkdir()
    (directory / options.CHECKPOINT_DIR / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-1"\n'
    )
    return directory


@pytest.fixture(scope="module")
def places(tmp_path_factory, image_folder):
    """Paths the cases refer to: runs, data, files."""
    root = tmp_path_factory.mktemp("bad_input")
    sinusoid_run = _write_run(root / "sinusoid_run", tfmeta.models.mlp())
    (sinusoid_run / "export" / "sinusoid_run" / "1").mkdir(parents=True)
    open_shape = keras.Sequential(
        [
            keras.Input((None, 1)),
            keras.layers.Dense(4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    layer_norm = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(8),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(1),
        ]
    )
    bad_images = root / "bad_images"
    shutil.copytree(image_folder, bad_images)
    (bad_images / "train" / "train_class0" / "9.png").write_bytes(b"not an image")
    broken_run = root / "broken_run"
    broken_run.mkdir()
    (broken_run / options.LEARNER_FILE).write_bytes(b"")
    (broken_run / options.OPTIONS_FILE).write_text("{not json")
    a_file = root / "a_file"
    a_file.write_text("")
    flagfile = root / "shots_zero.flags"
    flagfile.write_text("--shots=0\n")
    return {
        "root": root,
        "sinusoid_run": sinusoid_run,
        "open_shape_run": _write_run(root / "open_shape_run", open_shape),
        "layer_norm_run": _write_run(root / "layer_norm_run", layer_norm),
        "images": image_folder,
        "bad_images": bad_images,
        "broken_run": broken_run,
        "a_file": a_file,
        "flagfile": flagfile,
    }


# (case id, arguments with {placeholders} from `places`, expected part of the message)
CASES = [
    # The command and its flags.
    ("unknown_command", ["trian"], "expected one command of ['evaluate', 'export', 'train']"),
    ("unknown_algorithm", ["train", "--algorithm=foo"], "--algorithm=foo: value should be one of"),
    (
        "unknown_config",
        ["train", "--config=omniglot_5w1s_mamll"],
        "--config=omniglot_5w1s_mamll: value should be one of",
    ),
    ("not_a_number", ["train", "--iterations=abc"], "flag --iterations=abc"),
    ("shots_of_zero", ["train", "--shots=0"], "--shots must be >= 1; received --shots=0"),
    (
        "shots_of_zero_in_flagfile",
        ["train", "--flagfile={flagfile}"],
        "--shots must be >= 1; received --shots=0",
    ),
    ("missing_flagfile", ["train", "--flagfile={root}/none.flags"], "none.flags"),
    (
        "negative_learning_rate",
        ["train", "--inner_learning_rate=-0.5"],
        "--inner_learning_rate must be a finite number >= 0",
    ),
    (
        "nan_learning_rate",
        ["train", "--meta_learning_rate=nan"],
        "--meta_learning_rate must be a finite number >= 0",
    ),
    ("negative_inner_steps", ["train", "--inner_steps=-1"], "--inner_steps must be >= 0"),
    (
        "partial_last_epoch",
        ["train", "--iterations=50", "--steps_per_epoch=20"],
        "choose --iterations as a multiple of --steps_per_epoch",
    ),
    (
        "export_flag_to_train",
        ["train", "--version=3"],
        "--version is a flag of `tfmeta export`, not of `tfmeta train`; drop it",
    ),
    (
        "train_flag_to_evaluate",
        ["evaluate", "--output_dir={sinusoid_run}", "--algorithm=protonet"],
        "--algorithm is a flag of `tfmeta train`, not of `tfmeta evaluate`",
    ),
    # Learners and data sources.
    (
        "classifier_on_sinusoid",
        ["train", "--algorithm=protonet"],
        "cannot learn the sinusoid regression tasks",
    ),
    (
        "one_pass_classifier_on_curves",
        ["train", "--algorithm=r2d2", "--dataset=gaussian_process"],
        "--algorithm=r2d2 classifies images and cannot learn the gaussian_process regression",
    ),
    (
        "cnp_on_images",
        ["train", "--algorithm=cnp", "--dataset={images}", *TOY],
        "--algorithm=cnp predicts regression targets and cannot classify --dataset=",
    ),
    (
        "cnp_with_query_statistics",
        ["train", "--algorithm=cnp", "--query_statistics=support"],
        "--query_statistics does not apply to --algorithm=cnp",
    ),
    (
        "unknown_r2d2_head",
        ["train", "--algorithm=r2d2", "--r2d2_head=newton"],
        "--r2d2_head=newton: value should be one of",
    ),
    (
        "r2d2_head_for_another_algorithm",
        ["train", "--algorithm=protonet", "--dataset={images}", "--r2d2_head=logistic", *TOY],
        "--r2d2_head does not apply to --algorithm=protonet",
    ),
    (
        "metasgd_with_fixed_rate",
        ["train", "--algorithm=metasgd", "--eval_inner_learning_rate=0.1"],
        "leave it unset",
    ),
    (
        "other_ways_for_fixed_head",
        ["train", "--dataset={images}", "--eval_ways=2", *TOY],
        "cannot evaluate --eval_ways=2",
    ),
    (
        "one_way",
        ["train", "--dataset={images}", *TOY, "--ways=1"],
        "--ways must be >= 2 for classification",
    ),
    (
        "missing_directory",
        ["train", "--dataset=./no/such/images"],
        "--dataset=./no/such/images: no such directory",
    ),
    (
        "missing_split_folder",
        ["train", "--dataset={images}", "--eval_split=validation", *TOY],
        "pass --eval_split naming one of them",
    ),
    (
        "not_a_dataset_name",
        ["train", "--dataset=Not A Name!"],
        "is neither 'sinusoid', 'gaussian_process', 'omniglot', a TFDS name",
    ),
    (
        "missing_omniglot_archive",
        ["train", "--dataset=omniglot", "--data_dir={root}/omniglot.tar.gz"],
        "omniglot.tar.gz does not exist",
    ),
    (
        "data_dir_for_sinusoid",
        ["train", "--data_dir={root}"],
        "--data_dir does not apply to --dataset=sinusoid",
    ),
    ("output_dir_is_a_file", ["train", "--output_dir={a_file}"], "is a file; pass a directory"),
    (
        "ways_larger_than_classes",
        ["train", "--dataset={images}", "--output_dir={root}/r1", *TOY, "--ways=9"],
        "--ways=9 is larger than the 8 classes of",
    ),
    (
        "eval_shots_too_many",
        ["train", "--dataset={images}", "--output_dir={root}/r6", *TOY, "--eval_shots=5"],
        "lower --eval_shots or --eval_queries",
    ),
    (
        "eval_ways_larger_than_classes",
        [
            "train",
            "--dataset={images}",
            "--output_dir={root}/r2",
            "--algorithm=protonet",
            *TOY,
            "--eval_ways=7",
        ],
        "--eval_ways=7 is larger than the 6 classes of",
    ),
    (
        "too_few_images_per_class",
        ["train", "--dataset={images}", "--output_dir={root}/r3", *TOY, "--shots=4", "--queries=3"],
        "lower --shots or --queries",
    ),
    (
        "unreadable_image",
        ["train", "--dataset={bad_images}", "--output_dir={root}/r4", *TOY],
        "train_class0/9.png (Unknown image file format",
    ),
    (
        "unknown_tfds_name",
        [
            "train",
            "--dataset=no_such_dataset_xyz",
            "--algorithm=protonet",
            "--output_dir={root}/r5",
        ],
        "Unknown TFDS dataset name 'no_such_dataset_xyz'",
    ),
    (
        "missing_relative_directory",
        ["train", "--dataset=no_such/images", "--algorithm=protonet", "--output_dir={root}/r7"],
        "(and no directory no_such/images exists): Unknown TFDS dataset name",
    ),
    # Runs: resuming, evaluating, exporting.
    (
        "resume_with_other_options",
        ["train", "--output_dir={sinusoid_run}", "--shots=5"],
        "holds a run trained with other options (--shots=10); pass the same options",
    ),
    (
        "evaluate_missing_run",
        ["evaluate", "--output_dir={root}/nowhere"],
        "nowhere/learner.keras; run `tfmeta train --output_dir=",
    ),
    (
        "corrupt_options_file",
        ["evaluate", "--output_dir={broken_run}"],
        "is not a tfmeta options file",
    ),
    (
        "existing_export_version",
        ["export", "--output_dir={sinusoid_run}", "--version=1"],
        "version 1 already exists in",
    ),
    (
        "negative_export_version",
        ["export", "--output_dir={sinusoid_run}", "--version=0"],
        "--version must be >= 1",
    ),
    (
        "wrong_input_shape_at_export",
        ["export", "--output_dir={open_shape_run}"],
        "fully defined per-example input shape",
    ),
    (
        "unsupported_layer_for_tflite",
        [
            "export",
            "--output_dir={layer_norm_run}",
            "--format=tflite",
            "--export_dir={root}/m.tflite",
        ],
        "LayerNormalization",
    ),
    (
        "unknown_export_format",
        ["export", "--output_dir={sinusoid_run}", "--format=onnx"],
        "--format=onnx: value should be one of",
    ),
]


@pytest.mark.parametrize(
    "args, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input_exits_2_with_one_message_naming_problem_and_fix(
    run_tfmeta, places, args, message
):
    result = run_tfmeta(*(arg.format(**places) for arg in args))
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfmeta: error: "), result.stderr[-2000:]
    assert message.format(**places) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_at_least_twenty_distinct_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 20


def test_errors_have_the_types_the_command_reports(places):
    with pytest.raises(ValueError, match="--shots must be >= 1"):
        main.resolve_options("train", {"shots": 0})
    toy = options.RunOptions(
        dataset=str(places["images"]), image_size=8, ways=9, shots=1, queries=2, output_dir="x"
    )
    with pytest.raises(ValueError, match="--ways=9 is larger than the 8 classes"):
        tasks.build(toy)
    existing = options.RunOptions(output_dir=str(places["sinusoid_run"]), version=1)
    with pytest.raises(FileExistsError, match="version 1 already exists"):
        commands.export(existing)
    assert user_errors.is_user_error(FileExistsError("x"))
    assert not user_errors.is_user_error(KeyError())
    assert user_errors.is_user_error(tfmeta.data.episode.EpisodeError("class ids out of range"))
    assert not user_errors.is_user_error(tf.errors.InvalidArgumentError(None, None, "a bug"))


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_meta_rl_run_is_named_as_one_by_evaluate_and_export(run_tfmeta, tmp_path, command):
    from tfmeta.cli import run_directory
    from tfmeta.rl import training

    assert run_directory.META_RL_CLOCK == training.CLOCK_FILE
    run = tmp_path / "navigation"
    run_directory.mark(run)  # as `tfmeta train --env=navigation_2d` leaves it after an epoch
    (run / training.CLOCK_FILE).write_text('{"train_seconds": 1.0, "meta_iterations": 1}')
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    result = run_tfmeta(command, f"--output_dir={run}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"tfmeta: error: {run} is a meta-RL run; `tfmeta {command}` takes classifier and "
        "regression runs. `tfmeta train --env=...` evaluated it (metrics.json) and exported its "
        "policy (export/); run that command again to continue it"
    )
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


@pytest.mark.parametrize("args, message", [
    (["--env=ml1"], "--env=ml1: expected one of ['ant_dir', 'ant_vel', 'halfcheetah_dir', "
     "'halfcheetah_vel', 'navigation_2d']; ml1 is a task family without the paper's settings"),
    (["--env=navigation_2d", "--shots=5"], "--shots is not a setting of a meta-RL run (--env)"),
    (["--env=navigation_2d", "--iterations=0"],
     "--iterations must be >= 1; received --iterations=0"),
    (["--env=navigation_2d", "--meta_batch_size=0"],
     "--meta_batch_size must be >= 1; received --meta_batch_size=0"),
    (["--env=navigation_2d", "--meta_learning_rate=0.1"],
     "--meta_learning_rate sets maml_ppo's Adam; maml_trpo's step is set by its KL bound"),
    (["--env=navigation_2d", "--env_processes=2"],
     "--env_processes sets the processes that step a MuJoCo family's environments; "
     "navigation_2d rolls out inside one TensorFlow graph"),
    (["--env=halfcheetah_vel", "--env_processes=0"], "flag --env_processes=0"),
])
def test_a_meta_rl_option_it_would_not_honour_is_refused_before_any_write(
    run_tfmeta, tmp_path, args, message
):
    # `--iterations=0` used to fall back to the paper's 100 and train.
    run = tmp_path / "run"
    result = run_tfmeta("train", "--algorithm=maml_trpo", *args, f"--output_dir={run}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfmeta: error: " + message), lines
    assert not run.exists()
