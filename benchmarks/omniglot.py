"""Omniglot few-shot benchmark of the learner family, next to the published numbers.

The standard protocol (Vinyals et al. 2016, Finn et al. 2017): both official
sets pooled, 1100 + 100 characters for meta-training and validation, 423 held
out for testing, rotations by 90/180/270 degrees as new classes, 28x28
images, Conv-4 (64 filters). Each learner is trained per setting (5-way
1-shot, 5-way 5-shot, 20-way 1-shot, 20-way 5-shot) with its paper's recipe
(see `RECIPES`), then adapts to 600 test episodes (15 queries per class): we
report the mean accuracy with its 95% CI (`1.96 * std / sqrt(600)`), the
training time and the meta-iterations run. FineTune pretrains once on all
training classes and is evaluated in every setting. The one-pass learners
(R2-D2, Matching Networks, Relation Networks) fit no inner loop: each
predicts a test episode in one forward pass over its support set.

    python benchmarks/omniglot.py --data=../shared/data/omniglot/omniglot.tar.gz
    python benchmarks/omniglot.py --data=... --learners=maml,protonet --settings=5w1s \\
        --budget_minutes=10 --first_order --checkpoint_dir=omniglot-runs
    python benchmarks/omniglot.py --data=... --learners=r2d2,matching,relation \\
        --settings=5w1s,20w1s --budget_minutes=30 --checkpoint_dir=omniglot-runs

`--budget_minutes` caps the training time of each (learner, setting) run;
`--iterations` replaces the recipes' iteration counts. With
`--checkpoint_dir` a run can go in parts: training resumes from the last
checkpoint and the time already spent counts against the budget; finished
runs are read back from their record. `--curve_minutes` also evaluates on
`--curve_episodes` test episodes (the first ones of the final 600) every so
many minutes of training, for accuracy against training time; evaluation time
does not count against the budget. `--anneal` anneals the learning rate to 0
over the budget instead of the recipe's schedule (which a short budget may
never reach), from the recipe's first rate or `--anneal_from`;
`--rescore=MODES` also scores the final weights with other
`query_statistics` modes, on a finished run too. `--cpu_threads` sets TensorFlow's CPU
threads as `tfmeta train` does (`tfmeta.cpu_threads`). `--steps_per_execution=N` runs N
meta-updates per call into TensorFlow (Keras's `compile(steps_per_execution=N)`): the same
updates, with the budget, annealing and curve checked every N of them. Prints a table and, as its
last line, one JSON object with the same figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import machine
import tfmeta
import time_budget
from tfmeta import checkpointing, evaluation, query_statistics
from tfmeta.cli.configs import REPTILE_INNER_LOOP, REPTILE_PAPER_COMMANDS
from tfmeta.models.conv4 import NORMALIZATIONS as CONV4_NORMALIZATIONS
from tfmeta.models.conv4 import POOLINGS as CONV4_POOLINGS

flags.DEFINE_string("data", None, "Omniglot ImageFolder folder or .tar.gz (default: TFDS).")
flags.DEFINE_string("cache_dir", None, "Cache of decoded images (default: tfmeta's).")
flags.DEFINE_list("learners", ["maml", "protonet", "reptile", "metasgd", "anil", "finetune",
                               "r2d2", "matching", "relation"],
                  "Learners to run.")
flags.DEFINE_list("settings", ["5w1s", "5w5s", "20w1s", "20w5s"], "N-way K-shot settings.")
flags.DEFINE_integer("iterations", None, "Meta-iterations per run (default: each recipe's).")
flags.DEFINE_float("budget_minutes", None, "Training-time cap per (learner, setting) run.")
flags.DEFINE_string("checkpoint_dir", None, "Checkpoints and records, to run in parts.")
flags.DEFINE_integer("meta_batch_size", None, "Tasks per meta-update (default: each recipe's).")
flags.DEFINE_integer("train_queries", 15, "Query images per class in meta-training episodes.")
flags.DEFINE_integer("filters", 64, "Conv-4 filters.")
flags.DEFINE_enum("normalization", "batch", list(CONV4_NORMALIZATIONS),
                  "Conv-4's normalisation layers: BatchNorm, or TaskNorm-I ('task').")
flags.DEFINE_enum("pooling", None, list(CONV4_POOLINGS),
                  "Conv-4's features for the head: mean over positions, or all positions "
                  "flattened (default: Conv-4's variant: mean, flattened when max-pooled).")
flags.DEFINE_enum("matching_similarity", "euclidean", ["cosine", "euclidean"],
                  "Matching Networks' attention scores.")
flags.DEFINE_bool("anneal", False,
                  "Anneal the learning rate from the recipe's first rate to 0 over "
                  "--budget_minutes of training time (cosine), in place of the recipe's schedule.")
flags.DEFINE_float("anneal_from", None,
                   "With --anneal: the learning rate annealed from (default: the recipe's first).")
flags.DEFINE_bool("first_order", False, "MAML, ANIL and Meta-SGD without second-order terms.")
flags.DEFINE_bool("score_training_queries", False,
                  "Reptile: also predict each training task's queries after adaptation, for "
                  "a training loss nothing here reads (slower; Reptile runs before this flag "
                  "did).")
flags.DEFINE_enum("cpu_threads", "auto", list(tfmeta.cpu_threads.POLICIES),
                  "TensorFlow's CPU threads (tfmeta.cpu_threads); auto: per_task when every "
                  "run of the call meta-trains on meta-batches of 2 or more tasks.")
flags.DEFINE_integer("steps_per_execution", 1,
                     "Meta-updates per call into TensorFlow (Keras's compile option): fewer "
                     "calls and waits on Python for learners with fast steps; the budget, the "
                     "annealing and the curve are checked every so many updates.", lower_bound=1)
flags.DEFINE_integer("eval_episodes", 600, "Test episodes per setting.")
flags.DEFINE_integer("seed", 0, "Seed of weights and episodes.")
flags.DEFINE_float("curve_minutes", None, "Evaluate every so many training minutes (curve).")
flags.DEFINE_integer("curve_episodes", 200, "Test episodes per point of the curve.")
flags.DEFINE_enum("query_statistics", None, list(query_statistics.MODES),
                  "BatchNorm statistics for queries (default: each learner's own).")
flags.DEFINE_list("rescore", [],
                  "Also score a run's final weights with these query_statistics modes, on the "
                  "same test episodes (a finished run's saved learner is reused, not retrained).")
flags.DEFINE_bool("single_queries", False,
                  "Also score every test query sent alone (its own episode with the same support).")
FLAGS = flags.FLAGS

EVAL_QUERIES = 15
SAVE_EVERY = 250
PUBLISHED = {  # accuracy %, Omniglot 5w1s / 5w5s / 20w1s / 20w5s
    "maml": {"5w1s": 98.7, "5w5s": 99.9, "20w1s": 95.8, "20w5s": 98.9},  # Finn et al. 2017
    "protonet": {"5w1s": 98.8, "5w5s": 99.7, "20w1s": 96.0, "20w5s": 98.9},  # Snell et al. 2017
    "reptile": {"5w1s": 95.39, "5w5s": 98.90, "20w1s": 88.14, "20w5s": 96.65},  # Nichol et al.
    "metasgd": {"5w1s": 99.53, "5w5s": 99.93},  # Li et al. 2017
    "matching": {"5w1s": 98.1, "5w5s": 98.9, "20w1s": 93.8, "20w5s": 98.5},  # Vinyals et al.
    "relation": {"5w1s": 99.6, "5w5s": 99.8, "20w1s": 97.6, "20w5s": 99.1},  # Sung et al. 2018
    # R2-D2 (Bertinetto et al. 2019) is left out: its Omniglot table could not be found to
    # check the figures against; add them from the paper.
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a learner is trained in one setting (its paper's protocol, where it has one)."""

    build: Callable[[int, int], tfmeta.MetaLearner]  # (ways, shots) -> uncompiled learner
    optimizer: Callable[[int], keras.optimizers.Optimizer]  # iterations -> optimizer
    iterations: int
    meta_batch_size: Callable[[int], int]  # ways -> tasks per meta-update
    train_ways: Callable[[int], int] = lambda ways: ways
    train_shots: Callable[[int], int] = lambda shots: shots
    train_queries: Callable[[int, int], int] | None = None  # (ways, shots); None: --train_queries
    loss: Callable[[], keras.losses.Loss] = lambda: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)


def _maml_inner_loop(ways: int) -> dict:
    """Finn et al.: 5-way 1 step of 0.4 (3 in evaluation); 20-way 5 steps of 0.1."""
    if ways <= 5:
        return dict(inner_learning_rate=0.4, inner_steps=1, eval_inner_steps=3)
    return dict(inner_learning_rate=0.1, inner_steps=5, eval_inner_steps=5)


def _conv4(ways: int | None, max_pool: bool = False) -> keras.Model:
    return tfmeta.models.conv4((28, 28, 1), num_classes=ways, filters=FLAGS.filters,
                               max_pool=max_pool, normalization=FLAGS.normalization,
                               pooling=FLAGS.pooling)


def _relation_network(ways: int) -> tfmeta.RelationNetwork:
    """Sung et al.'s pair: their embedding network (5x5 feature maps), and the relation
    module (2 x [conv, BatchNorm, ReLU, max-pool], 8 + 1 units)."""
    embedding = tfmeta.models.relation_embedding((28, 28, 1), filters=FLAGS.filters)
    module = tfmeta.models.relation_module(embedding.outputs[0].shape[1:], filters=FLAGS.filters)
    return tfmeta.RelationNetwork(embedding, module, ways=ways)


def _halved_every(rate: float, steps: int) -> keras.optimizers.Optimizer:
    """Adam at `rate`, halved every `steps` meta-updates."""
    return keras.optimizers.Adam(
        keras.optimizers.schedules.ExponentialDecay(rate, steps, 0.5, staircase=True))


# Relation Networks' training queries per class (Sung et al. 2018), by (ways, shots).
RELATION_QUERIES = {(5, 1): 19, (5, 5): 15, (20, 1): 10, (20, 5): 5}


def _adam(iterations: int) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(1e-3)


# Nichol et al. 2018: the commands behind the paper's Omniglot table are
# `REPTILE_PAPER_COMMANDS` (the command's omniglot_*_reptile configs use them too). Adam with
# beta1 = 0 (its code's TF1 defaults otherwise), second moments carried from task to task.
# Its transductive 5-way 1-shot command (--query_statistics=transductive); the evaluation's
# minibatch of 25 is five passes over the 5 support images, the same as the whole set.
REPTILE_TRANSDUCTIVE_5W1S = dict(
    train_shots=15, inner_batch_size=25, inner_steps=3, inner_learning_rate=0.001,
    meta_batch_size=10, meta_step=1.0, iterations=100_000,
    eval_inner_batch_size=None, eval_inner_steps=5)


def _reptile_recipe(ways: int, shots: int) -> Recipe:
    """Reptile's recipe for one setting (`REPTILE_PAPER_COMMANDS`). Not as the paper's code: the
    moments are merged over a meta-batch's tasks (its tasks run one after another), its
    non-transductive test normalises each query with the support set plus that query
    (here: the support set's statistics), and its model flattens the last feature maps
    into the head (here: Conv-4's mean; `--pooling=flatten` for the paper's, measured
    no different)."""
    transductive = FLAGS.query_statistics == query_statistics.TRANSDUCTIVE
    settings = REPTILE_TRANSDUCTIVE_5W1S if transductive and (ways, shots) == (5, 1) \
        else REPTILE_PAPER_COMMANDS[ways, shots]
    return Recipe(
        build=lambda ways, shots: tfmeta.Reptile(
            _conv4(ways),
            inner_optimizer="adam",
            **{name: settings[name] for name in REPTILE_INNER_LOOP},
            query_statistics="support",
            carry_inner_moments=True,
            seed=FLAGS.seed,
            score_training_queries=FLAGS.score_training_queries,
        ),
        optimizer=lambda iterations: keras.optimizers.SGD(
            keras.optimizers.schedules.PolynomialDecay(
                settings["meta_step"], iterations, end_learning_rate=0.0)
        ),
        iterations=settings["iterations"],
        meta_batch_size=lambda ways: settings["meta_batch_size"],
        train_shots=lambda shots: settings["train_shots"],
        train_queries=lambda ways, shots: 5,  # only for the loss of --score_training_queries
    )


RECIPES = {
    "maml": Recipe(
        build=lambda ways, shots: tfmeta.MAML(
            _conv4(ways), first_order=FLAGS.first_order, **_maml_inner_loop(ways)
        ),
        optimizer=_adam,
        iterations=60_000,
        meta_batch_size=lambda ways: 32 if ways <= 5 else 16,
    ),
    "metasgd": Recipe(  # Li et al.: one inner step; rates start at MAML's step size here
        build=lambda ways, shots: tfmeta.MetaSGD(
            _conv4(ways), first_order=FLAGS.first_order, **_maml_inner_loop(ways)
        ),
        optimizer=_adam,
        iterations=60_000,
        meta_batch_size=lambda ways: 32 if ways <= 5 else 16,
    ),
    "anil": Recipe(  # Raghu et al.: MAML's setup, only the head adapts
        build=lambda ways, shots: tfmeta.ANIL(
            _conv4(ways), first_order=FLAGS.first_order, **_maml_inner_loop(ways)
        ),
        optimizer=_adam,
        iterations=60_000,
        meta_batch_size=lambda ways: 32 if ways <= 5 else 16,
    ),
    "reptile": _reptile_recipe,  # one recipe per setting
    "protonet": Recipe(  # Snell et al.: 60-way training, 5 queries, Adam halved every 2000
        build=lambda ways, shots: tfmeta.ProtoNet(_conv4(None)),
        optimizer=lambda iterations: keras.optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(1e-3, 2000, 0.5, staircase=True)
        ),
        iterations=20_000,
        meta_batch_size=lambda ways: 1,
        train_ways=lambda ways: 60,
        train_queries=lambda ways, shots: 5,
    ),
    # Bertinetto et al. 2019, the authors' Omniglot scripts (bertinetto/r2d2): 60-way training
    # episodes of 600 images (shots + queries = 10 per class), ridge penalty 50 and output
    # scale 10 meta-learned, Adam 5e-3 halved every 20 epochs of 100 episodes. Not done here:
    # their shots drawn per episode (1 to 9; here the setting's), their embedding network
    # (here Conv-4), early stopping; 20,000 updates as `omniglot_*_r2d2` in tfmeta.cli.
    "r2d2": Recipe(
        build=lambda ways, shots: tfmeta.R2D2(_conv4(None), ways=None, l2=50.0, scale=10.0),
        optimizer=lambda iterations: _halved_every(5e-3, 2000),
        iterations=20_000,
        meta_batch_size=lambda ways: 1,
        train_ways=lambda ways: 60,
        train_queries=lambda ways, shots: 10 - shots,
    ),
    # Vinyals et al. 2016: the paper's Omniglot embedding (Conv-4 with 2x2 max-pooling, 64
    # features) without full-context embeddings. The paper gives no optimizer settings:
    # Adam 1e-3, one episode per update, 5 queries per class and 20,000 updates as
    # `omniglot_*_matching` in tfmeta.cli. Not as theirs: attention over negative squared
    # distances instead of cosines (--matching_similarity), as the cosine's scores of
    # non-negative features stay within [0, 1], too flat a softmax: 91.00 at 5-way 1-shot.
    "matching": Recipe(
        build=lambda ways, shots: tfmeta.MatchingNetworks(
            _conv4(None, max_pool=True), ways=ways, similarity=FLAGS.matching_similarity),
        optimizer=_adam,
        iterations=20_000,
        meta_batch_size=lambda ways: 1,
        train_queries=lambda ways, shots: 5,
    ),
    # Sung et al. 2018: Adam 1e-3 halved every 100,000 episodes, one episode per update, 19 /
    # 15 / 10 / 5 queries per class, 1,000,000 episodes, MSE of the relation scores to one-hot
    # labels; the paper's embedding network (`tfmeta.models.relation_embedding`).
    "relation": Recipe(
        build=lambda ways, shots: _relation_network(ways),
        optimizer=lambda iterations: _halved_every(1e-3, 100_000),
        iterations=1_000_000,
        meta_batch_size=lambda ways: 1,
        train_queries=lambda ways, shots: RELATION_QUERIES[ways, shots],
        loss=tfmeta.losses.OneHotMeanSquaredError,
    ),
}
FINETUNE_PRETRAINING = dict(iterations=20_000, batch_size=64)  # Adam 1e-3, all 4400 classes


def _in_mode(learner: tfmeta.MetaLearner, mode: str) -> tfmeta.MetaLearner:
    """A new learner of `learner`'s config with `query_statistics=mode` (fresh weights)."""
    return type(learner).from_config(dict(learner.get_config(), query_statistics=mode))


def _with_query_statistics(learner: tfmeta.MetaLearner) -> tfmeta.MetaLearner:
    """The recipe's learner, rebuilt with `--query_statistics` when given."""
    if FLAGS.query_statistics is None:
        return learner
    return _in_mode(learner, FLAGS.query_statistics)


def _compile(learner: tfmeta.MetaLearner, optimizer,
             loss: keras.losses.Loss | None = None, steps_per_execution: int = 1) -> None:
    """Compiles with `loss` (default: cross-entropy of the logits) and accuracy."""
    learner.compile(
        optimizer=optimizer,
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


def _run_dir(name: str) -> str | None:
    if FLAGS.checkpoint_dir is None:
        return None
    if FLAGS.query_statistics is not None:
        name = f"{name}-{FLAGS.query_statistics}"
    if FLAGS.normalization != "batch":
        name = f"{name}-{FLAGS.normalization}norm"
    if FLAGS.anneal:
        name = f"{name}-annealed"
    if FLAGS.anneal_from is not None:
        name = f"{name}-from{FLAGS.anneal_from:g}"
    if name.startswith("matching-") and FLAGS.matching_similarity != "cosine":
        name = f"{name}-{FLAGS.matching_similarity}"
    path = os.path.join(FLAGS.checkpoint_dir, name)
    os.makedirs(path, exist_ok=True)
    return path


def _read_record(directory: str | None) -> dict:
    path = directory and os.path.join(directory, "record.json")
    if path and os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return {"iterations": 0, "train_seconds": 0.0, "curve": []}


def _write_record(directory: str | None, record: dict) -> None:
    if directory is None:
        return
    path = os.path.join(directory, "record.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


def _chunk(iterations: int) -> int:
    """Meta-iterations per epoch (between checkpoints)."""
    return min(SAVE_EVERY, iterations)


def _finished(record: dict, iterations: int) -> bool:
    """Whether a recorded run has reached `iterations` or spent its time budget."""
    budget = FLAGS.budget_minutes
    spent = budget is not None and record["train_seconds"] >= 60 * budget
    return record["iterations"] >= iterations or spent


def _train(fit: Callable, directory: str | None, iterations: int, evaluate=None,
           anneal_from: float | None = None) -> dict:
    """Runs `fit(data_seed, epochs, initial_epoch, callbacks)` within the budget, resumably.

    An epoch is `_chunk(iterations)` meta-iterations and ends with a
    checkpoint; a resumed run continues from the last one (a run stopped by
    its budget mid-epoch redoes that epoch's remainder), with a fresh data
    seed. `evaluate(learner)` draws the accuracy curve (`--curve_minutes`);
    `anneal_from` anneals the learning rate over the budget (`time_budget.TimeBudget`).
    """
    record = _read_record(directory)
    record.setdefault("curve", [])
    budget = None if FLAGS.budget_minutes is None else 60 * FLAGS.budget_minutes
    left = None if budget is None else max(0.0, budget - record["train_seconds"])
    done = checkpointing.latest_step(directory) if directory else 0
    chunk = _chunk(iterations)
    curve_seconds = None if FLAGS.curve_minutes is None or evaluate is None \
        else 60 * FLAGS.curve_minutes
    timer = time_budget.TimeBudget(left, record["train_seconds"], evaluate, curve_seconds,
                                   record["curve"], anneal_from)
    callbacks = [timer]
    if directory is not None:
        callbacks.append(checkpointing.MetaCheckpoint(directory))
    initial_epoch = done // chunk
    epochs = initial_epoch if left == 0.0 else max(initial_epoch, -(-iterations // chunk))
    fit(FLAGS.seed + done, epochs, initial_epoch, callbacks)
    record.update(iterations=timer.iterations, train_seconds=record["train_seconds"] + timer.spent)
    _write_record(directory, record)
    return record


def _evaluate(learner: tfmeta.MetaLearner, test, ways: int, shots: int,
              num_episodes: int | None = None) -> dict:
    """Accuracy with 95% CI on the first `num_episodes` (default `--eval_episodes`) episodes."""
    num_episodes = num_episodes or FLAGS.eval_episodes
    batch = 20 if ways <= 5 else 10
    episodes = test.episodes(
        ways, shots, EVAL_QUERIES, meta_batch_size=batch,
        num_episodes=-(-num_episodes // batch) * batch, seed=FLAGS.seed + 1,
    )
    return evaluation.evaluate_episodes(learner, episodes, num_episodes)


def _rescore(record: dict, learner: tfmeta.MetaLearner, loss: keras.losses.Loss, test,
             ways: int, shots: int) -> None:
    """Adds to `record["rescored"]` the accuracy of `learner`'s weights in each `--rescore`
    mode it lacks. The twin differs from `learner` in `query_statistics` only, so where
    meta-training is the same in both modes (Relation Networks: queries normalised with
    their own batch statistics in training either way) this is the other mode's result."""
    rescored = record.setdefault("rescored", {})
    for mode in FLAGS.rescore:
        if mode in rescored:
            continue
        twin = _in_mode(learner, mode)
        twin.set_weights(learner.get_weights())
        _compile(twin, "sgd", loss)
        rescored[mode] = _evaluate(twin, test, ways, shots)


def _evaluate_single_queries(learner: tfmeta.MetaLearner, test, ways: int, shots: int) -> dict:
    """Accuracy on the same test episodes with every query predicted alone.

    Each episode becomes `ways * 15` episodes with its support set and one of
    its queries, so nothing a query is predicted with comes from the others.
    """
    batch = 20 if ways <= 5 else 10
    num_episodes = FLAGS.eval_episodes
    episodes = test.episodes(
        ways, shots, EVAL_QUERIES, meta_batch_size=batch,
        num_episodes=-(-num_episodes // batch) * batch, seed=FLAGS.seed + 1,
    ).unbatch().take(num_episodes)
    correct = []
    for episode in episodes.batch(batch):
        queries = episode["query_x"].shape[1]
        alone = {
            "support_x": tf.repeat(episode["support_x"], queries, axis=0),
            "support_y": tf.repeat(episode["support_y"], queries, axis=0),
            "query_x": tf.reshape(episode["query_x"], [-1, 1, *episode["query_x"].shape[2:]]),
            "query_y": tf.reshape(episode["query_y"], [-1, 1]),
        }
        logits = learner.predict_on_batch(alone)
        hits = np.argmax(logits[:, 0], axis=-1) == alone["query_y"].numpy()[:, 0]
        correct.append(hits.reshape(-1, queries).mean(axis=1))
    accuracies = np.concatenate(correct)
    return {"accuracy": float(accuracies.mean()),
            "ci95": float(1.96 * accuracies.std() / np.sqrt(len(accuracies)))}


def _recipe(name: str, ways: int, shots: int) -> Recipe:
    recipe = RECIPES[name]
    return recipe if isinstance(recipe, Recipe) else recipe(ways, shots)  # Reptile's: per setting


def _meta_batch_size(recipe: Recipe, ways: int) -> int:
    return FLAGS.meta_batch_size or recipe.meta_batch_size(ways)


def _smallest_meta_batch() -> int:
    """The fewest tasks per update among this call's runs (FineTune's batches count as one)."""
    if "finetune" in FLAGS.learners:
        return 1
    settings = [_parse(setting) for setting in FLAGS.settings]
    return min(_meta_batch_size(_recipe(name, ways, shots), ways)
               for name in FLAGS.learners for ways, shots in settings)


def run_meta_learner(name: str, setting: str, sources) -> dict:
    ways, shots = _parse(setting)
    recipe = _recipe(name, ways, shots)
    directory = _run_dir(f"{name}-{setting}")
    iterations = FLAGS.iterations or recipe.iterations
    record = _read_record(directory)
    if "result" in record and _finished(record, iterations):
        if any(mode not in record.get("rescored", {}) for mode in FLAGS.rescore):
            saved = keras.saving.load_model(os.path.join(directory, "learner.keras"),
                                            compile=False)
            _rescore(record, saved, recipe.loss(), sources["test"], ways, shots)
            _write_record(directory, record)
        return record
    keras.utils.set_random_seed(FLAGS.seed)
    learner = _with_query_statistics(recipe.build(ways, shots))
    optimizer, anneal_from = recipe.optimizer(iterations), None
    if FLAGS.anneal:
        optimizer, anneal_from = time_budget.constant_rate(optimizer)
        anneal_from = FLAGS.anneal_from or anneal_from
    _compile(learner, optimizer, recipe.loss(), FLAGS.steps_per_execution)
    train_ways, train_shots = recipe.train_ways(ways), recipe.train_shots(shots)
    queries = FLAGS.train_queries if recipe.train_queries is None \
        else recipe.train_queries(ways, shots)
    batch = _meta_batch_size(recipe, ways)

    def fit(seed, epochs, initial_epoch, callbacks):
        episodes = sources["train"].episodes(
            train_ways, train_shots, queries, meta_batch_size=batch, seed=seed
        )
        learner.fit(episodes, steps_per_epoch=_chunk(iterations), epochs=epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks, verbose=0)

    def evaluate(learner):
        return _evaluate(learner, sources["test"], ways, shots, FLAGS.curve_episodes)

    record = _train(fit, directory, iterations, evaluate, anneal_from)
    record["annealed"] = FLAGS.anneal
    record["annealed_from"] = anneal_from
    record["result"] = _evaluate(learner, sources["test"], ways, shots)
    record["query_statistics"] = learner.query_statistics
    record["normalization"] = FLAGS.normalization
    if isinstance(learner, tfmeta.MatchingNetworks):
        record["similarity"] = learner.similarity
    _rescore(record, learner, recipe.loss(), sources["test"], ways, shots)
    if FLAGS.single_queries:
        record["single_query_result"] = _evaluate_single_queries(
            learner, sources["test"], ways, shots)
    if directory is not None:  # for benchmarks/export.py and `keras.saving.load_model`
        learner.save(os.path.join(directory, "learner.keras"))
    _write_record(directory, record)
    return record


def run_fine_tune(settings: list[str], sources) -> dict[str, dict]:
    directory = _run_dir("finetune-pretraining")
    iterations = FLAGS.iterations or FINETUNE_PRETRAINING["iterations"]
    keras.utils.set_random_seed(FLAGS.seed)
    body = _conv4(None)
    pretraining = tfmeta.FineTune(body, ways=5)
    train = sources["train"].class_images

    def fit(seed, epochs, initial_epoch, callbacks):
        images = _labelled_batches(train, FINETUNE_PRETRAINING["batch_size"], seed)
        pretraining.pretrain(images, num_classes=train.num_classes, epochs=epochs,
                             optimizer=keras.optimizers.Adam(1e-3),
                             steps_per_epoch=_chunk(iterations),
                             initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)

    record = _train(fit, directory, iterations)
    results = {}
    for setting in settings:
        ways, shots = _parse(setting)
        learner = tfmeta.FineTune(body, ways=ways)
        _compile(learner, "sgd")
        results[setting] = dict(record, result=_evaluate(learner, sources["test"], ways, shots))
    return results


def _labelled_batches(images: tfmeta.data.ClassImages, batch_size: int, seed: int):
    """Shuffled `(image, class id)` batches of every class, rotated classes included.

    Class `rotations * b + r` is base class `b` turned by `images.rotations[r]`
    quarter turns, the numbering of `ClassImages`.
    """
    base = np.repeat(np.arange(images.num_base_classes), images.counts)
    rotations = images.rotations
    x = np.concatenate([np.rot90(images.images, k, axes=(1, 2)) for k in rotations])
    y = np.concatenate([base * len(rotations) + r for r in range(len(rotations))])
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .prefetch(tf.data.AUTOTUNE)
    )


def _parse(setting: str) -> tuple[int, int]:
    ways, _, shots = setting.rstrip("s").partition("w")
    if not (ways.isdigit() and shots.isdigit()):
        raise ValueError(f"Expected settings like '5w1s'. Received: {setting!r}")
    return int(ways), int(shots)


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.learners) - set(RECIPES) - {"finetune"})
    if unknown:
        raise ValueError(f"Unknown learners {unknown}. Expected some of {[*RECIPES, 'finetune']}")
    for setting in FLAGS.settings:
        _parse(setting)
    for mode in FLAGS.rescore:
        query_statistics.check_mode(mode)
    if FLAGS.anneal and (FLAGS.budget_minutes is None or "finetune" in FLAGS.learners):
        raise ValueError("--anneal needs --budget_minutes (the time it anneals over) and "
                         "meta-learners (not finetune).")
    if FLAGS.anneal_from is not None and (not FLAGS.anneal or FLAGS.anneal_from <= 0):
        raise ValueError("--anneal_from is the positive learning rate --anneal starts from; "
                         f"it needs --anneal. Received: --anneal_from={FLAGS.anneal_from}")
    cpu_threads = tfmeta.cpu_threads.configure(FLAGS.cpu_threads, _smallest_meta_batch())
    sources = tfmeta.data.omniglot(FLAGS.data, protocol="vinyals", cache_dir=FLAGS.cache_dir)
    rows = []
    for name in FLAGS.learners:
        if name == "finetune":
            records = run_fine_tune(FLAGS.settings, sources)
        else:
            records = {s: run_meta_learner(name, s, sources) for s in FLAGS.settings}
        for setting, record in records.items():
            rows.append(dict(learner=name, setting=setting, **record["result"],
                             query_statistics=record.get("query_statistics"),
                             single_query=record.get("single_query_result"),
                             iterations=record["iterations"],
                             train_seconds=record["train_seconds"],
                             curve=record.get("curve", []),
                             published=PUBLISHED.get(name, {}).get(setting)))
            for mode, result in record.get("rescored", {}).items():
                rows.append(dict(rows[-1], **result, query_statistics=f"{mode} (rescored)",
                                 single_query=None, curve=[]))

    print(f"Omniglot (Vinyals split, rotations), {FLAGS.eval_episodes} test episodes, "
          f"{EVAL_QUERIES} queries per class; conv4 with {FLAGS.filters} filters"
          f"{', first order' if FLAGS.first_order else ''}"
          f"{'; learning rate annealed to 0 over the budget' if FLAGS.anneal else ''}"
          f"{f' from {FLAGS.anneal_from:g}' if FLAGS.anneal_from else ''}; "
          f"{machine.describe()}; CPU threads {cpu_threads} ({tfmeta.cpu_threads.describe()}); "
          f"{FLAGS.steps_per_execution} meta-update(s) per call")
    print(f"{'learner':<10}{'setting':<8}{'queries':<24}{'accuracy % (95% CI)':>22}"
          f"{'alone (95% CI)':>20}{'published':>11}{'iterations':>12}{'train min':>11}")
    for row in rows:
        published = "-" if row["published"] is None else f"{row['published']:.2f}"
        accuracy = f"{100 * row['accuracy']:.2f} +/- {100 * row['ci95']:.2f}"
        single = row["single_query"]
        alone = "-" if single is None else \
            f"{100 * single['accuracy']:.2f} +/- {100 * single['ci95']:.2f}"
        print(f"{row['learner']:<10}{row['setting']:<8}{str(row['query_statistics']):<24}"
              f"{accuracy:>22}{alone:>20}{published:>11}"
              f"{row['iterations']:>12}{row['train_seconds'] / 60:>11.1f}")
    for row in rows:
        if row["curve"]:
            points = "  ".join(f"{p['train_seconds'] / 60:.0f} min {100 * p['accuracy']:.1f}"
                               for p in row["curve"])
            print(f"curve {row['learner']} {row['setting']} ({FLAGS.curve_episodes} episodes): "
                  f"{points}")
    print(json.dumps({
        "benchmark": "omniglot",
        "protocol": "vinyals, rotations, 28x28",
        "filters": FLAGS.filters,
        "first_order": FLAGS.first_order,
        "annealed": FLAGS.anneal,
        "annealed_from": FLAGS.anneal_from,
        "budget_minutes": FLAGS.budget_minutes,
        "eval_episodes": FLAGS.eval_episodes,
        "results": rows,
        "processor": machine.processor(),  # of this run (a resumed run's parts may differ)
        "cpu_threads": cpu_threads,
        "steps_per_execution": FLAGS.steps_per_execution,
    }))


if __name__ == "__main__":
    app.run(main)
