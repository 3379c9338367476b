"""--dataset=mini_imagenet|cifar_fs|fc100|cub --data_dir=...: the command on tiny copies of the
files."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "benchmark_layouts", Path(__file__).resolve().parents[1] / "data" / "benchmark_layouts.py"
)
layouts = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(layouts)

TINY = [
    "--algorithm=protonet", "--ways=3", "--shots=1", "--queries=1", "--iterations=2",
    "--steps_per_epoch=1", "--meta_batch_size=1", "--eval_episodes=3", "--filters=4",
    "--channels=3",
]


@pytest.fixture(scope="module")
def cub_dir(tmp_path_factory):
    return layouts.write_cub(tmp_path_factory.mktemp("cub"), per_class=2)


def test_cub_trains_and_evaluates_on_its_test_classes(run_tfmeta, cub_dir, tmp_path):
    result = run_tfmeta("train", "--dataset=cub", f"--data_dir={cub_dir}", "--image_size=8",
                        *TINY, f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["eval"]["accuracy"]["tasks"] == 3 and metrics["options"]["dataset"] == "cub"


def test_fc100_from_the_binary_version(run_tfmeta, tmp_path):
    folder = layouts.write_cifar100_binary(tmp_path / "cifar")
    result = run_tfmeta("train", "--dataset=fc100", f"--data_dir={folder}", "--image_size=8",
                        *TINY, f"--output_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dataset=mini_imagenet"], "--dataset=mini_imagenet reads the files you hold and "
         "downloads nothing; pass --data_dir"),
        (["--dataset=cub", "--data_dir=/nonexistent/cub"],
         "--data_dir=/nonexistent/cub does not exist"),
    ],
)
def test_missing_data_dir_is_one_line(run_tfmeta, flags, message, tmp_path):
    result = run_tfmeta("train", *flags, *TINY, f"--output_dir={tmp_path}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_grayscale_is_refused_and_missing_classes_named(run_tfmeta, cub_dir, tmp_path):
    gray = [flag for flag in TINY if flag != "--channels=3"]
    result = run_tfmeta("train", "--dataset=cub", f"--data_dir={cub_dir}", *gray,
                        f"--output_dir={tmp_path / 'a'}")
    assert result.returncode == 2 and "pass --channels=3" in result.stderr
    copy = tmp_path / "CUB_200_2011"
    shutil.copytree(cub_dir, copy)
    shutil.rmtree(copy / "images" / "200.Bird_200")
    result = run_tfmeta("train", "--dataset=cub", f"--data_dir={copy}", "--image_size=8", *TINY,
                        f"--output_dir={tmp_path / 'b'}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "Missing: 1 classes numbered ['200']" in lines[0]


def test_variable_episodes_train_protonet_and_evaluate_fixed_episodes(
    run_tfmeta, cub_dir, tmp_path
):
    import tfmeta.data
    from tfmeta.cli import options

    assert set(options.VARIABLE_EPISODE_CONFIG_NAMES) == set(tfmeta.data.VARIABLE_EPISODE_CONFIGS)
    result = run_tfmeta("train", "--dataset=cub", f"--data_dir={cub_dir}", "--image_size=8",
                        "--episodes=variable:small", *TINY, f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["options"]["episodes"] == "variable:small"
    assert metrics["eval"]["accuracy"]["tasks"] == 3
    maml = [flag if flag != "--algorithm=protonet" else "--algorithm=maml" for flag in TINY]
    result = run_tfmeta("train", "--dataset=cub", f"--data_dir={cub_dir}", "--image_size=8",
                        "--episodes=variable:small", *maml, f"--output_dir={tmp_path / 'maml'}")
    assert result.returncode == 2 and "trains --algorithm=protonet" in result.stderr


def test_several_benchmarks_train_mixed_and_evaluate_per_source(run_tfmeta, cub_dir, tmp_path):
    cifar = layouts.write_cifar100_binary(tmp_path / "cifar")
    mixed = ["--dataset=cub,fc100", f"--data_dir={cub_dir},{cifar}", "--image_size=8",
             "--episodes=variable:small", "--val_episodes=2", *TINY]
    result = run_tfmeta("train", *mixed, f"--output_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((tmp_path / "run" / "metrics.json").read_text())["eval"]
    assert list(evaluation["per_source"]) == ["cub", "fc100"]
    assert [s["tasks"] for s in evaluation["per_source"].values()] == [3, 3]
    assert evaluation["accuracy"]["tasks"] == 6
    result = run_tfmeta("evaluate", f"--output_dir={tmp_path / 'run'}", "--eval_episodes=2")
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = (tmp_path / "run" / "evaluations").glob("*.json")
    per_source = json.loads(written.read_text())["eval"]["per_source"]
    assert [s["tasks"] for s in per_source.values()] == [2, 2]
    for name, summary in per_source.items():
        line = f"tfmeta:   {name}: {100 * summary['mean']:.2f}% +/- {100 * summary['ci95']:.2f}%"
        assert line in result.stdout, result.stdout


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data_dir=/a", "--episodes=variable:small"],
         "--dataset=cub,fc100 needs one --data_dir per benchmark, joined by commas"),
        (["--data_dir={cub},{cub}"], "mixes benchmarks in variable episodes only"),
    ],
)
def test_several_benchmarks_need_a_folder_each_and_variable_episodes(
    run_tfmeta, cub_dir, tmp_path, flags, message
):
    flags = [flag.format(cub=cub_dir) for flag in flags]
    result = run_tfmeta("train", "--dataset=cub,fc100", *flags, *TINY,
                        f"--output_dir={tmp_path}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
