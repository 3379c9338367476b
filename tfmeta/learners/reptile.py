"""Reptile (Nichol et al. 2018): first-order meta-learning by moving towards adapted weights."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_choice, check_integer
from tfmeta.data import episode as episode_lib
from tfmeta.learners import padded_episodes
from tfmeta.learners.gradient_learner import GradientLearner

INNER_OPTIMIZERS = ("sgd", "adam")  # Reptile's inner update rules (`inner_optimizer`)
# Evaluation draws its inner minibatches from this fixed seed, so a task's adaptation is a
# function of its support set alone (not of the call, nor of its place in a meta-batch).
EVALUATION_MINIBATCH_SEED = (0, 0)


@keras.saving.register_keras_serializable(package="tfmeta")
class Reptile(GradientLearner):
    """Reptile: `theta <- theta + epsilon * (mean_tasks(phi) - theta)`.

    For each task of a meta-batch the inner loop takes `inner_steps` SGD
    steps (or Adam steps, `inner_optimizer="adam"`) on the **support set**
    from `theta`, giving `phi`. The learner
    hands `theta - phi` (averaged over tasks) to the compiled optimizer as
    a pseudo-gradient, so `keras.optimizers.SGD(epsilon)` applies exactly
    the Reptile update above; any other optimizer (Adam, as in the paper's
    own code) can take the pseudo-gradient too. The query set is not used
    for the update, only for the reported loss and metrics (query
    predictions with `phi`; `score_training_queries=False` skips them in
    meta-training). Nothing is differentiated through the inner
    loop. Padded episodes (`tfmeta.data.variable_episodes`) are handled as
    by every `GradientLearner`: the weights of classes absent from a task do
    not move in its inner loop, so their pseudo-gradient is zero.

    The paper's inner loop is Adam with `beta1 = 0` (`inner_optimizer="adam"`,
    `inner_learning_rate` then being Adam's step size, 0.001 on Omniglot;
    `adaptation.Adam`). By default every task's Adam moments start at zero,
    in meta-training and in evaluation alike: from zero moments Adam's first
    step moves every weight by the step size times the sign of its gradient,
    however small the gradient. The paper's code (openai/supervised-reptile)
    restores only the model's weights between training tasks, so Adam's
    second moments and step count run on across tasks and meta-updates, and
    each evaluation task starts from that training-time state.
    `carry_inner_moments=True` does the same: the second moments and the step
    count are state of the learner (`inner_moment_variables`, saved and
    checkpointed with it), every task starts from them, meta-training writes
    back their mean over the meta-batch's tasks (the paper's code runs the
    tasks one after another instead), and evaluation reads them without
    writing, so a task's adaptation still depends only on that task and what
    meta-training learned.

    By default every inner step takes the whole support set. The paper's
    inner steps take minibatches: `inner_batch_size` (meta-training) and
    `eval_inner_batch_size` (evaluation) give each step the next minibatch
    of passes over the support set, each pass in a fresh random order
    (`adaptation.minibatch_indices`). Meta-training draws them from the
    learner's seed generator, each task of a meta-batch its own stream
    (`MetaCheckpoint` keeps the generator's state, so a resumed run draws as
    an uninterrupted one; a `.keras` file keeps the seed only, as for Keras's
    own Dropout); evaluation draws from a fixed seed, so a task's adaptation
    depends only on its support set. The rest of its
    Omniglot setup comes from the data and the optimizer: more examples per
    class in training than the evaluation shots ("train shots": build
    training episodes with more shots), and an outer step size that decays
    linearly to 0 (a `LearningRateSchedule`, see the example).

    Args:
        model: a built Keras model (the meta-learned initialization).
        inner_learning_rate: step size of the inner loop in meta-training
            (SGD's, or Adam's).
        inner_steps: inner steps in meta-training.
        eval_inner_learning_rate: step size in evaluation (default:
            `inner_learning_rate`).
        eval_inner_steps: inner steps in evaluation (default: `inner_steps`;
            the paper uses more at test time, e.g. 50).
        query_statistics: see `MetaLearner` (the paper's headline numbers are
            not transductive).
        inner_optimizer: `"sgd"` (default) or `"adam"`, the inner loop's
            update rule in meta-training and in evaluation.
        inner_beta1, inner_beta2, inner_epsilon: Adam's (with
            `inner_optimizer="adam"`), by default the paper code's: 0 (no
            momentum), 0.999 and 1e-8 (TensorFlow 1's `AdamOptimizer`).
        carry_inner_moments: with `inner_optimizer="adam"`, start every task
            from the second moments and step count carried through
            meta-training (the paper code's behaviour) instead of from zero.
        inner_batch_size: support examples per inner step in meta-training
            (default None: all of them).
        eval_inner_batch_size: support examples per inner step in evaluation
            (default None: all of them).
        seed: seed of meta-training's minibatches (with `inner_batch_size`).
        score_training_queries: whether meta-training predicts each task's
            queries after adaptation for its loss and metrics (default True).
            The update never uses them, and with support statistics the
            prediction takes a forward pass over the whole support set as
            well as the queries (a third of the time of a 20-way 1-shot
            meta-update of the paper's command: without it, 1.5x the
            updates in the same time). With False the update is
            the same, `fit` logs only `pseudo_gradient_norm` (the norm of
            `theta - phi`, the mean over a step's tasks; measure accuracy
            with `evaluate`), and BatchNorm's moving statistics follow the
            inner loop's steps only. Training episodes still carry their
            query keys.
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    import keras, tfmeta
    net = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    reptile = tfmeta.Reptile(net, inner_optimizer="adam", inner_learning_rate=0.00044,
                             inner_steps=12, inner_batch_size=5, eval_inner_steps=86,
                             eval_inner_batch_size=5, carry_inner_moments=True)
    iterations = 200_000
    epsilon = keras.optimizers.schedules.PolynomialDecay(1.0, iterations, end_learning_rate=0.0)
    reptile.compile(optimizer=keras.optimizers.SGD(epsilon),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    reptile.fit(sources["train"].episodes(ways=5, shots=12, queries=5, meta_batch_size=3,
                                          seed=0), steps_per_epoch=iterations)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        inner_learning_rate: float = 0.01,
        inner_steps: int = 5,
        eval_inner_learning_rate: float | None = None,
        eval_inner_steps: int | None = None,
        query_statistics: str = query_statistics_lib.SUPPORT,
        inner_optimizer: str = "sgd",
        inner_beta1: float = 0.0,
        inner_beta2: float = 0.999,
        inner_epsilon: float = 1e-8,
        carry_inner_moments: bool = False,
        inner_batch_size: int | None = None,
        eval_inner_batch_size: int | None = None,
        seed: int | None = None,
        score_training_queries: bool = True,
        **kwargs,
    ):
        check_choice("inner_optimizer", inner_optimizer, INNER_OPTIMIZERS)
        if carry_inner_moments and inner_optimizer != "adam":
            raise ValueError(
                "Expected inner_optimizer='adam' with `carry_inner_moments=True` (plain SGD "
                f"keeps no moments). Received: inner_optimizer={inner_optimizer!r}"
            )
        adam = adaptation.Adam(  # checks the values whichever the optimizer
            beta1=float(inner_beta1), beta2=float(inner_beta2), epsilon=float(inner_epsilon)
        )
        super().__init__(
            model,
            inner_learning_rate=inner_learning_rate,
            inner_steps=inner_steps,
            eval_inner_learning_rate=eval_inner_learning_rate,
            eval_inner_steps=eval_inner_steps,
            query_statistics=query_statistics,
            **kwargs,
        )
        self.inner_optimizer = inner_optimizer
        self._adam = adam
        self.carry_inner_moments = bool(carry_inner_moments)
        self.inner_moment_variables = self._create_inner_moments()
        self.inner_batch_size = check_integer(
            "inner_batch_size", inner_batch_size, allow_none=True
        )
        self.eval_inner_batch_size = check_integer(
            "eval_inner_batch_size", eval_inner_batch_size, allow_none=True
        )
        self.seed = seed
        if not isinstance(score_training_queries, bool):
            raise ValueError(
                "Expected `score_training_queries` to be True or False. "
                f"Received: score_training_queries={score_training_queries!r}"
            )
        self.score_training_queries = score_training_queries
        self.minibatch_seed_generator = (
            None if self.inner_batch_size is None
            else keras.random.SeedGenerator(seed, name="inner_minibatch_seed")
        )

    def _create_inner_moments(self) -> list:
        """`[step_count, *second_moments]` (one per trainable weight), all zero, when carried."""
        if not self.carry_inner_moments:
            return []
        weights = self.model.trainable_variables
        step_count = self.add_weight(
            shape=(), dtype=weights[0].dtype, initializer="zeros", trainable=False,
            name="inner_adam_step_count",
        )
        return [step_count] + [
            self.add_weight(
                shape=weight.shape, dtype=weight.dtype, initializer="zeros", trainable=False,
                name="inner_adam_second_moment_" + weight.path.replace("/", "_"),
            )
            for weight in weights
        ]

    @property
    def own_state_variables(self) -> list:
        """The carried Adam moments (if any), then the minibatch seed's state (if any)."""
        seed = self.minibatch_seed_generator
        return list(self.inner_moment_variables) + ([] if seed is None else [seed.state])

    @property
    def state_variables(self) -> list:
        """The model's non-trainable weights, then `own_state_variables`."""
        return list(self.model.non_trainable_variables) + self.own_state_variables

    def inner_update_rule(self) -> adaptation.SGD | adaptation.Adam:
        """`adaptation.Adam` with this learner's betas and epsilon, or `adaptation.SGD()`."""
        return self._adam if self.inner_optimizer == "adam" else adaptation.SGD()

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        # The pseudo-gradient `theta - phi` needs only the inner loop's gradients.
        return True

    def _minibatches(self, num_examples, seed: list, training: bool):
        """`(minibatch indices or None, seed state after the draw)` of one task's inner loop."""
        if not training:
            if self.eval_inner_batch_size is None:
                return None, seed
            return adaptation.minibatch_indices(
                num_examples, self.eval_inner_batch_size, self.eval_inner_steps,
                tf.constant(EVALUATION_MINIBATCH_SEED, tf.int64),
            ), seed
        if self.inner_batch_size is None:
            return None, seed
        (seed_state,) = seed
        indices = adaptation.minibatch_indices(
            num_examples, self.inner_batch_size, self.inner_steps, seed_state
        )
        return indices, [seed_state + tf.constant([0, 1], seed_state.dtype)]

    def _inner_loop(self, support_x, support_y, state, training, loss_fn):
        """`(phi, model_state, own_state)`: the inner loop from the carried moments and seed
        in `state` (the wrapped model's state alone: from the learner's variables), and
        them after it in meta-training (before it in evaluation, which moves neither)."""
        num_model = len(self.model.non_trainable_variables)
        model_state, own = list(state[:num_model]), list(state[num_model:])
        if not own:
            own = [tf.convert_to_tensor(v.value) for v in self.own_state_variables]
        num_moments = len(self.inner_moment_variables)
        moments, seed = own[:num_moments], own[num_moments:]
        minibatches, seed = self._minibatches(tf.shape(support_x)[0], seed, training)
        rule_state = None  # without carried moments: the rule's zero state
        if self.carry_inner_moments:
            second_moments = moments[1:]
            rule_state = [moments[0]] + [tf.zeros_like(v) for v in second_moments] + second_moments
        phi, model_state, rule_state = self._adapt_with_rule_state(
            support_x, support_y, model_state, training, loss_fn, rule_state, minibatches
        )
        if training and self.carry_inner_moments:
            moments = [rule_state[0]] + rule_state[1 + len(second_moments):]
        return phi, model_state, moments + seed

    def _adapt(self, support_x, support_y, state, training, loss_fn):
        phi, model_state, _ = self._inner_loop(support_x, support_y, state, training, loss_fn)
        return phi, model_state

    def _adapt_episode_and_predict(self, task, state, training):
        """`(phi, query_predictions, new_state)` of one task (padded or not)."""
        episode = padded_episodes.real_examples(task)
        phi, model_state, own = self._on_support(self._inner_loop, episode, state, training)
        predictions, model_state = self._predict_queries(phi, model_state, episode, training)
        return phi, predictions, model_state + own

    def adapt_and_predict(self, task, state, training):
        _, predictions, state = self._adapt_episode_and_predict(task, state, training)
        return predictions, state

    def task_meta_gradients(self, task, state):
        """The pseudo-gradient `theta - phi` of one task, with the query loss after adaptation
        (with `score_training_queries=False`: the pseudo-gradient's norm, and zeros in place
        of the predictions)."""
        theta, _ = adaptation.initial_weights(self.model)
        if self.score_training_queries:
            phi, predictions, state = self._adapt_episode_and_predict(task, state, training=True)
        else:
            episode = padded_episodes.real_examples(task)
            phi, model_state, own = self._on_support(
                self._inner_loop, episode, state, training=True
            )
            state, predictions = model_state + own, self._unscored_predictions(task)
        pseudo_gradients = [tf.stop_gradient(t - p) for t, p in zip(theta, phi)]
        if self.score_training_queries:
            loss = self.query_loss(task, predictions)
        else:
            loss = tf.cast(tf.linalg.global_norm(pseudo_gradients), predictions.dtype)
        return loss, predictions, pseudo_gradients, state

    def _unscored_predictions(self, task) -> tf.Tensor:
        """Zeros shaped like one task's query predictions (nothing reads them)."""
        query_x = task[episode_lib.QUERY_X]
        spec = self._prediction_spec({episode_lib.QUERY_X: query_x[tf.newaxis]})
        return tf.zeros(tf.concat([tf.shape(query_x)[:1], spec.shape[1:]], 0), spec.dtype)

    def _training_logs(self, loss, episodes, predictions) -> dict:
        """The query loss and metrics, or without scored queries the step's pseudo-gradient
        norm (the mean over its tasks)."""
        if self.score_training_queries:
            return super()._training_logs(loss, episodes, predictions)
        return {"pseudo_gradient_norm": loss}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            inner_optimizer=self.inner_optimizer,
            inner_beta1=self._adam.beta1,
            inner_beta2=self._adam.beta2,
            inner_epsilon=self._adam.epsilon,
            carry_inner_moments=self.carry_inner_moments,
            inner_batch_size=self.inner_batch_size,
            eval_inner_batch_size=self.eval_inner_batch_size,
            seed=self.seed,
            score_training_queries=self.score_training_queries,
        )
        return config
