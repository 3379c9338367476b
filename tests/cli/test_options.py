"""Options of the `tfmeta` command: precedence of defaults, --config, --flagfile and flags."""

import dataclasses
import re

import pytest
from absl import flags

from tfmeta.cli import configs, main, options


@pytest.fixture
def parse():
    """Parses a command line as `tfmeta` does; returns the explicit options."""

    def parse_args(*args: str) -> dict:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["tfmeta", *args])
        return options.explicit_flags(flags.FLAGS)

    yield parse_args
    flags.FLAGS.unparse_flags()


def test_flag_defaults_are_the_run_options_defaults():
    defaults = options.RunOptions()
    for name in options.FIELDS:
        default = flags.FLAGS[name].default
        assert (int(default) if name == "channels" else default) == getattr(defaults, name), name


def test_flags_override_the_config_and_the_flagfile_holds_flags(parse, tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--config=omniglot_5w1s_maml\n--meta_batch_size=8\n--iterations=2000\n")
    run_options = main.resolve_options(
        "train", parse(f"--flagfile={flagfile}", "--inner_steps=2", "--output_dir=somewhere")
    )
    assert run_options.config == "omniglot_5w1s_maml" and run_options.dataset == "omniglot"
    assert (run_options.ways, run_options.shots, run_options.inner_learning_rate) == (5, 1, 0.4)
    assert (run_options.meta_batch_size, run_options.iterations) == (8, 2000)  # the flagfile
    assert run_options.inner_steps == 2  # the command line
    assert run_options.eval_queries == 15 and run_options.eval_inner_steps == 10  # the config


def test_evaluate_starts_from_the_runs_saved_options(parse, tmp_path):
    trained = options.RunOptions(
        config="sinusoid_reptile", algorithm="reptile", shots=7, output_dir=str(tmp_path)
    )
    (tmp_path / options.OPTIONS_FILE).write_text(options.saved_options_text(trained))
    (tmp_path / options.LEARNER_FILE).write_text("")
    run_options = main.resolve_options(
        "evaluate", parse(f"--output_dir={tmp_path}", "--eval_shots=3")
    )
    assert run_options == dataclasses.replace(trained, eval_shots=3)


@pytest.mark.parametrize("name", sorted(configs.CONFIGS))
def test_every_named_config_is_valid(name):
    run_options = options.resolve({"config": name})
    options.check_options(run_options)
    assert run_options.algorithm in name and run_options.dataset in name


@pytest.mark.parametrize(
    "explicit, output_dir",
    [
        ({}, r"tfmeta_runs/sinusoid_maml_[0-9a-f]{8}"),
        ({"config": "omniglot_5w1s_protonet"}, r"tfmeta_runs/omniglot_5w1s_protonet"),
        ({"config": "sinusoid_maml", "iterations": 100}, r"tfmeta_runs/sinusoid_maml"),
        ({"config": "sinusoid_maml", "shots": 5}, r"tfmeta_runs/sinusoid_maml_[0-9a-f]{8}"),
        ({"dataset": "./data/my_images/", "algorithm": "anil"}, r"tfmeta_runs/my_images_anil_\w+"),
        ({"output_dir": "runs/a"}, r"runs/a"),
    ],
)
def test_the_run_directory_is_named_after_the_config_or_the_dataset_and_algorithm(
    explicit, output_dir
):
    assert re.fullmatch(output_dir, options.resolve(explicit).output_dir)


def test_default_names_never_collide_with_a_named_config_or_another_run():
    """A bare `tfmeta train` once took `--config=sinusoid_maml`'s directory, which then refused."""
    bare = options.resolve({}).output_dir
    assert bare not in {options.resolve({"config": name}).output_dir for name in configs.CONFIGS}
    assert options.resolve({"ways": 3}).output_dir != bare
    # What a run may change when it resumes keeps its directory.
    resumable = {"iterations": 20, "eval_episodes": 5, "log_every": 3}
    assert options.resolve(resumable).output_dir == bare


def test_options_added_later_leave_a_runs_default_name_unchanged_at_their_defaults():
    # The name of a MAML Omniglot run as computed before --normalization and --r2d2_head existed.
    run = options.RunOptions(dataset="omniglot", algorithm="maml")
    assert options.default_run_name(run) == "omniglot_maml_02de85a3"
    assert options.default_run_name(dataclasses.replace(run, normalization="task")) != (
        "omniglot_maml_02de85a3")
