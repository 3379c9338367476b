"""`tfmeta train --algorithm=maml_trpo|maml_ppo --env=NAME`: a meta-RL run directory.

`--env` names a task family (`tfmeta.rl.families.names()`); its settings are
the paper's (`tfmeta.rl.recipes`) unless flags given on the command line
override them: `--iterations`, `--meta_batch_size`, `--inner_learning_rate`,
`--meta_learning_rate` (maml_ppo's Adam), `--seed`, `--output_dir`, and
`--env_processes` (MuJoCo families: the processes that step the
environments; the same rollouts for any number). Any other option of
`tfmeta train` is refused rather than silently ignored.
`maml_trpo` updates by TRPO (Finn et al. 2017), `maml_ppo` by the clipped
surrogate with Adam (ProMP-style).

The run directory (default `tfmeta_runs/<env>_<algorithm>`) holds what
`tfmeta.rl.training.train` keeps (`checkpoints/`, `history.csv`, `logs/`,
`clock.json`, `family.json`, and the best training epoch's policy: `best.json`,
`best_policy-<meta-iteration>.weights.h5`), `metrics.json` (the last
meta-iteration's policy: mean return over 40 held-out tasks after 0-3
adaptation steps with 95% CIs, the paper's figures beside them),
`learning_curve.png`, `adaptation.png` for 2D navigation, and
`export/<env>/<version>/` (`tfmeta.exporters.policy`: a SavedModel whose
`adapt` signature takes rollouts) and `export/<env>.tflite`
(`tfmeta.exporters.policy_tflite`: the policy that adapts on the device,
checked in LiteRT; written when LiteRT, the `tflite` extra, is installed).
Running the same command again continues from the last checkpoint (and
replaces the `.tflite` with the newer policy's).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import keras
import numpy as np
from absl import flags

from tfmeta import evaluation
from tfmeta.exporters.policy import export_policy
from tfmeta.exporters.policy_tflite import export_policy_tflite
from tfmeta.cli import options, run_directory
from tfmeta.rl import families, figures, recipes, training

EVAL_TASKS = 40
EVAL_SEED = 1_000_003  # held-out tasks: a stream the training tasks never use
# Finn et al. 2017, mean return over 40 test tasks after 0, 1, 2, 3 steps (None: not published).
PAPER_MAML = {
    "navigation_2d": [-40.4, -11.7, -3.3, -3.2],
    "halfcheetah_vel": [-129.5, -78.6, -66.6, -60.8],
    "halfcheetah_dir": [None, 293.2, None, None],
    "ant_dir": [None, 499.1, None, None],
}


# The options of `tfmeta train` a meta-RL run reads (besides --env).
META_RL_OPTIONS = (
    "algorithm",
    "iterations",
    "meta_batch_size",
    "inner_learning_rate",
    "meta_learning_rate",
    "seed",
    "output_dir",
    "env_processes",
)


def _explicit(flag_values: flags.FlagValues, name: str, default=None):
    """The flag's value if given on the command line or in a flagfile, else `default`."""
    return flag_values[name].value if flag_values[name].present else default


def _check_options(flag_values: flags.FlagValues) -> None:
    """Refuses the options of `tfmeta train` that a meta-RL run would not read."""
    for name in options.explicit_flags(flag_values):
        if name not in META_RL_OPTIONS:
            allowed = ", ".join(f"--{option}" for option in META_RL_OPTIONS[1:])
            raise ValueError(
                f"--{name} is not a setting of a meta-RL run (--env); it takes {allowed}: "
                f"drop --{name}"
            )
    for name in ("iterations", "meta_batch_size"):
        value = _explicit(flag_values, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1; received --{name}={value}")
    if families.family_class(flag_values.env).in_graph and flag_values["env_processes"].present:
        raise ValueError(
            "--env_processes sets the processes that step a MuJoCo family's environments; "
            f"{flag_values.env} rolls out inside one TensorFlow graph: drop --env_processes"
        )
    if flag_values.algorithm == "maml_trpo" and flag_values["meta_learning_rate"].present:
        raise ValueError(
            "--meta_learning_rate sets maml_ppo's Adam; maml_trpo's step is set by its KL "
            "bound: drop --meta_learning_rate"
        )


def _export_tflite(learner, path: pathlib.Path) -> str | None:
    """Writes the LiteRT policy (checked against the learner in LiteRT), or says why not."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        print("tfmeta: no LiteRT export: install the tflite extra (ai-edge-litert) to write "
              "and check one", flush=True)
        return None
    export_policy_tflite(learner, path, overwrite=True)
    return str(path)


def train(flag_values: flags.FlagValues) -> dict:
    """Meta-trains (or continues), evaluates on held-out tasks, draws and exports; returns metrics.

    Raises:
        ValueError: for an unknown `--env` or a bad setting (the message names it).
    """
    env, algorithm = flag_values.env, flag_values.algorithm
    if env is None:
        raise ValueError(f"--algorithm={algorithm} needs --env: one of {sorted(recipes.RECIPES)}")
    if env not in recipes.RECIPES:
        python_only = (
            f"; {env} is a task family without the paper's settings: train it from Python "
            "(`tfmeta.rl.PolicyMAML`)"
            if env in families.names()
            else ""
        )
        raise ValueError(f"--env={env}: expected one of {sorted(recipes.RECIPES)}{python_only}")
    _check_options(flag_values)
    recipe = recipes.get(env)
    output_dir = _explicit(flag_values, "output_dir", f"tfmeta_runs/{env}_{algorithm}")
    run_directory.check_train_directory(output_dir)  # never into a user's own folder
    run_directory.check_writable(output_dir, "output_dir")
    output_dir = pathlib.Path(output_dir)
    overrides = {}
    if _explicit(flag_values, "inner_learning_rate") is not None:
        overrides["inner_learning_rate"] = flag_values.inner_learning_rate
    in_graph = families.family_class(env).in_graph
    family_options = {} if in_graph else {"processes": flag_values.env_processes}
    learner = recipes.build_learner(
        env, seed=flag_values.seed, family_options=family_options, **overrides
    )
    if algorithm == "maml_ppo":
        learner.compile(optimizer=keras.optimizers.Adam(flag_values.meta_learning_rate))
    run_directory.mark(output_dir)  # first write: a killed run is still recognised as a run
    iterations = _explicit(flag_values, "iterations", recipe.iterations)
    run = training.train(
        learner,
        output_dir,
        iterations=iterations,
        meta_batch_size=_explicit(flag_values, "meta_batch_size", recipe.meta_batch_size),
        seed=flag_values.seed,
        iterations_per_epoch=recipe.iterations_per_epoch,
        verbose=2,
    )
    if run["resumed_from"]:
        print(
            f"tfmeta: continued {output_dir} from meta-iteration {run['resumed_from']}", flush=True
        )
    tasks = learner.family.sample_tasks(EVAL_TASKS, seed=EVAL_SEED, split="test")
    samplings = learner.adaptation_rollouts(tasks, seed=EVAL_SEED + 1)
    returns = np.stack([np.mean(r.returns(), axis=1) for r in samplings], axis=1)
    metrics = {
        "status": "complete",
        "env": env,
        "algorithm": algorithm,
        "meta_iterations": run["meta_iterations"],
        "train_seconds": run["train_seconds"],
        "returns_after_steps": [
            dict(evaluation.mean_and_ci95(returns[:, step]), steps=step)
            for step in range(returns.shape[1])
        ],
        "paper_maml": PAPER_MAML.get(env),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if run["history"]:
        figures.plot_learning_curve(
            run["history"],
            run["iterations_per_epoch"],
            output_dir / "learning_curve.png",
            title=f"{env} {algorithm}",
        )
    if env == "navigation_2d":
        figures.plot_navigation_adaptation(samplings, tasks.numpy(), output_dir / "adaptation.png")
    metrics["export"] = export_policy(learner, output_dir / "export" / env)
    metrics["export_tflite"] = _export_tflite(learner, output_dir / "export" / f"{env}.tflite")
    for entry in metrics["returns_after_steps"]:
        print(
            f"tfmeta: mean return after {entry['steps']} steps over {EVAL_TASKS} held-out tasks: "
            f"{entry['mean']:.1f} +- {entry['ci95']:.1f}",
            flush=True,
        )
    return metrics
