"""`TRPO`: the trust-region update of Schulman et al. 2015, MAML's outer optimizer for RL."""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf

from tfmeta.rl.conjugate_gradient import conjugate_gradient

ParamsFn = Callable[[list], tf.Tensor]
OutputsFn = Callable[[tf.Tensor], tf.Tensor]


def flatten(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """The tensors as one flat vector (the conjugate-gradient view of a weight list)."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflatten(vector: tf.Tensor, like: Sequence[tf.Tensor]) -> list:
    """`flatten`'s inverse: `vector` cut into tensors shaped as `like`."""
    sizes = [t.shape.num_elements() for t in like]
    return [tf.reshape(part, t.shape) for part, t in zip(tf.split(vector, sizes), like)]


def kl_hessian_vector_product(
    params: list,
    outputs_fn: ParamsFn,
    kl_fn: OutputsFn,
    current_outputs: tf.Tensor,
    vector: tf.Tensor,
) -> tf.Tensor:
    """The Hessian of `kl_fn(outputs_fn(params))` at `params`, times a flat `vector`.

    Computed as the Fisher-vector product `J^T (d2 KL / d outputs2) (J v)`,
    with `J` the Jacobian of the outputs: one forward-mode pass for `J v`,
    one reverse-mode pass for `J^T`. That is the exact Hessian where the
    KL's gradient w.r.t. the outputs vanishes, i.e. at the current policy
    (`current_outputs = outputs_fn(params)`), and it takes second-order
    derivatives of `outputs_fn` only, where differentiating the KL twice
    through a MAML inner step would take third-order ones.

    Args:
        params: the weights, a list of tensors.
        outputs_fn: `params -> outputs`.
        kl_fn: `outputs -> scalar`, zero with zero gradient at `current_outputs`.
        current_outputs: `outputs_fn(params)`, without gradient.
        vector: flat, as long as all `params` together.

    Returns:
        The flat product.
    """
    with tf.GradientTape() as backward:
        backward.watch(params)
        with tf.autodiff.ForwardAccumulator(params, unflatten(vector, params)) as forward:
            outputs = outputs_fn(params)
        jacobian_vector = forward.jvp(outputs, tf.UnconnectedGradients.ZERO)
    # A tensor of its own: `kl_fn` may hold the very tensor passed as the old policy's outputs.
    current_outputs = tf.identity(current_outputs)
    with tf.autodiff.ForwardAccumulator(current_outputs, jacobian_vector) as curvature:
        with tf.GradientTape() as kl_tape:
            kl_tape.watch(current_outputs)
            kl = kl_fn(current_outputs)
        kl_gradient = kl_tape.gradient(kl, current_outputs)
    product = backward.gradient(
        outputs,
        params,
        output_gradients=curvature.jvp(kl_gradient, tf.UnconnectedGradients.ZERO),
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return flatten(product)


@keras.saving.register_keras_serializable(package="tfmeta")
class TRPO(keras.optimizers.Optimizer):
    """Trust-region policy optimization as a Keras optimizer.

    One call of `trust_region_step` maximises a surrogate objective subject
    to a bound on the mean KL divergence from the current policy: it solves
    `H s = g` by conjugate gradient on products with the KL's Hessian `H`
    (Fisher-vector products, see `trust_region_step`; `damping` added), scales
    `s` so that `s^T H s / 2 = max_kl`, and backtracks along it until the
    surrogate improves and the KL is within `max_kl`; if no step qualifies
    the weights stay. It counts `iterations` like any Keras optimizer, so
    checkpoints and callbacks work unchanged; it cannot `apply` plain
    gradients, which carry neither the surrogate nor the KL.

    Args:
        max_kl: the trust region, a bound on the mean KL divergence.
        damping: added to the diagonal of the KL Hessian.
        cg_iterations: conjugate-gradient steps.
        backtrack_ratio: the line search's step shrink factor.
        line_search_steps: the most line-search trials.
        learning_rate: the fraction of the full trust-region step tried first.
        name: the optimizer's name.
        **kwargs: forwarded to `keras.optimizers.Optimizer`.

    Example:

    ```python
    import keras
    from tfmeta import rl

    family = rl.Navigation2D()
    learner = rl.PolicyMAML(rl.gaussian_mlp_policy(2, 2), family)
    learner.compile(optimizer=rl.TRPO(max_kl=0.01))
    ```
    """

    def __init__(
        self,
        max_kl: float = 0.01,
        damping: float = 1e-5,
        cg_iterations: int = 10,
        backtrack_ratio: float = 0.8,
        line_search_steps: int = 15,
        learning_rate: float = 1.0,
        name: str = "trpo",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not max_kl > 0.0:
            raise ValueError(f"Expected `max_kl` > 0. Received: max_kl={max_kl!r}")
        if not 0.0 < backtrack_ratio < 1.0:
            raise ValueError(
                f"Expected 0 < `backtrack_ratio` < 1. Received: backtrack_ratio={backtrack_ratio!r}"
            )
        for option, value in (
            ("cg_iterations", cg_iterations),
            ("line_search_steps", line_search_steps),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Expected `{option}` to be an integer >= 1. Received: {option}={value!r}"
                )
        self.max_kl = float(max_kl)
        self.damping = float(damping)
        self.cg_iterations = cg_iterations
        self.backtrack_ratio = float(backtrack_ratio)
        self.line_search_steps = line_search_steps

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError(
            "TRPO cannot apply plain gradients: a trust-region step needs the surrogate and the "
            "KL divergence as functions of the weights. Call `trust_region_step(variables, "
            "outputs_fn, surrogate_fn, kl_fn)`."
        )

    def trust_region_step(
        self,
        variables: Sequence,
        outputs_fn: ParamsFn,
        surrogate_fn: OutputsFn,
        kl_fn: OutputsFn,
    ) -> dict[str, tf.Tensor]:
        """Moves `variables` by one trust-region step; returns what it measured.

        The objectives are functions of the policy's outputs (its
        distribution parameters), which are functions of the weights; the
        split lets `kl_hessian_vector_product` multiply by the KL's Hessian
        without third-order derivatives.

        Args:
            variables: the variables to update (Keras or TF variables).
            outputs_fn: `params -> outputs`, with `params` a list of tensors
                aligned with `variables`.
            surrogate_fn: `outputs -> scalar` to maximise.
            kl_fn: `outputs -> scalar`, the mean KL divergence from the
                current policy's outputs (zero at them).

        Returns:
            `{"surrogate_before", "surrogate_after", "kl", "step_fraction"}`;
            `step_fraction` is 0 when no step was accepted.
        """
        params = [tf.convert_to_tensor(v.value if hasattr(v, "value") else v) for v in variables]
        with tf.GradientTape() as tape:
            tape.watch(params)
            outputs = outputs_fn(params)
            surrogate = surrogate_fn(outputs)
        gradient = flatten(
            tape.gradient(surrogate, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        )
        current_outputs = tf.stop_gradient(outputs)

        @tf.function(autograph=False)  # traced once, called by every CG step and once more
        def hessian_vector_product(vector):
            return kl_hessian_vector_product(params, outputs_fn, kl_fn, current_outputs, vector) + (
                self.damping * vector
            )

        direction = conjugate_gradient(hessian_vector_product, gradient, self.cg_iterations)
        curvature = tf.reduce_sum(direction * hessian_vector_product(direction))
        scale = tf.sqrt(2.0 * self.max_kl / tf.maximum(curvature, 1e-12))
        full_step = unflatten(scale * direction, params)
        first_fraction = tf.cast(self.learning_rate, gradient.dtype)

        def candidate(fraction):
            return [p + fraction * s for p, s in zip(params, full_step)]

        def not_accepted(trial, fraction, accepted, new_surrogate, new_kl):
            return tf.logical_and(trial < self.line_search_steps, tf.logical_not(accepted))

        def try_step(trial, fraction, accepted, new_surrogate, new_kl):
            fraction = first_fraction * self.backtrack_ratio ** tf.cast(trial, gradient.dtype)
            outputs = outputs_fn(candidate(fraction))
            new_surrogate = surrogate_fn(outputs)
            new_kl = kl_fn(outputs)
            accepted = tf.logical_and(
                tf.logical_and(new_surrogate > surrogate, new_kl <= self.max_kl),
                tf.math.is_finite(new_surrogate),
            )
            return trial + 1, fraction, accepted, new_surrogate, new_kl

        zero = tf.zeros([], gradient.dtype)
        _, fraction, accepted, new_surrogate, new_kl = tf.while_loop(
            not_accepted,
            try_step,
            (tf.constant(0), zero, tf.constant(False), surrogate, zero),
        )
        fraction = tf.where(accepted, fraction, zero)
        for variable, value in zip(variables, candidate(fraction)):
            variable.assign(tf.cast(value, variable.dtype))
        self.iterations.assign_add(1)
        return {
            "surrogate_before": surrogate,
            "surrogate_after": tf.where(accepted, new_surrogate, surrogate),
            "kl": tf.where(accepted, new_kl, zero),
            "step_fraction": fraction,
        }

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            max_kl=self.max_kl,
            damping=self.damping,
            cg_iterations=self.cg_iterations,
            backtrack_ratio=self.backtrack_ratio,
            line_search_steps=self.line_search_steps,
        )
        return config
