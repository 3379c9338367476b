"""Named configurations of `tfmeta train`: the published protocols, as option values.

`--config=NAME` sets these values; flags given explicitly override them.
Names read `<dataset>_<algorithm>` for the regression families and
`omniglot_<N>w<K>s_<algorithm>` for Omniglot (N-way K-shot, the Vinyals
split). Sources of the settings:

- MAML / FOMAML: Finn et al. 2017 and their code (cbfinn/maml): sinusoid
  K=10, meta-batch 25, one inner step of 0.01, Adam 1e-3, 70,000 updates,
  evaluated after 10 steps (here from 5 support points); Omniglot 5-way:
  meta-batch 32, one inner step of 0.4; 20-way: meta-batch 16, five inner
  steps of 0.1; query set = K per class; 40,000 updates; 10 steps at test.
- Meta-SGD and ANIL: MAML's settings (Li et al. 2017 and Raghu et al. 2020
  build on them); Meta-SGD's learned rates start at the inner learning rate.
- Reptile: on Omniglot, the commands of Nichol et al. 2018's code, not
  transductive (`REPTILE_PAPER_COMMANDS`): Adam inner steps (beta1 = 0, its
  second moments carried from task to task) on minibatches of the support
  set, which holds more images per class in training than at test; outer
  SGD step decayed linearly to 0. Not as their code: a meta-batch's moments
  are merged over its tasks (their tasks run one after another), their
  test normalises each query with the support set plus that query (here: the
  support set's statistics), and their model flattens the last feature maps
  into the head (here: Conv-4's mean pooling; measured no different with
  `tfmeta.models.conv4(pooling="flatten")`). Sinusoid: meta-batch 5, 5 plain-SGD inner steps
  of 0.02, outer step 1.0.
- ProtoNet: Snell et al. 2017: 60-way training episodes with 5 queries per
  class, one episode per update, Adam 1e-3 (the paper also halves it every
  2,000 episodes; not done here).
- FineTune: the baseline of Chen et al. 2019: a classifier pretrained on all
  training classes (Adam 1e-3, batches of 64), a new head fine-tuned for 100
  steps of 0.1 per test episode.
- R2-D2: Bertinetto et al. 2019: ridge penalty and output scale starting at
  50 and 10 (the authors' code) and meta-learned. Adam 5e-3, one episode per
  update, 15 queries per class and 20,000 updates are tfmeta's choices, not
  checked against the paper's schedule (which also halves the learning rate
  and stops early).
- Matching Networks: Vinyals et al. 2016: the paper's Omniglot embedding
  (4 x [conv 3x3, 64 filters, BatchNorm, ReLU, 2x2 max-pool]), cosine
  attention without full-context embeddings (the paper's Omniglot setting).
  The paper gives no optimizer settings: Adam 1e-3, one episode per update,
  5 queries per class and 20,000 updates are tfmeta's choices.
- Relation Networks: Sung et al. 2018: Adam 1e-3, one episode per update,
  19 / 15 / 10 / 5 queries per class for 5-way 1-shot / 5-way 5-shot /
  20-way 1-shot / 20-way 5-shot, 1,000,000 episodes, MSE of the relation
  scores; the paper's embedding (`--network=relation`: two unpadded,
  max-pooled blocks and two padded ones, 5x5 maps on Omniglot) and relation
  module 2 x [conv 64, BatchNorm, ReLU, max-pool] + 8 + 1 units. Not done
  here: halving the learning rate every 100,000 episodes.
- Conditional Neural Processes: Garnelo et al. 2018 (their released 1-D
  regression code): encoder 4 x 128, decoder 2 x 128, Adam 1e-4, meta-batch
  64, up to 10 context points (here always 10) and 10 targets in training,
  200,000 updates; evaluated on 400 target points per curve. The curves are
  `--dataset=gaussian_process` (RBF kernel, lengthscale 0.4, x in [-2, 2]);
  `sinusoid_cnp` trains the same networks on MAML's sinusoid protocol.

Evaluation everywhere: 600 held-out tasks, 15 queries per class for
Omniglot, mean accuracy with a 95% confidence interval.
"""

from __future__ import annotations

from typing import Any

_SINUSOID = dict(
    dataset="sinusoid",
    shots=10,
    queries=10,
    eval_shots=5,
    meta_batch_size=25,
    inner_learning_rate=0.01,
    inner_steps=1,
    eval_inner_steps=10,
    meta_learning_rate=1e-3,
    iterations=70000,
    steps_per_epoch=1000,
    eval_episodes=600,
)

_SINUSOID_ALGORITHMS: dict[str, dict[str, Any]] = {
    "maml": {},
    "fomaml": {},
    "metasgd": {},
    "anil": {},
    "reptile": dict(
        meta_batch_size=5, inner_steps=5, inner_learning_rate=0.02, meta_learning_rate=1.0
    ),
    "cnp": {},
}

_GAUSSIAN_PROCESS_CNP = dict(
    algorithm="cnp",
    dataset="gaussian_process",
    shots=10,
    queries=10,
    eval_queries=400,
    meta_batch_size=64,
    meta_learning_rate=1e-4,
    iterations=200000,
    steps_per_epoch=1000,
    eval_episodes=600,
)

# The non-transductive Omniglot commands of Reptile's code (Nichol et al. 2018; the README of
# openai/supervised-reptile), by (ways, shots):
# support images per class in training, inner Adam steps and their minibatch and step size,
# tasks per update, the outer step (decayed linearly to 0), updates, and the test's steps.
REPTILE_PAPER_COMMANDS = {
    (5, 1): dict(train_shots=12, inner_batch_size=5, inner_steps=12, inner_learning_rate=0.00044,
                 meta_batch_size=3, meta_step=1.0, iterations=200_000,
                 eval_inner_batch_size=5, eval_inner_steps=86),
    (5, 5): dict(train_shots=10, inner_batch_size=10, inner_steps=5, inner_learning_rate=0.0015,
                 meta_batch_size=5, meta_step=0.7, iterations=100_000,
                 eval_inner_batch_size=6, eval_inner_steps=100),
    (20, 1): dict(train_shots=9, inner_batch_size=15, inner_steps=12,
                  inner_learning_rate=0.00046, meta_batch_size=3, meta_step=1.0,
                  iterations=200_000, eval_inner_batch_size=10, eval_inner_steps=97),
    (20, 5): dict(train_shots=12, inner_batch_size=20, inner_steps=12,
                  inner_learning_rate=0.00046, meta_batch_size=3, meta_step=1.0,
                  iterations=200_000, eval_inner_batch_size=10, eval_inner_steps=97),
}

# The keys of a command that are also the names of `tfmeta.Reptile`'s arguments (and options).
REPTILE_INNER_LOOP = (
    "inner_learning_rate", "inner_steps", "inner_batch_size", "eval_inner_steps",
    "eval_inner_batch_size",
)

# Relation Networks' queries per class in training (Sung et al. 2018), by (ways, shots).
_RELATION_QUERIES = {(5, 1): 19, (5, 5): 15, (20, 1): 10, (20, 5): 5}


def _omniglot(ways: int, shots: int, algorithm: str) -> dict[str, Any]:
    """The options of an Omniglot N-way K-shot protocol for one algorithm."""
    five_way = ways == 5
    options: dict[str, Any] = dict(
        algorithm=algorithm,
        dataset="omniglot",
        omniglot_protocol="vinyals",
        ways=ways,
        shots=shots,
        queries=shots,
        eval_queries=15,
        eval_episodes=600,
        meta_learning_rate=1e-3,
    )
    if algorithm in ("maml", "fomaml", "metasgd", "anil"):
        options.update(
            meta_batch_size=32 if five_way else 16,
            inner_learning_rate=0.4 if five_way else 0.1,
            inner_steps=1 if five_way else 5,
            eval_inner_steps=10,
            iterations=40000,
            steps_per_epoch=1000,
        )
    elif algorithm == "reptile":
        command = REPTILE_PAPER_COMMANDS[ways, shots]
        options.update(
            reptile_inner_optimizer="adam",
            shots=command["train_shots"],
            eval_shots=shots,
            queries=5,  # only for the reported loss: Reptile's update uses no query set
            **{name: command[name] for name in REPTILE_INNER_LOOP},
            meta_batch_size=command["meta_batch_size"],
            meta_learning_rate=command["meta_step"],
            query_statistics="support",
            iterations=command["iterations"],
            steps_per_epoch=1000,
        )
    elif algorithm == "protonet":
        options.update(
            ways=60,
            eval_ways=ways,
            queries=5,
            meta_batch_size=1,
            iterations=20000,
            steps_per_epoch=1000,
        )
    elif algorithm == "r2d2":
        options.update(
            queries=15, meta_batch_size=1, meta_learning_rate=5e-3, iterations=20000,
            steps_per_epoch=1000,
        )
    elif algorithm == "matching":
        # Euclidean attention: the paper's cosine reached 91.00 at 5-way 1-shot, this 98.33
        # (benchmarks/omniglot.py, README).
        options.update(
            queries=5, meta_batch_size=1, max_pool=True, matching_similarity="euclidean",
            iterations=20000, steps_per_epoch=1000,
        )
    elif algorithm == "relation":
        options.update(
            queries=_RELATION_QUERIES[ways, shots], meta_batch_size=1, iterations=1000000,
            steps_per_epoch=1000, network="relation",
        )
    else:  # finetune
        options.update(
            batch_size=64,
            eval_inner_learning_rate=0.1,
            eval_inner_steps=100,
            iterations=20000,
            steps_per_epoch=1000,
        )
    return options


CONFIGS: dict[str, dict[str, Any]] = {
    **{
        f"sinusoid_{algorithm}": {**_SINUSOID, "algorithm": algorithm, **overrides}
        for algorithm, overrides in _SINUSOID_ALGORITHMS.items()
    },
    **{
        f"omniglot_{ways}w{shots}s_{algorithm}": _omniglot(ways, shots, algorithm)
        for ways in (5, 20)
        for shots in (1, 5)
        for algorithm in ("maml", "fomaml", "metasgd", "anil", "reptile", "protonet", "finetune",
                          "r2d2", "matching", "relation")
    },
    "gaussian_process_cnp": _GAUSSIAN_PROCESS_CNP,
}
