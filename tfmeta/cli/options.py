"""The flags of the `tfmeta` command and the `RunOptions` built from them.

Nothing here imports TensorFlow: options are resolved and checked before a
command builds anything, so a bad flag fails before any data is read.

Precedence, lowest to highest: the defaults below, the run's saved options
(`evaluate` and `export` read `<output_dir>/options.json`), the named
`--config`, then every flag given on the command line or in a `--flagfile`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
from typing import Any

from absl import flags

from tfmeta.cli import configs

ALGORITHMS = (
    "maml", "fomaml", "metasgd", "anil", "reptile", "protonet", "finetune",
    "r2d2", "matching", "relation", "cnp",
)
RL_ALGORITHMS = ("maml_trpo", "maml_ppo")  # meta-RL with --env: see tfmeta.cli.rl_train
# Classifiers whose head is no `--ways` output layer (any --eval_ways evaluates).
CLASSIFICATION_ONLY = ("protonet", "finetune", "r2d2", "matching", "relation")
R2D2_HEADS = ("ridge", "logistic")  # tfmeta.learners.r2d2.HEADS (named here: no TensorFlow)
REPTILE_INNER_OPTIMIZERS = ("sgd", "adam")  # tfmeta.learners.reptile.INNER_OPTIMIZERS
MATCHING_SIMILARITIES = ("cosine", "euclidean")  # tfmeta.learners.matching_networks.SIMILARITIES
# --network: Conv-4 (tfmeta.models.conv4), or the Relation Network paper's embedding
# (tfmeta.models.relation_embedding), which needs images of at least its MIN_EMBEDDING_SIZE.
NETWORKS = ("conv4", "relation")
RELATION_EMBEDDING_MIN_SIZE = 10
# Flags that choose a variant of one algorithm: their choices, that algorithm, what they
# choose, and the learner's keyword argument that takes the choice.
ALGORITHM_VARIANTS = {
    "r2d2_head": (R2D2_HEADS, "r2d2", "R2-D2's head", "head"),
    "reptile_inner_optimizer": (REPTILE_INNER_OPTIMIZERS, "reptile", "Reptile's inner loop",
                                "inner_optimizer"),
    "matching_similarity": (MATCHING_SIMILARITIES, "matching",
                            "Matching Networks' attention scores", "similarity"),
}
# Reptile's inner minibatches (tfmeta.Reptile's keyword arguments of the same names).
_REPTILE_BATCH_SIZES = ("inner_batch_size", "eval_inner_batch_size")
REGRESSION_ONLY = ("cnp",)
EXPORT_FORMATS = ("saved_model", "tflite")
OMNIGLOT_PROTOCOLS = ("vinyals", "lake")
OPTIONS_FILE = "options.json"
LEARNER_FILE = "learner.keras"
CHECKPOINT_DIR = "checkpoints"

# The kinds of --dataset (see `dataset_kind`).
SINUSOID = "sinusoid"
GAUSSIAN_PROCESS = "gaussian_process"
REGRESSION_DATASETS = (SINUSOID, GAUSSIAN_PROCESS)  # generated task families
OMNIGLOT = "omniglot"
# The standard benchmarks, read from the files --data_dir holds (tfmeta.data.mini_imagenet, ...).
BENCHMARKS = ("mini_imagenet", "tiered_imagenet", "cifar_fs", "fc100", "cub")
# Several benchmarks at once (`--dataset=cub,fc100 --data_dir=<cub>,<cifar>`): variable training
# episodes mixed over them, and evaluation per source.
MIXED_BENCHMARKS = "mixed_benchmarks"
# --episodes: fixed N-way K-shot, or Meta-Dataset's varying ways and shots under one of
# tfmeta.data.VARIABLE_EPISODE_CONFIGS (named here so that --help imports no TensorFlow).
FIXED_EPISODES = "fixed"
VARIABLE_EPISODE_CONFIG_NAMES = ("meta_dataset", "small")
EPISODE_KINDS = (FIXED_EPISODES, *(f"variable:{n}" for n in VARIABLE_EPISODE_CONFIG_NAMES))
IMAGE_FOLDER = "image_folder"
TFDS = "tfds"
_TFDS_NAME = re.compile(r"[a-z0-9_]+(/[A-Za-z0-9_.+-]+)?(:[0-9.*]+)?")

# Options that a later `train` into the same --output_dir may change (the
# others must match the checkpoints), and that `evaluate` accepts.
EVALUATION_FIELDS = (
    "eval_ways",
    "eval_shots",
    "eval_queries",
    "eval_inner_learning_rate",
    "eval_inner_steps",
    "eval_inner_batch_size",
    "eval_episodes",
    "data_dir",
)
# How the command reports while it trains: free to change on every call.
REPORTING_FIELDS = ("progress_seconds", "log_every")
# How the command uses the machine: free to change on every call too.
EXECUTION_FIELDS = ("cpu_threads",)
RESUMABLE_CHANGES = (
    EVALUATION_FIELDS + REPORTING_FIELDS + EXECUTION_FIELDS + ("iterations", "config", "output_dir")
)
EXPORT_FIELDS = ("export_dir", "format", "version", "query_size", "eval_ways", "eval_shots")

flags.DEFINE_enum(
    "config",
    None,
    sorted(configs.CONFIGS),
    "A named configuration (tfmeta.cli.configs); flags override it.",
)
flags.DEFINE_enum("algorithm", "maml", ALGORITHMS + RL_ALGORITHMS, "Meta-learning algorithm.")
flags.DEFINE_string(
    "env",
    None,
    "Meta-RL task family for --algorithm=maml_trpo or maml_ppo: navigation_2d, "
    "halfcheetah_vel, halfcheetah_dir, ant_dir, ant_vel (the last four need tfmeta[rl]).",
)
flags.DEFINE_integer(
    "env_processes",
    1,
    "MuJoCo --env: processes that step its environments (same rollouts for any N).",
    lower_bound=1,
)
flags.DEFINE_string(
    "dataset",
    "sinusoid",
    "Task source: 'sinusoid'; 'gaussian_process' (RBF curves of the CNP paper); 'omniglot' "
    "(from --data_dir, else TFDS); 'mini_imagenet', 'tiered_imagenet', 'cifar_fs', 'fc100' or "
    "'cub' (the published class split, from --data_dir's files; with --channels=3); several "
    "joined by commas, e.g. 'cub,fc100' with one --data_dir each (training mixes them with "
    "--episodes=variable:*, evaluation reports each); a TFDS name such as 'mnist'; or an "
    "ImageFolder <dir>/<split>/<class>/<image> (a path: existing, or starting '.', '/', '~').",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Omniglot: its .tar.gz, or a folder with train/ and test/. "
    "mini_imagenet: JPEGs with train.csv/val.csv/test.csv, an ILSVRC train folder, or "
    "ILSVRC2012_img_train.tar (or its folder); tiered_imagenet: the same ILSVRC sources, "
    "or a copy with train/ val/ test/; cifar_fs, fc100: CIFAR-100's binary "
    "version (.tar.gz or folder); cub: the CUB_200_2011 folder; several: their folders in "
    "--dataset's order, comma-joined. A TFDS name: TFDS's data folder.",
)
flags.DEFINE_enum(
    "omniglot_protocol",
    "vinyals",
    OMNIGLOT_PROTOCOLS,
    "Omniglot class split: 'vinyals' (1100/100/423 characters) or 'lake' "
    "(background/evaluation sets).",
)
flags.DEFINE_string("train_split", "train", "TFDS or ImageFolder split whose classes meta-train.")
flags.DEFINE_string("eval_split", "test", "TFDS or ImageFolder split of the held-out classes.")
flags.DEFINE_integer("image_size", 28, "Side of the square images (resized), for image datasets.")
flags.DEFINE_enum("channels", "1", ["1", "3"], "Image channels: 1 (grayscale) or 3 (RGB).")
flags.DEFINE_integer("ways", 5, "Classes per task (N) in meta-training.")
flags.DEFINE_integer("eval_ways", None, "Classes per task in evaluation (default: --ways).")
flags.DEFINE_integer("shots", 10, "Support examples per class (K); per task for regression.")
flags.DEFINE_integer("eval_shots", None, "Support examples in evaluation (default: --shots).")
flags.DEFINE_integer("queries", 10, "Query examples per class; per task for regression.")
flags.DEFINE_integer(
    "eval_queries",
    None,
    "Query examples in evaluation (default: --queries; 100 points for the sinusoid).",
)
flags.DEFINE_enum(
    "episodes",
    FIXED_EPISODES,
    EPISODE_KINDS,
    "Meta-training episodes: 'fixed' (--ways, --shots, --queries), or Meta-Dataset's varying "
    "ways and shots under a named config: 'variable:meta_dataset' (5-50 ways, up to 500 support "
    "examples), 'variable:small' (5-20 ways, up to 100); --algorithm=protonet only. Evaluation "
    "keeps --eval_ways/--eval_shots/--eval_queries.",
)
flags.DEFINE_integer("meta_batch_size", 25, "Tasks per meta-update.")
flags.DEFINE_integer("batch_size", 64, "finetune: images per pretraining batch.")
flags.DEFINE_float(
    "inner_learning_rate",
    0.01,
    "Inner-loop SGD step size in meta-training (metasgd: the learned rates' initial value).",
)
flags.DEFINE_integer("inner_steps", 1, "Inner-loop steps in meta-training.")
flags.DEFINE_float(
    "eval_inner_learning_rate",
    None,
    "Inner step size in evaluation (default: --inner_learning_rate; finetune: 0.1).",
)
flags.DEFINE_integer(
    "eval_inner_steps", 10, "Inner-loop steps in evaluation (finetune: fine-tuning steps)."
)
flags.DEFINE_integer(
    "inner_batch_size", None,
    "reptile: support examples per inner step (default: all).",
)
flags.DEFINE_integer(
    "eval_inner_batch_size", None, "reptile: the same in evaluation."
)
flags.DEFINE_float(
    "meta_learning_rate",
    1e-3,
    "Outer learning rate (Adam); reptile: the SGD step size epsilon, decayed linearly to 0; "
    "finetune: the pretraining Adam learning rate.",
)
flags.DEFINE_enum(
    "query_statistics",
    None,
    ["support", "support_instance", "transductive", "moving"],
    "Queries' BatchNorm statistics: the support set's (each query alone), the query batch's "
    "(papers' convention) or moving ones (default: the learner's); evaluate, export: in this "
    "mode (a transductive export needs one).",
)
flags.DEFINE_enum(
    "r2d2_head",
    None,
    R2D2_HEADS,
    "--algorithm=r2d2: 'ridge' head (closed form) or 'logistic' (LR-D2).",
)
flags.DEFINE_enum(
    "matching_similarity",
    None,
    MATCHING_SIMILARITIES,
    "--algorithm=matching: cosine or euclidean attention.",
)
flags.DEFINE_enum(
    "reptile_inner_optimizer",
    None,
    REPTILE_INNER_OPTIMIZERS,
    "reptile: inner SGD or Adam (beta1=0, carried 2nd moments).",
)
flags.DEFINE_enum(
    "network", "conv4", NETWORKS,
    "Conv-4, or the Relation Network paper's embedding.",
)
flags.DEFINE_integer("filters", 64, "Filters per convolution of the image network.")
flags.DEFINE_enum(
    "normalization", "batch", ["batch", "task", "layer", "none"],
    "Conv-4's normalisation: BatchNorm, TaskNorm-I (with --query_statistics=support), "
    "per-example layer norm, or none.",
)
flags.DEFINE_boolean(
    "max_pool", False, "Conv-4's mini-ImageNet variant: stride-1 convolutions, 2x2 max-pooling."
)
flags.DEFINE_integer("iterations", 10000, "Meta-updates in all (finetune: pretraining steps).")
flags.DEFINE_integer(
    "steps_per_epoch", 500, "Meta-updates per epoch: between checkpoints and history rows."
)
flags.DEFINE_integer("eval_episodes", 600, "Held-out tasks in the final evaluation.")
flags.DEFINE_string(
    "val_split",
    None,
    "TFDS or ImageFolder split of validation classes (default: none; omniglot: the protocol's "
    "validation characters, vinyals only; sinusoid: fresh tasks).",
)
flags.DEFINE_integer(
    "val_episodes",
    100,
    "Validation tasks after every epoch (val_* in history.csv); learner.keras keeps the best "
    "epoch's (val_accuracy, regression: val_loss). 0: none.",
)
flags.DEFINE_float(
    "progress_seconds", 10.0, "Seconds between progress lines (meta-updates, tasks/s, ETA)."
)
flags.DEFINE_integer(
    "log_every", 20, "Meta-updates between TensorBoard step summaries (logs/steps)."
)
flags.DEFINE_enum(
    "strategy",
    "default",
    ("default", "mirrored", "multi_worker"),
    "tf.distribute: one device, every local device (mirrored), or TF_CONFIG's workers "
    "(multi_worker; worker 0 writes the run).",
)
flags.DEFINE_enum(
    "cpu_threads",
    "auto",
    ("auto", "per_task", "per_op"),
    "per_task: a meta-batch's tasks side by side, a thread per op; per_op: TensorFlow's "
    "pools; auto: per_task for 2+ tasks, no GPU, no TF_NUM_*_THREADS.",
)
flags.DEFINE_integer("seed", 0, "Seed of weights and tasks (>= 0): the same seed repeats the run.")
flags.DEFINE_string(
    "output_dir",
    None,
    "The run directory: options, checkpoints, logs, metrics, figures, the learner (default: "
    "tfmeta_runs/<config>, else tfmeta_runs/<config or dataset_algorithm>_<hash of the options>).",
)
flags.DEFINE_string(
    "export_dir",
    None,
    "export: the TF Serving base directory, or the .tflite file (default: "
    "<output_dir>/export/<run name>, <output_dir>/export/<run name>.tflite).",
)
flags.DEFINE_enum(
    "format", "saved_model", EXPORT_FORMATS, "export: 'saved_model' (TF Serving) or 'tflite'."
)
flags.DEFINE_integer(
    "version", None, "export --format=saved_model: the version (default: the next free one)."
)
flags.DEFINE_integer(
    "query_size", 1, "export --format=tflite: queries per call (its shapes are static)."
)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Everything a command needs, independent of absl (see the flags for their meaning)."""

    config: str | None = None
    algorithm: str = "maml"
    dataset: str = "sinusoid"
    data_dir: str | None = None
    omniglot_protocol: str = "vinyals"
    train_split: str = "train"
    eval_split: str = "test"
    image_size: int = 28
    channels: int = 1
    ways: int = 5
    eval_ways: int | None = None
    shots: int = 10
    eval_shots: int | None = None
    queries: int = 10
    eval_queries: int | None = None
    episodes: str = FIXED_EPISODES
    meta_batch_size: int = 25
    batch_size: int = 64
    inner_learning_rate: float = 0.01
    inner_steps: int = 1
    eval_inner_learning_rate: float | None = None
    eval_inner_steps: int = 10
    inner_batch_size: int | None = None
    eval_inner_batch_size: int | None = None
    meta_learning_rate: float = 1e-3
    query_statistics: str | None = None
    r2d2_head: str | None = None
    reptile_inner_optimizer: str | None = None
    matching_similarity: str | None = None
    network: str = "conv4"
    filters: int = 64
    normalization: str = "batch"
    max_pool: bool = False
    iterations: int = 10000
    steps_per_epoch: int = 500
    eval_episodes: int = 600
    val_split: str | None = None
    val_episodes: int = 100
    progress_seconds: float = 10.0
    log_every: int = 20
    strategy: str = "default"
    cpu_threads: str = "auto"
    seed: int = 0
    output_dir: str | None = None
    export_dir: str | None = None
    format: str = "saved_model"
    version: int | None = None
    query_size: int = 1

    @property
    def classification(self) -> bool:
        return self.dataset not in REGRESSION_DATASETS

    @property
    def variable_episodes(self) -> str | None:
        """The name of the `--episodes=variable:<name>` config; None for fixed episodes."""
        return None if self.episodes == FIXED_EPISODES else self.episodes.split(":", 1)[1]

    @property
    def step_name(self) -> str:
        """What `--iterations` counts."""
        return "pretraining steps" if self.algorithm == "finetune" else "meta-updates"

    @property
    def evaluation_ways(self) -> int:
        return self.eval_ways or self.ways

    @property
    def evaluation_shots(self) -> int:
        return self.eval_shots or self.shots

    @property
    def evaluation_queries(self) -> int:
        if self.eval_queries is not None:
            return self.eval_queries
        return self.queries if self.classification else 100


FIELDS = tuple(field.name for field in dataclasses.fields(RunOptions))


def explicit_flags(flag_values: flags.FlagValues) -> dict[str, Any]:
    """The options given on the command line or in a flagfile, by name."""
    given = {name: flag_values[name].value for name in FIELDS if flag_values[name].present}
    if "channels" in given:
        given["channels"] = int(given["channels"])
    return given


def resolve(explicit: dict[str, Any], base: RunOptions | None = None) -> RunOptions:
    """`base` (default: the defaults), then the named config, then the explicit flags.

    An unset `output_dir` becomes `tfmeta_runs/<default_run_name>`.
    """
    values = dataclasses.asdict(base or RunOptions())
    name = explicit.get("config", values["config"])
    if name is not None and name != values["config"]:
        values.update(configs.CONFIGS[name])
        values["config"] = name
    values.update(explicit)
    if values["output_dir"] is None:
        values["output_dir"] = os.path.join("tfmeta_runs", default_run_name(RunOptions(**values)))
    return RunOptions(**values)


# What does not change what a run trains: resumable changes and export settings.
_NOT_DEFINING = RESUMABLE_CHANGES + EXPORT_FIELDS + ("strategy",)


# Options added after runs were already named: at these defaults they leave out of the name,
# so a run started before they existed is found again by the same command.
_NAMED_ONLY_WHEN_SET = {"normalization": "batch", "network": "conv4", "r2d2_head": None,
                        "reptile_inner_optimizer": None, "matching_similarity": None,
                        "inner_batch_size": None, "eval_inner_batch_size": None}


def _defining(options: RunOptions) -> dict[str, Any]:
    values = dataclasses.asdict(options)
    return {
        name: value for name, value in values.items()
        if name not in _NOT_DEFINING and _NAMED_ONLY_WHEN_SET.get(name, object()) != value
    }


def default_run_name(options: RunOptions) -> str:
    """The run directory's name when `--output_dir` is not given.

    `<config>` for a named config used as it is; otherwise the config's name,
    or `<dataset>_<algorithm>` without one, followed by `_` and 8 hex digits
    of the options that define the run. A run of other options therefore
    never lands in a config's directory (or another run's), and the same
    command, or one changing only what a run may change when it resumes
    (`--iterations`, evaluation and reporting flags), finds its run again.
    """
    if options.config is not None:
        config = RunOptions(
            **{**dataclasses.asdict(RunOptions()), **configs.CONFIGS[options.config],
               "config": options.config}
        )
        if _defining(config) == _defining(options):
            return options.config
        base = options.config
    else:
        dataset = os.path.basename(os.path.normpath(options.dataset)).split(":")[0]
        base = f"{dataset.replace('/', '_').replace(',', '+')}_{options.algorithm}"
    text = json.dumps(_defining(options), sort_keys=True)
    return f"{base}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def run_file(output_dir: str | os.PathLike) -> pathlib.Path:
    """Where `train` records the options of a run."""
    return pathlib.Path(output_dir) / OPTIONS_FILE


def load_run_options(output_dir: str | os.PathLike) -> RunOptions | None:
    """The options `train` saved in `output_dir`, or None if there are none.

    Raises:
        ValueError: if the file is not a tfmeta options file.
    """
    path = run_file(output_dir)
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        return RunOptions(**values)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{path} is not a tfmeta options file ({error}); pass an --output_dir written by "
            "`tfmeta train`"
        ) from error


def saved_options_text(options: RunOptions) -> str:
    return json.dumps(dataclasses.asdict(options), indent=2) + "\n"


def dataset_kind(dataset: str) -> str:
    """`SINUSOID`, `GAUSSIAN_PROCESS`, `OMNIGLOT`, one of `BENCHMARKS`, `MIXED_BENCHMARKS`,
    `IMAGE_FOLDER` or `TFDS`.

    A comma-joined list of benchmark names is `MIXED_BENCHMARKS`. A dataset is
    an ImageFolder path if it exists as a directory or starts with '.', '/' or
    '~'; any other name but 'sinusoid', 'gaussian_process' and 'omniglot' is a
    TFDS name.
    """
    if dataset in (*REGRESSION_DATASETS, OMNIGLOT, *BENCHMARKS):
        return dataset
    if "," in dataset and set(dataset.split(",")) <= set(BENCHMARKS):
        return MIXED_BENCHMARKS
    if dataset.startswith((".", "~", os.sep)) or os.path.isdir(dataset):
        return IMAGE_FOLDER
    return TFDS


def changed_options(saved: RunOptions, options: RunOptions, allowed: tuple[str, ...]) -> list[str]:
    """`--name=saved` for every option outside `allowed` whose value differs."""
    return [
        f"--{name}={_flag_text(getattr(saved, name))}"
        for name in FIELDS
        if name not in allowed and getattr(saved, name) != getattr(options, name)
    ]


def _flag_text(value: Any) -> str:
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def check_options(options: RunOptions) -> None:
    """Raises a ValueError naming the first bad option and its fix."""
    if options.algorithm not in ALGORITHMS:
        raise ValueError(
            f"unknown --algorithm={options.algorithm}; choose one of {list(ALGORITHMS)}"
        )
    _check_dataset(options)
    for name in (
        "shots",
        "queries",
        "ways",
        "meta_batch_size",
        "batch_size",
        "iterations",
        "steps_per_epoch",
        "eval_episodes",
        "log_every",
        "image_size",
        "filters",
        "query_size",
    ):
        _check_at_least(name, getattr(options, name), 1)
    _check_at_least("seed", options.seed, 0)
    _check_at_least("val_episodes", options.val_episodes, 0)
    if not (options.progress_seconds > 0 and math.isfinite(options.progress_seconds)):
        raise ValueError(
            f"--progress_seconds must be a number > 0; received "
            f"--progress_seconds={options.progress_seconds}"
        )
    for name in ("eval_ways", "eval_shots", "eval_queries", "version", *_REPTILE_BATCH_SIZES):
        if getattr(options, name) is not None:
            _check_at_least(name, getattr(options, name), 1)
    for name in ("inner_steps", "eval_inner_steps"):
        _check_at_least(name, getattr(options, name), 0)
    for name in ("inner_learning_rate", "eval_inner_learning_rate", "meta_learning_rate"):
        value = getattr(options, name)
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"--{name} must be a finite number >= 0; received --{name}={value}")
    if options.iterations % options.steps_per_epoch:
        raise ValueError(
            f"--iterations={options.iterations} is not a multiple of --steps_per_epoch="
            f"{options.steps_per_epoch} (a checkpoint ends every epoch); choose --iterations as "
            "a multiple of --steps_per_epoch"
        )
    if options.classification:
        for name in ("ways", "eval_ways"):
            value = getattr(options, name)
            if value is not None and value < 2:
                raise ValueError(
                    f"--{name} must be >= 2 for classification; received --{name}={value}"
                )
        fixed_head = options.algorithm not in CLASSIFICATION_ONLY
        if fixed_head and options.evaluation_ways != options.ways:
            raise ValueError(
                f"--algorithm={options.algorithm} adapts a {options.ways}-way output layer, so it "
                f"cannot evaluate --eval_ways={options.eval_ways}; leave --eval_ways unset, or "
                "use --algorithm=protonet or finetune"
            )
    if options.episodes != FIXED_EPISODES:
        if options.episodes not in EPISODE_KINDS:
            raise ValueError(
                f"unknown --episodes={options.episodes}; choose one of {list(EPISODE_KINDS)}"
            )
        if options.algorithm != "protonet" or not options.classification:
            raise ValueError(
                f"--episodes={options.episodes} (padded episodes of varying ways) trains "
                "--algorithm=protonet on image classes only; use --episodes=fixed otherwise"
            )
    if options.algorithm == "cnp" and options.query_statistics is not None:
        raise ValueError(
            "--query_statistics does not apply to --algorithm=cnp (its encoder sees the "
            "context set only and its decoder each query on its own); leave it unset"
        )
    for flag, (choices, algorithm, what, _) in ALGORITHM_VARIANTS.items():
        value = getattr(options, flag)
        if value is None:
            continue
        if value not in choices:
            raise ValueError(f"unknown --{flag}={value}; choose one of {list(choices)}")
        if options.algorithm != algorithm:
            raise ValueError(
                f"--{flag} does not apply to --algorithm={options.algorithm} (it chooses "
                f"{what}); leave it unset, or pass --algorithm={algorithm}"
            )
    _check_network(options)
    for name in _REPTILE_BATCH_SIZES:
        if getattr(options, name) is not None and options.algorithm != "reptile":
            raise ValueError(
                f"--{name} (inner steps on minibatches of the support set) serves "
                f"--algorithm=reptile only; received --algorithm={options.algorithm}; leave "
                f"--{name} unset"
            )
    if options.algorithm == "metasgd" and options.eval_inner_learning_rate is not None:
        raise ValueError(
            "--eval_inner_learning_rate does not apply to --algorithm=metasgd (it learns its "
            "inner learning rates); leave it unset"
        )


def _check_network(options: RunOptions) -> None:
    """--network=relation: Relation Networks on images it can embed, without Conv-4's options."""
    if options.network not in NETWORKS:
        raise ValueError(f"unknown --network={options.network}; choose one of {list(NETWORKS)}")
    if options.network == "conv4":
        return
    if options.algorithm != "relation":
        raise ValueError(
            f"--network={options.network} (the Relation Network paper's embedding) serves "
            f"--algorithm=relation only; received --algorithm={options.algorithm}; leave "
            "--network unset"
        )
    if options.image_size < RELATION_EMBEDDING_MIN_SIZE:
        raise ValueError(
            f"--network=relation needs --image_size >= {RELATION_EMBEDDING_MIN_SIZE} (its "
            f"unpadded, pooled blocks leave no map below that); received "
            f"--image_size={options.image_size}"
        )
    conv4_only = {"normalization": "batch", "max_pool": False}
    for name, default in conv4_only.items():
        if getattr(options, name) != default:
            raise ValueError(
                f"--{name} is an option of Conv-4, not of --network=relation (BatchNorm, "
                f"its own pooling); leave --{name} unset or pass --network=conv4"
            )


def _check_dataset(options: RunOptions) -> None:
    kind = dataset_kind(options.dataset)
    benchmarks = (*BENCHMARKS, MIXED_BENCHMARKS)
    if kind in (*REGRESSION_DATASETS, OMNIGLOT, *benchmarks) and options.val_split is not None:
        source = {OMNIGLOT: "the protocol's validation characters"}.get(
            kind, "its published validation classes" if kind in benchmarks else "fresh tasks"
        )
        raise ValueError(
            f"--val_split does not apply to --dataset={kind} (it validates on {source}); "
            "leave --val_split unset"
        )
    if kind not in REGRESSION_DATASETS and options.algorithm in REGRESSION_ONLY:
        raise ValueError(
            f"--algorithm={options.algorithm} predicts regression targets and cannot classify "
            f"--dataset={options.dataset}; choose --dataset=gaussian_process or sinusoid, or "
            "another --algorithm"
        )
    if kind in REGRESSION_DATASETS:
        if options.algorithm in CLASSIFICATION_ONLY:
            raise ValueError(
                f"--algorithm={options.algorithm} classifies images and cannot learn the "
                f"{kind} regression tasks; choose an image --dataset (e.g. omniglot) or "
                "another --algorithm"
            )
        if options.data_dir is not None:
            raise ValueError(
                f"--data_dir does not apply to --dataset={kind} (its tasks are generated); "
                "leave --data_dir unset"
            )
    elif kind in BENCHMARKS:
        _check_benchmark(options)
    elif kind == MIXED_BENCHMARKS:
        _check_mixed_benchmarks(options)
    elif kind == IMAGE_FOLDER:
        root = os.path.expanduser(options.dataset)
        if not os.path.isdir(root):
            raise ValueError(
                f"--dataset={options.dataset}: no such directory; pass an ImageFolder directory "
                "(<dir>/<split>/<class>/<image>), 'omniglot', 'sinusoid' or a TFDS name"
            )
        for flag in ("train_split", "eval_split", "val_split"):
            split = getattr(options, flag)
            if split is None:
                continue
            if not os.path.isdir(os.path.join(root, split)):
                folders = sorted(p.name for p in pathlib.Path(root).iterdir() if p.is_dir())
                raise ValueError(
                    f"--dataset={options.dataset} has no split folder '{split}' (its folders: "
                    f"{folders}); pass --{flag} naming one of them"
                )
    elif kind == TFDS and not _TFDS_NAME.fullmatch(options.dataset):
        raise ValueError(
            f"--dataset={options.dataset} is neither 'sinusoid', 'gaussian_process', 'omniglot', "
            "a TFDS name (lower case, e.g. 'mnist' or 'omniglot:3.0.0') nor an existing directory; "
            "pass one of those"
        )
    if (
        kind == OMNIGLOT
        and options.data_dir
        and not os.path.exists(os.path.expanduser(options.data_dir))
    ):
        raise ValueError(
            f"--data_dir={options.data_dir} does not exist; pass Omniglot's .tar.gz or its "
            "ImageFolder folder (with train/ and test/), or leave --data_dir unset to use TFDS"
        )
    if kind == IMAGE_FOLDER and options.data_dir is not None:
        raise ValueError(
            f"--data_dir does not apply to an ImageFolder --dataset ({options.dataset} holds "
            "the images); leave --data_dir unset"
        )


def _check_benchmark(options: RunOptions) -> None:
    """A benchmark reads RGB images from --data_dir, which must exist."""
    if options.data_dir is None:
        raise ValueError(
            f"--dataset={options.dataset} reads the files you hold and downloads nothing; pass "
            "--data_dir (README, 'Standard benchmarks from files you hold')"
        )
    if not os.path.exists(os.path.expanduser(options.data_dir)):
        raise ValueError(f"--data_dir={options.data_dir} does not exist")
    if options.channels != 3:
        raise ValueError(
            f"--dataset={options.dataset} has RGB images; pass --channels=3 (and --image_size, "
            "84 for mini_imagenet, tiered_imagenet and cub, 32 for cifar_fs and fc100)"
        )


def benchmark_data_dirs(options: RunOptions) -> dict[str, str]:
    """`--dataset=cub,fc100 --data_dir=a,b` as `{"cub": "a", "fc100": "b"}`, in that order."""
    return dict(zip(options.dataset.split(","), (options.data_dir or "").split(",")))


def _check_mixed_benchmarks(options: RunOptions) -> None:
    """Several benchmarks: distinct, one --data_dir each, mixed by variable episodes."""
    names = options.dataset.split(",")
    if len(set(names)) != len(names):
        raise ValueError(f"--dataset={options.dataset} names a benchmark twice; name each once")
    folders = (options.data_dir or "").split(",")
    if len(folders) != len(names):
        raise ValueError(
            f"--dataset={options.dataset} needs one --data_dir per benchmark, joined by commas "
            f"in the same order; received --data_dir={options.data_dir}"
        )
    for name, folder in benchmark_data_dirs(options).items():
        _check_benchmark(dataclasses.replace(options, dataset=name, data_dir=folder))
    if options.episodes == FIXED_EPISODES:
        raise ValueError(
            f"--dataset={options.dataset} mixes benchmarks in variable episodes only; pass "
            "--episodes=variable:small or variable:meta_dataset"
        )


def _check_at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"--{name} must be >= {minimum}; received --{name}={value}")
