"""`PolicyMAML`: MAML for policies (Finn et al. 2017, section 5.3), a Keras model.

One meta-iteration (`train_step`) on a meta-batch of tasks:

1. roll out the meta-learned policy on every task (`family.rollouts`);
2. adapt it to each task by vanilla policy-gradient steps on those rollouts
   (`tfmeta.adaptation.gradient_step` on the weight list; advantages from a
   linear feature baseline and GAE), sampling again after each step;
3. roll out the adapted policies;
4. update the meta-learned weights (and, with `learned_inner_learning_rates`,
   the inner step sizes, as Meta-SGD) on the adapted policies' rollouts, through
   the inner steps (second order unless `first_order=True`): by a TRPO step
   when compiled with `tfmeta.rl.TRPO`, or by `outer_steps` gradient steps
   of the clipped surrogate (PPO / ProMP style) with any other Keras optimizer.

All tasks of a meta-batch are adapted together: every weight gets a leading
task axis and `TaskBatchedModel` evaluates the policy for all tasks at once,
in rollouts as in the gradient steps.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta.argument_validation import check_choice, check_integer, check_learning_rate
from tfmeta.learners.maml import PER_PARAMETER, learning_rate_variable
from tfmeta.rl import advantages as advantages_lib
from tfmeta.rl import families, policy_gradient
from tfmeta.rl.linear_baseline import LinearFeatureBaseline
from tfmeta.rl.policy_gradient import PolicyGradientBatch
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_batched import TaskBatchedModel
from tfmeta.rl.task_family import TaskFamily, as_seed, fold_seed
from tfmeta.rl.trpo import TRPO


LEARNED_RATE_KINDS = (None, PER_PARAMETER)  # `learned_inner_learning_rates`
# A step size: one float for every weight, or, learned, one tensor per weight shaped like it.
StepSize = float | tf.Tensor | list


def per_weight(step_size: StepSize, weights: int) -> list:
    """`step_size` as one entry per weight: the list of a learned one, else repeated."""
    if isinstance(step_size, (list, tuple)):
        return list(step_size)
    return [step_size] * weights


def return_name(step: int) -> str:
    """The log name of the mean return after `step` adaptation steps in evaluation."""
    return f"return_step_{step}"


@keras.saving.register_keras_serializable(package="tfmeta")
class PolicyMAML(keras.Model):
    """MAML for reinforcement learning: a policy that adapts to a task from its own rollouts.

    Args:
        policy: a built Keras model mapping observations `[batch,
            observation_dim]` to the parameters of the family's action
            distribution (`tfmeta.rl.gaussian_mlp_policy`,
            `tfmeta.rl.categorical_mlp_policy`, or any model of that shape).
        family: a `TaskFamily`, or the name of one (see
            `tfmeta.rl.families.names()`).
        inner_learning_rate: step size of the inner policy-gradient steps in
            meta-training.
        inner_steps: inner steps in meta-training; 0 trains one policy on
            all tasks without adapting (the paper's "pretrained" baseline,
            fine-tuned in evaluation; with `TaskObserved`, its oracle).
        eval_inner_learning_rate: step size in evaluation: one float for
            every step, or one per step (Finn et al. evaluate 2D navigation
            with 0.5 for the first step and 0.25 after); default
            `inner_learning_rate`.
        eval_inner_steps: inner steps in evaluation; `evaluate` reports the
            mean return after 0, 1, ..., `eval_inner_steps` steps (default 3).
        first_order: drop the second-order terms of the meta-gradient.
        inner_objective: the inner step's objective, `"log_likelihood"`
            (the paper's) or `"likelihood_ratio"` (ProMP's low-variance
            curvature): the same inner step, a different second-order
            meta-gradient (`policy_gradient.inner_loss`).
        rollouts_per_task: trajectories per task for each inner step and for
            the outer update (the paper's "fast batch size").
        eval_rollouts_per_task: trajectories per task and step in evaluation
            (default: `rollouts_per_task`).
        discount: the discount factor of returns and advantages.
        gae_lambda: GAE's lambda (1.0: returns minus the baseline).
        scale_advantages: scale each task's centred advantages to unit
            standard deviation, as the paper's code does (True), or only
            centre them (False: a task the policy nearly solves, whose
            returns vary little, takes a smaller inner step; the step sizes
            are then in the reward's units); for every sampling, the outer
            update's too (`advantages.normalize_per_task`).
        baseline_fit: which rollouts give a task's baseline values:
            `"own_task"`, or `"previous_task"` as in the paper's code
            (`LinearFeatureBaseline`'s `fit_on`).
        clip_ratio: the clipped surrogate's epsilon (optimizers other than
            TRPO).
        outer_steps: gradient steps of the clipped surrogate per
            meta-iteration (optimizers other than TRPO).
        learned_inner_learning_rates: None (the paper's one step size), or
            `"per_parameter"`: Meta-SGD's (Li et al. 2017) step size for every
            weight of the policy, variables of the learner
            (`inner_learning_rate_variables`) initialised to
            `inner_learning_rate` and updated by the outer update with the
            weights. Evaluation step `k` takes them scaled by
            `eval_inner_learning_rate[k] / inner_learning_rate` (by default
            1: the learned rates themselves).
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    from tfmeta import rl

    family = rl.Navigation2D()
    learner = rl.PolicyMAML(rl.gaussian_mlp_policy(2, 2), family, inner_learning_rate=0.1)
    learner.compile(optimizer=rl.TRPO(max_kl=0.01))
    learner.fit(family.task_batches(meta_batch_size=20, seed=0), steps_per_epoch=10, epochs=1)
    learner.evaluate(family.task_batches(40, seed=1, num_batches=1), return_dict=True)
    # {'return_step_0': ..., 'return_step_1': ..., 'return_step_2': ..., 'return_step_3': ...}
    ```
    """

    def __init__(
        self,
        policy: keras.Model,
        family: TaskFamily | str | dict,
        inner_learning_rate: float = 0.1,
        inner_steps: int = 1,
        eval_inner_learning_rate: float | Sequence[float] | None = None,
        eval_inner_steps: int = 3,
        first_order: bool = False,
        inner_objective: str = "log_likelihood",
        rollouts_per_task: int = 20,
        eval_rollouts_per_task: int | None = None,
        discount: float = 0.99,
        gae_lambda: float = 1.0,
        scale_advantages: bool = True,
        baseline_fit: str = "own_task",
        clip_ratio: float = 0.2,
        outer_steps: int = 5,
        learned_inner_learning_rates: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.family = families.get(family)
        self.policy = policy
        self.batched = TaskBatchedModel(policy)
        self._check_policy_matches_family()
        self.inner_learning_rate = check_learning_rate("inner_learning_rate", inner_learning_rate)
        self.inner_steps = check_integer("inner_steps", inner_steps, minimum=0)
        self.eval_inner_steps = check_integer("eval_inner_steps", eval_inner_steps, minimum=0)
        if eval_inner_learning_rate is None:
            eval_inner_learning_rate = self.inner_learning_rate
        if isinstance(eval_inner_learning_rate, (list, tuple)):
            if len(eval_inner_learning_rate) != eval_inner_steps:
                raise ValueError(
                    "Expected one `eval_inner_learning_rate` per evaluation step "
                    f"({eval_inner_steps}). "
                    f"Received: eval_inner_learning_rate={list(eval_inner_learning_rate)}"
                )
            eval_inner_learning_rate = [
                check_learning_rate("eval_inner_learning_rate", rate)
                for rate in eval_inner_learning_rate
            ]
        else:
            eval_inner_learning_rate = check_learning_rate(
                "eval_inner_learning_rate", eval_inner_learning_rate
            )
        self.eval_inner_learning_rate = eval_inner_learning_rate
        self.first_order = bool(first_order)
        if inner_objective not in policy_gradient.INNER_OBJECTIVES:
            raise ValueError(
                f"Expected `inner_objective` in {policy_gradient.INNER_OBJECTIVES}. "
                f"Received: inner_objective={inner_objective!r}"
            )
        self.inner_objective = inner_objective
        self.rollouts_per_task = check_integer("rollouts_per_task", rollouts_per_task)
        self.eval_rollouts_per_task = (
            self.rollouts_per_task
            if eval_rollouts_per_task is None
            else check_integer("eval_rollouts_per_task", eval_rollouts_per_task)
        )
        if not 0.0 <= discount <= 1.0 or not 0.0 <= gae_lambda <= 1.0:
            raise ValueError(
                "Expected `discount` and `gae_lambda` in [0, 1]. "
                f"Received: discount={discount!r}, gae_lambda={gae_lambda!r}"
            )
        self.discount = float(discount)
        self.gae_lambda = float(gae_lambda)
        self.scale_advantages = bool(scale_advantages)
        if not 0.0 < clip_ratio < 1.0:
            raise ValueError(f"Expected 0 < `clip_ratio` < 1. Received: clip_ratio={clip_ratio!r}")
        self.clip_ratio = float(clip_ratio)
        self.outer_steps = check_integer("outer_steps", outer_steps)
        self.baseline = LinearFeatureBaseline(fit_on=baseline_fit)
        self.learned_inner_learning_rates = check_choice(
            "learned_inner_learning_rates", learned_inner_learning_rates, LEARNED_RATE_KINDS
        )
        self.inner_learning_rate_variables = [
            learning_rate_variable(self, weight, tuple(weight.shape), self.inner_learning_rate)
            for weight in (self.policy.trainable_variables if learned_inner_learning_rates else [])
        ]
        self._train_trackers = {
            name: keras.metrics.Mean(name=name) for name in ("return_before", "return_after", "kl")
        }
        self._eval_trackers = {
            return_name(step): keras.metrics.Mean(name=return_name(step))
            for step in range(self.eval_inner_steps + 1)
        }
        self.built = True

    def _check_policy_matches_family(self) -> None:
        distribution = self.family.distribution
        outputs = self.policy.output_shape[-1] if hasattr(self.policy, "output_shape") else None
        inputs = self.policy.input_shape[-1] if hasattr(self.policy, "input_shape") else None
        kind = "discrete" if distribution.discrete else "continuous"
        if outputs != distribution.params_dim:
            raise ValueError(
                f"Expected a policy with {distribution.params_dim} outputs: the parameters of the "
                f"{kind} action distribution ({type(distribution).__name__}) of task family "
                f"'{self.family.name}'. Received: policy '{self.policy.name}' with {outputs} "
                "outputs"
            )
        if inputs != self.family.observation_dim:
            raise ValueError(
                f"Expected a policy taking {self.family.observation_dim} observation features "
                f"(task family '{self.family.name}'). Received: policy '{self.policy.name}' with "
                f"input shape {self.policy.input_shape}"
            )

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer: keras.optimizers.Optimizer | None = None, **kwargs) -> None:
        """Configures the outer update: `TRPO` (the default) or any Keras optimizer.

        With `tfmeta.rl.TRPO` each meta-iteration is one trust-region step;
        with another optimizer it is `outer_steps` gradient steps of the
        clipped surrogate. Families that step environments from Python run
        the meta-iteration eagerly (`run_eagerly=True`), with the policy, the
        adaptation and the outer update compiled inside it.
        """
        if "loss" in kwargs and kwargs["loss"] is not None:
            raise ValueError(
                "PolicyMAML's losses are the policy-gradient objectives: compile it without "
                "`loss`. "
                f"Received: loss={kwargs['loss']!r}"
            )
        kwargs.pop("loss", None)
        kwargs.setdefault("run_eagerly", not self.family.in_graph)
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=TRPO() if optimizer is None else optimizer, **kwargs)

    @property
    def metrics(self) -> list:
        return list(self._train_trackers.values()) + list(self._eval_trackers.values())

    @property
    def meta_variables(self) -> list:
        """What the outer update trains: the policy's weights, then any learned step sizes."""
        return list(self.policy.trainable_variables) + list(self.inner_learning_rate_variables)

    def meta_learned_model(self) -> keras.Model:
        """The model whose weights file holds everything meta-learned (`BestPolicy`): the
        policy, or the learner itself when it learns its step sizes too. (A method: Keras's
        saving walks properties, and this one may return the learner itself.)"""
        return self if self.learned_inner_learning_rates else self.policy

    def step_sizes(self, rates: Sequence[float]) -> list[StepSize]:
        """What `inner_step` takes for steps of these learning rates: the rates, or with
        learned step sizes those scaled by `rate / inner_learning_rate`, one tensor per
        weight."""
        if not self.learned_inner_learning_rates:
            return list(rates)
        learned = [tf.convert_to_tensor(v.value) for v in self.inner_learning_rate_variables]
        return [[r * (rate / self.inner_learning_rate) for r in learned] for rate in rates]

    @property
    def optimizer_steps_per_iteration(self) -> int:
        """Optimizer steps per meta-iteration: 1 with TRPO, else `outer_steps`."""
        return 1 if isinstance(self.optimizer, TRPO) else self.outer_steps

    @property
    def meta_iterations(self) -> int:
        """Meta-iterations done, from the optimizer's step counter."""
        return int(self.optimizer.iterations.numpy()) // self.optimizer_steps_per_iteration

    def call(self, observations, training=False):
        """The meta-learned policy's distribution parameters for `observations`."""
        return self.policy(observations, training=training)

    # ------------------------------------------------------------ components
    @property
    def _dtype(self) -> tf.DType:
        """The policy's compute dtype: rollouts are cast to it."""
        return tf.as_dtype(self.policy.compute_dtype)

    @tf.function(reduce_retracing=True, autograph=False)
    def _act(
        self, params: adaptation.Weights, observations: tf.Tensor, seed: tf.Tensor
    ) -> tf.Tensor:
        """Actions for `[tasks, rollouts, observation_dim]`, each task with its own weights."""
        outputs, _ = self.batched.stateless_call(params, [], tf.cast(observations, self._dtype))
        return self.family.distribution.sample(outputs, seed)

    def sample(
        self, params: adaptation.Weights, tasks: tf.Tensor, seed: tf.Tensor, rollouts: int
    ) -> Rollouts:
        """Rolls out each task's policy (weights with a leading task axis) `rollouts` times."""
        return self.family.rollouts(
            lambda observations, step_seed: self._act(params, observations, step_seed),
            tasks,
            rollouts,
            seed,
        )

    @tf.function(reduce_retracing=True, autograph=False)
    def policy_gradient_batch(self, rollouts: Rollouts) -> PolicyGradientBatch:
        """Advantages (linear feature baseline, GAE), centred (and scaled) per task."""
        returns = advantages_lib.discounted_returns(rollouts.rewards, rollouts.mask, self.discount)
        values = self.baseline(rollouts.observations, returns, rollouts.mask)
        advantages = advantages_lib.generalized_advantages(
            rollouts.rewards, values, rollouts.mask, self.discount, self.gae_lambda
        )
        actions = rollouts.actions
        return PolicyGradientBatch(
            observations=tf.cast(rollouts.observations, self._dtype),
            actions=actions if actions.dtype.is_integer else tf.cast(actions, self._dtype),
            advantages=tf.cast(
                advantages_lib.normalize_per_task(
                    advantages, rollouts.mask, scale=self.scale_advantages
                ),
                self._dtype,
            ),
            mask=tf.cast(rollouts.mask, self._dtype),
        )

    def inner_step(
        self, params: adaptation.Weights, batch: PolicyGradientBatch, learning_rate: StepSize
    ) -> adaptation.Weights:
        """One vanilla policy-gradient step of every task's weights (leading task axis).

        `tfmeta.adaptation.gradient_step` on `TaskBatchedModel`, with the
        loss of `policy_gradient.inner_loss`; second order unless
        `first_order`. `learning_rate`: one for all weights, or a list of
        one per weight (learned step sizes, shaped like the weights).
        """
        params, _ = adaptation.gradient_step(
            self.batched,
            policy_gradient.inner_loss(self.family.distribution, self.inner_objective),
            params,
            [],
            batch.observations,
            batch.targets,
            learning_rates=per_weight(learning_rate, len(params)),
            first_order=self.first_order,
            training=False,
        )
        return params

    @tf.function(reduce_retracing=True, autograph=False)
    def adapt_step(
        self, params: adaptation.Weights, batch: PolicyGradientBatch, learning_rate: StepSize
    ) -> adaptation.Weights:
        """`inner_step`, compiled: how rollouts adapt the policies between samplings."""
        return self.inner_step(params, batch, learning_rate)

    def _adapt_by_sampling(self, tasks, seed, learning_rates, rollouts_per_task):
        """Samples and adapts once per step size (`step_sizes`), then samples again.

        Returns:
            `(batches, rollouts)`: the policy-gradient batch and the rollouts
            of every sampling (`len(learning_rates) + 1` each).
        """
        steps = len(learning_rates)
        params = TaskBatchedModel.tile(
            adaptation.initial_weights(self.policy)[0], tf.shape(tasks)[0]
        )
        batches, samplings = [], []
        for step in range(steps + 1):
            rollouts = self.sample(params, tasks, fold_seed(seed, step), rollouts_per_task)
            samplings.append(rollouts)
            batch = self.policy_gradient_batch(rollouts)
            batches.append(batch)
            if step < steps:
                rate = learning_rates[step]
                if not isinstance(rate, list):
                    rate = tf.constant(rate)
                params = self.adapt_step(params, batch, rate)
        return batches, samplings

    # ----------------------------------------------------------- outer update
    def adapted_outputs(
        self,
        params: adaptation.Weights,
        inner_batches: Sequence[PolicyGradientBatch],
        observations: tf.Tensor,
        learned_rates: adaptation.Weights | None = None,
    ) -> tf.Tensor:
        """The distribution parameters, on `observations` (`[tasks, ...]`), of the policies
        adapted from the meta-learned weights `params` by one inner step on each of
        `inner_batches` in turn: what the outer update differentiates (with respect to
        `learned_rates` too, the step sizes when they are learned)."""
        rate = self.inner_learning_rate if learned_rates is None else list(learned_rates)
        stacked = TaskBatchedModel.tile(params, tf.shape(observations)[0])
        for batch in inner_batches:
            stacked = self.inner_step(stacked, batch, rate)
        outputs, _ = self.batched.stateless_call(stacked, [], observations)
        return outputs

    @tf.function(reduce_retracing=True, autograph=False)
    def outer_update(
        self, inner_batches: Sequence[PolicyGradientBatch], batch: PolicyGradientBatch
    ) -> tf.Tensor:
        """Updates the meta-learned weights from the adapted policies' rollouts.

        Returns the mean KL divergence of the adapted policies from before to
        after the update.

        Args:
            inner_batches: the batches of each inner step, in order.
            batch: the adapted policies' rollouts.
        """
        distribution = self.family.distribution
        variables = self.meta_variables
        weights = len(self.policy.trainable_variables)

        def current():
            return [tf.convert_to_tensor(v.value) for v in variables]

        def outputs_of(values):
            learned_rates = values[weights:] if self.learned_inner_learning_rates else None
            return self.adapted_outputs(
                values[:weights], inner_batches, batch.observations, learned_rates
            )

        old = tf.stop_gradient(outputs_of(current()))

        if isinstance(self.optimizer, TRPO):
            stats = self.optimizer.trust_region_step(
                variables,
                outputs_of,
                lambda outputs: policy_gradient.likelihood_ratio_surrogate(
                    distribution, old, outputs, batch
                ),
                lambda outputs: policy_gradient.mean_kl(distribution, old, outputs, batch.mask),
            )
            return stats["kl"]
        for _ in range(self.outer_steps):
            with tf.GradientTape() as tape:
                loss = -policy_gradient.clipped_surrogate(
                    distribution, old, outputs_of(current()), batch, self.clip_ratio
                )
            self.optimizer.apply(tape.gradient(loss, variables), variables)
        return policy_gradient.mean_kl(distribution, old, outputs_of(current()), batch.mask)

    # --------------------------------------------------------------- Keras API
    def make_train_function(self, force: bool = False):
        """Keras's, with the clipped surrogate's optimizer slots made first, eagerly.

        Made inside the first traced meta-iteration (or outer update), they
        would make `tf.function` trace it a second time. TRPO keeps no slots.
        """
        if not isinstance(self.optimizer, TRPO) and not self.optimizer.built:
            self.optimizer.build(self.meta_variables)
        return super().make_train_function(force)

    def train_step(self, data):
        tasks = self.family.check_tasks(data["tasks"])
        batches, samplings = self._adapt_by_sampling(
            tasks,
            data["seed"],
            self.step_sizes([self.inner_learning_rate] * self.inner_steps),
            self.rollouts_per_task,
        )
        step_returns = [tf.reduce_mean(rollouts.returns(), axis=1) for rollouts in samplings]
        kl = self.outer_update(batches[:-1], batches[-1])
        self._train_trackers["return_before"].update_state(step_returns[0])
        self._train_trackers["return_after"].update_state(step_returns[-1])
        self._train_trackers["kl"].update_state(kl)
        return {name: tracker.result() for name, tracker in self._train_trackers.items()}

    def adaptation_rollouts(self, tasks: tf.Tensor, seed: int | tf.Tensor) -> list[Rollouts]:
        """The rollouts of evaluation: before adaptation and after each of `eval_inner_steps`.

        Each step samples `eval_rollouts_per_task` trajectories per task with
        the current adapted policy and takes a policy-gradient step on them
        (`eval_learning_rates`); the meta-learned weights are untouched.
        In-graph families run it as one compiled function.

        Returns:
            `eval_inner_steps + 1` `Rollouts`, each `[tasks, rollouts, T, ...]`.
        """
        tasks, seed = self.family.check_tasks(tasks), as_seed(seed)
        if self.family.in_graph:
            return self._compiled_rollouts(tasks, seed)
        return self._evaluation_rollouts(tasks, seed)

    def adaptation_returns(self, tasks: tf.Tensor, seed: int | tf.Tensor) -> tf.Tensor:
        """Mean return per task after 0, 1, ..., `eval_inner_steps` adaptation steps.

        Returns:
            `[num_tasks, eval_inner_steps + 1]` (see `adaptation_rollouts`).
        """
        samplings = self.adaptation_rollouts(tasks, seed)
        return tf.stack([tf.reduce_mean(r.returns(), axis=1) for r in samplings], axis=1)

    def _evaluation_rollouts(self, tasks: tf.Tensor, seed: tf.Tensor) -> list[Rollouts]:
        _, samplings = self._adapt_by_sampling(
            tasks, seed, self.step_sizes(self.eval_learning_rates), self.eval_rollouts_per_task
        )
        return samplings

    @tf.function(reduce_retracing=True, autograph=False)
    def _compiled_rollouts(self, tasks: tf.Tensor, seed: tf.Tensor) -> list[Rollouts]:
        return self._evaluation_rollouts(tasks, seed)

    @property
    def eval_learning_rates(self) -> list[float]:
        """The learning rate of each evaluation step (with learned rates: their scale)."""
        rate = self.eval_inner_learning_rate
        return list(rate) if isinstance(rate, list) else [rate] * self.eval_inner_steps

    def test_step(self, data):
        returns = self.adaptation_returns(data["tasks"], data["seed"])
        for step in range(self.eval_inner_steps + 1):
            self._eval_trackers[return_name(step)].update_state(returns[:, step])
        return {name: tracker.result() for name, tracker in self._eval_trackers.items()}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            policy=keras.saving.serialize_keras_object(self.policy),
            family=self.family.get_config(),
            inner_learning_rate=self.inner_learning_rate,
            inner_steps=self.inner_steps,
            eval_inner_learning_rate=self.eval_inner_learning_rate,
            eval_inner_steps=self.eval_inner_steps,
            first_order=self.first_order,
            inner_objective=self.inner_objective,
            rollouts_per_task=self.rollouts_per_task,
            eval_rollouts_per_task=self.eval_rollouts_per_task,
            discount=self.discount,
            gae_lambda=self.gae_lambda,
            scale_advantages=self.scale_advantages,
            baseline_fit=self.baseline.fit_on,
            clip_ratio=self.clip_ratio,
            outer_steps=self.outer_steps,
            learned_inner_learning_rates=self.learned_inner_learning_rates,
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        config["policy"] = keras.saving.deserialize_keras_object(
            config["policy"], custom_objects=custom_objects
        )
        return cls(**config)
