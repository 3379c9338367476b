"""Every `--algorithm` through `tfmeta train`, on toy image classes and on the sinusoid."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from cli_testing import TOY

import tfmeta
from tfmeta.cli import configs, learners, options
from tfmeta.learners import matching_networks, r2d2
from tfmeta.learners import reptile as tfmeta_reptile
from tfmeta.models.relation_module import MIN_EMBEDDING_SIZE

TINY = [
    "--iterations=4",
    "--steps_per_epoch=2",
    "--meta_batch_size=2",
    "--eval_episodes=6",
    "--eval_inner_steps=2",
    "--batch_size=8",
]
# Tracing a Conv-4 meta-gradient costs 10-40 s on a busy 2-core CPU: the default run
# trains a gradient learner and a one-pass one on images, the slow run all of them.
FAST_ON_IMAGES = ("maml", "r2d2")


@pytest.mark.parametrize(
    "algorithm",
    [
        a if a in FAST_ON_IMAGES else pytest.param(a, marks=pytest.mark.slow)
        for a in options.ALGORITHMS if a not in options.REGRESSION_ONLY
    ],
)
def test_every_algorithm_trains_and_evaluates_on_image_classes(
    run_tfmeta, image_folder, tmp_path, algorithm
):
    ways = 2 if algorithm in options.CLASSIFICATION_ONLY else 3  # these evaluate other ways
    result = run_tfmeta(
        "train",
        f"--algorithm={algorithm}",
        f"--dataset={image_folder}",
        *TOY,
        *TINY,
        f"--eval_ways={ways}",
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["iterations_done"] == 4
    accuracy = metrics["eval"]["accuracy"]
    assert accuracy["tasks"] == 6 and 0.0 <= accuracy["mean"] <= 1.0
    assert metrics["eval"]["ways"] == ways
    assert (tmp_path / "accuracy.png").is_file() and (tmp_path / "learner.keras").is_file()
    assert f"held-out {ways}-way 1-shot accuracy" in result.stdout
    if algorithm == "maml":  # TensorBoard shows the probe episode's images
        events = (tmp_path / "logs" / "steps").glob("events.out.tfevents.*")
        tags = {
            value.tag
            for path in events
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value
        }
        assert {"probe_episode/support_x", "probe_episode/query_x"} <= tags

    if algorithm == "protonet":  # its prototypes need no fixed number of ways
        result = run_tfmeta(
            "evaluate", f"--output_dir={tmp_path}", "--eval_ways=4", "--eval_episodes=4"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        written = tmp_path / "evaluations" / "4way_1shot_2queries_2steps_4tasks_seed0.json"
        evaluation = json.loads(written.read_text())["eval"]
        assert evaluation["ways"] == 4 and evaluation["accuracy"]["tasks"] == 4
        assert json.loads((tmp_path / "metrics.json").read_text())["eval"]["ways"] == ways

    if algorithm in ("r2d2", "matching", "relation"):  # one pass: both exporters take them
        for export_format in ("saved_model", "tflite"):
            result = run_tfmeta("export", f"--output_dir={tmp_path}", f"--format={export_format}")
            assert result.returncode == 0, result.stderr[-3000:]
        assert list((tmp_path / "export").glob("*/1/saved_model.pb"))
        assert list((tmp_path / "export").glob("*.tflite"))


def test_evaluate_takes_more_ways_than_a_one_pass_classifier_was_trained_with(
    run_tfmeta, image_folder, tmp_path
):
    # Trained and evaluated 3-way, the saved Matching Network holds ways=3; a 5-way evaluation
    # of it ended in an EpisodeError traceback (exit 1).
    result = run_tfmeta("train", "--algorithm=matching", f"--dataset={image_folder}", *TOY, *TINY,
                        f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert keras.saving.load_model(tmp_path / "learner.keras").ways == 3
    result = run_tfmeta("evaluate", f"--output_dir={tmp_path}", "--eval_ways=5",
                        "--eval_episodes=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out 5-way 1-shot accuracy" in result.stdout


def test_a_transductive_run_is_evaluated_and_served_in_the_mode_it_is_given(
    run_tfmeta, image_folder, tmp_path
):
    result = run_tfmeta("train", "--algorithm=r2d2", f"--dataset={image_folder}", *TOY, *TINY,
                        "--query_statistics=transductive", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    kept = {path: path.read_bytes() for path in (tmp_path / "metrics.json",
                                                 tmp_path / "options.json")}

    # What each query scores when served alone, before exporting: moving statistics.
    evaluations = {}
    for mode in ("", "moving"):
        flag = [f"--query_statistics={mode}"] if mode else []
        result = run_tfmeta("evaluate", f"--output_dir={tmp_path}", *flag)
        assert result.returncode == 0, result.stderr[-3000:]
        name = "3way_1shot_2queries_2steps_6tasks_seed0" + (f"_{mode}_statistics" if mode else "")
        evaluations[mode] = json.loads((tmp_path / "evaluations" / f"{name}.json").read_text())
    own, moving = (evaluations[mode]["eval"]["query_loss_after_adaptation"]["mean"]
                   for mode in ("", "moving"))
    trained = json.loads(kept[tmp_path / "metrics.json"])["eval"]["query_loss_after_adaptation"]
    assert own == pytest.approx(trained["mean"])  # the learner's own mode: as at training's end
    assert abs(own - moving) > 1e-6  # the mode reached the predictions
    assert [evaluations[mode]["options"]["query_statistics"] for mode in ("", "moving")] == [
        "transductive", "moving"]

    # Trained with each query batch's own statistics, a served query would depend on the
    # other queries of its request: export refuses, writing nothing, until told the mode.
    result = run_tfmeta("export", f"--output_dir={tmp_path}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfmeta: error: "), result.stderr[-2000:]
    assert "--query_statistics=moving or support to serve each query alone" in lines[0]
    assert not [path for path in tmp_path.glob("export/**/*") if path.is_file()]

    for export_format in ("saved_model", "tflite"):
        result = run_tfmeta("export", f"--output_dir={tmp_path}", f"--format={export_format}",
                            "--query_statistics=moving")
        assert result.returncode == 0, result.stderr[-3000:]
    version = next((tmp_path / "export").glob("*/1"))
    info = tfmeta.exporters.read_metadata(version)
    assert info["query_statistics"] == "moving" and info["query_independent"] is True
    assert {path: path.read_bytes() for path in kept} == kept  # the run is unchanged

    learner = keras.saving.load_model(tmp_path / "learner.keras")
    learner.query_statistics = "moving"
    shape = tuple(learner.model.inputs[0].shape[1:])
    images = tf.random.stateless_uniform((7, *shape), seed=(0, 1))
    task = {"support_x": images[:3], "support_y": tf.constant([0, 1, 2]), "query_x": images[3:]}
    expected, _ = learner.adapt_and_predict(task, learner.read_state(), training=False)
    adapt = tf.saved_model.load(str(version)).signatures["adapt_and_predict"]
    for query in range(4):  # each query served alone
        served = adapt(**dict(task, query_x=task["query_x"][query:query + 1]))["outputs"]
        np.testing.assert_allclose(served[0], expected[query], rtol=1e-5, atol=1e-5)


def test_a_transductive_export_is_refused_in_one_line_by_the_command(  # as a user meets it
    run_tfmeta, tfmeta_command, image_folder, tmp_path
):
    result = run_tfmeta("train", "--algorithm=r2d2", f"--dataset={image_folder}", *TOY, *TINY,
                        "--query_statistics=transductive", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    process = tfmeta_command("export", f"--output_dir={tmp_path}")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"tfmeta: error: the learner in {tmp_path} normalises each query batch with its own "
        "BatchNorm statistics (trained with --query_statistics=transductive), so a served "
        "query would depend on the request's other queries; pass --query_statistics=moving "
        "or support to serve each query alone, or --query_statistics=transductive to export "
        "it as trained, for clients that always send whole query batches"]
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def built_from_command_line(*args):
    """`(run_options, learner)` that `tfmeta train` builds from these flags (Omniglot, Conv-4
    of 4 filters), the options parsed by absl and checked as the command does."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["tfmeta", "--dataset=omniglot", "--filters=4", *args])
        run_options = options.resolve(options.explicit_flags(flags.FLAGS))
    finally:
        flags.FLAGS.unparse_flags()
    options.check_options(run_options)
    return run_options, learners.build(run_options, (8, 8, 1), classification=True)


@pytest.mark.parametrize("head", [None, "ridge", "logistic"])
def test_r2d2_head_flag_builds_that_head(head):
    """`--r2d2_head` reaches `R2D2(head=...)`; unset, the ridge head (R2-D2 as published)."""
    run_options, learner = built_from_command_line(
        "--algorithm=r2d2", *([] if head is None else [f"--r2d2_head={head}"]))
    assert isinstance(learner, tfmeta.R2D2)
    assert learner.head_kind == (head or "ridge")
    assert learner.newton_steps == (r2d2.DEFAULT_NEWTON_STEPS if head == "logistic" else None)
    assert options.R2D2_HEADS == r2d2.HEADS  # the flag's choices are the learner's heads


def test_r2d2_head_in_a_saved_options_file_is_checked():
    """A value the flag's enum cannot refuse (an edited options.json) fails as one error."""
    with pytest.raises(ValueError, match="unknown --r2d2_head=newton; choose one of"):
        options.check_options(
            options.RunOptions(algorithm="r2d2", dataset="omniglot", r2d2_head="newton")
        )
    with pytest.raises(ValueError, match="--r2d2_head does not apply to --algorithm=maml"):
        options.check_options(options.RunOptions(r2d2_head="ridge"))


def test_network_flag_builds_the_relation_papers_embedding():
    """`--network=relation` embeds with `tfmeta.models.relation_embedding` (5x5 maps of a
    28x28 image), as `--config=omniglot_<N>w<K>s_relation` does; unset, Conv-4's maps."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["tfmeta", "--config=omniglot_5w1s_relation", "--filters=4"])
        run_options = options.resolve(options.explicit_flags(flags.FLAGS))
    finally:
        flags.FLAGS.unparse_flags()
    options.check_options(run_options)
    learner = learners.build(run_options, (28, 28, 1), classification=True)
    assert isinstance(learner, tfmeta.RelationNetwork) and run_options.network == "relation"
    paper = tfmeta.models.relation_embedding((28, 28, 1), filters=4)
    assert learner.model.output_shape == paper.output_shape == (None, 5, 5, 4)
    layer_types = [type(layer) for layer in paper.layers]
    assert [type(layer) for layer in learner.model.layers] == layer_types
    conv4 = learners.build(dataclasses.replace(run_options, network="conv4"), (28, 28, 1), True)
    assert conv4.model.output_shape == (None, 2, 2, 4)
    # --help names the bound without TensorFlow: it must be the model's own.
    assert options.RELATION_EMBEDDING_MIN_SIZE == MIN_EMBEDDING_SIZE


@pytest.mark.parametrize("change, message", [
    (dict(algorithm="protonet"), "--network=relation .* serves --algorithm=relation only"),
    (dict(image_size=8), r"--network=relation needs --image_size >= 10 .* --image_size=8"),
    (dict(max_pool=True), "--max_pool is an option of Conv-4, not of --network=relation"),
    (dict(normalization="layer"), "--normalization is an option of Conv-4"),
    (dict(network="resnet"), r"unknown --network=resnet; choose one of \['conv4', 'relation'\]"),
])
def test_network_flag_refuses_what_the_relation_embedding_cannot_do(change, message):
    run_options = options.RunOptions(algorithm="relation", dataset="omniglot", network="relation")
    options.check_options(run_options)
    with pytest.raises(ValueError, match=message):
        options.check_options(dataclasses.replace(run_options, **change))


# Flags that choose a variant of one learner: the learner, its attribute, its default, the
# learner module's choices, an unknown value.
VARIANT_FLAGS = {
    "reptile_inner_optimizer": (tfmeta.Reptile, "inner_optimizer", "sgd",
                                tfmeta_reptile.INNER_OPTIMIZERS, "rmsprop"),
    "matching_similarity": (tfmeta.MatchingNetworks, "similarity", "cosine",
                            matching_networks.SIMILARITIES, "l1"),
}


@pytest.mark.parametrize("flag, choice", [
    (flag, choice) for flag, (_, _, _, choices, _) in VARIANT_FLAGS.items()
    for choice in (None, *choices)])
def test_variant_flag_builds_that_variant(flag, choice):
    """`--reptile_inner_optimizer` and `--matching_similarity` reach the learner; unset, its
    default (the paper's), and the run's default name is the one it had before the flag."""
    learner_class, attribute, default, choices, unknown = VARIANT_FLAGS[flag]
    algorithm = options.ALGORITHM_VARIANTS[flag][1]
    run_options, learner = built_from_command_line(
        f"--algorithm={algorithm}", *([] if choice is None else [f"--{flag}={choice}"]))
    assert isinstance(learner, learner_class)
    assert getattr(learner, attribute) == (choice or default)
    assert options.ALGORITHM_VARIANTS[flag][0] == choices  # the flag's are the learner's
    assert options.ALGORITHM_VARIANTS[flag][3] == attribute  # the keyword that takes it
    unset = dataclasses.replace(run_options, **{flag: None})
    assert (options.default_run_name(run_options) == options.default_run_name(unset)) == (
        choice is None)
    with pytest.raises(ValueError, match=f"unknown --{flag}={unknown}"):
        options.check_options(dataclasses.replace(run_options, **{flag: unknown}))
    with pytest.raises(ValueError, match=f"--{flag} does not apply to --algorithm=maml"):
        options.check_options(options.RunOptions(**{flag: choices[0]}))


@pytest.mark.parametrize("ways, shots", sorted(configs.REPTILE_PAPER_COMMANDS))
def test_reptile_configs_build_the_paper_codes_command(ways, shots):
    """`--config=omniglot_<N>w<K>s_reptile` is the command of Reptile's code for that cell:
    Adam inner steps on support minibatches with carried second moments, more support images
    per class in training than at test, outer SGD annealed linearly to 0."""
    command = configs.REPTILE_PAPER_COMMANDS[ways, shots]
    run_options, learner = built_from_command_line(f"--config=omniglot_{ways}w{shots}s_reptile")
    assert isinstance(learner, tfmeta.Reptile)
    assert (run_options.ways, run_options.shots, run_options.evaluation_shots) == (
        ways, command["train_shots"], shots)
    assert run_options.meta_batch_size == command["meta_batch_size"]
    assert run_options.iterations == command["iterations"]
    assert learner.inner_optimizer == "adam" and learner.carry_inner_moments
    assert learner.inner_batch_size == command["inner_batch_size"]
    assert learner.eval_inner_batch_size == command["eval_inner_batch_size"]
    assert (learner.inner_steps, learner.eval_inner_steps) == (
        command["inner_steps"], command["eval_inner_steps"])
    assert learner.inner_learning_rate == pytest.approx(command["inner_learning_rate"])
    assert isinstance(learner.optimizer, keras.optimizers.SGD)
    schedule = keras.optimizers.schedules.deserialize(
        learner.optimizer.get_config()["learning_rate"])
    assert float(schedule(0)) == pytest.approx(command["meta_step"])
    assert float(schedule(command["iterations"])) == 0.0


@pytest.mark.parametrize("flag", ["inner_batch_size", "eval_inner_batch_size"])
def test_inner_batch_sizes_reach_reptile_and_are_refused_elsewhere(flag):
    """Set, each reaches the learner; the training one names a new run, the evaluation one
    (changeable when resuming or evaluating) does not."""
    run_options, learner = built_from_command_line("--algorithm=reptile", f"--{flag}=3")
    assert getattr(learner, flag) == 3
    renamed = options.default_run_name(run_options) != options.default_run_name(
        dataclasses.replace(run_options, **{flag: None}))
    assert renamed == (flag not in options.EVALUATION_FIELDS)
    with pytest.raises(ValueError, match=f"--{flag} .* serves --algorithm=reptile only; "
                                         "received --algorithm=maml"):
        options.check_options(options.RunOptions(**{flag: 3}))
    with pytest.raises(ValueError, match=f"--{flag} must be"):
        options.check_options(dataclasses.replace(run_options, **{flag: 0}))


@pytest.mark.parametrize(
    "algorithm",
    ["fomaml", *(pytest.param(a, marks=pytest.mark.slow) for a in ("metasgd", "anil", "reptile"))],
)
def test_gradient_algorithms_learn_sinusoids(run_tfmeta, tmp_path, algorithm):
    result = run_tfmeta(
        "train", f"--algorithm={algorithm}", *TINY, "--eval_episodes=10", f"--output_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["eval"]["query_loss_after_adaptation"]["tasks"] == 10
    assert metrics["options"]["algorithm"] == algorithm


@pytest.mark.parametrize(
    "dataset", ["gaussian_process", pytest.param("sinusoid", marks=pytest.mark.slow)]
)
def test_conditional_neural_process_learns_curves_and_exports(run_tfmeta, tmp_path, dataset):
    result = run_tfmeta(
        "train", "--algorithm=cnp", f"--dataset={dataset}", *TINY, "--eval_episodes=10",
        "--eval_queries=20", f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((tmp_path / "metrics.json").read_text())["eval"]
    assert evaluation["query_loss_after_adaptation"]["tasks"] == 10  # the Gaussian NLL
    assert evaluation["query_mse_of_mean"]["tasks"] == 10
    assert evaluation["query_mse_of_mean"]["mean"] > 0
    assert "held-out query NLL: " in result.stdout and "MSE of the predicted mean" in result.stdout
    result = run_tfmeta("evaluate", f"--output_dir={tmp_path}", "--eval_shots=5",
                        "--eval_episodes=4")
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(next((tmp_path / "evaluations").glob("5shot_*.json")).read_text())
    assert written["eval"]["query_mse_of_mean"]["tasks"] == 4 and written["eval"]["shots"] == 5
    for export_format in ("saved_model", "tflite"):
        result = run_tfmeta("export", f"--output_dir={tmp_path}", f"--format={export_format}")
        assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "export").glob("*/1/saved_model.pb"))
    assert list((tmp_path / "export").glob("*.tflite"))
