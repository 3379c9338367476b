"""Action distributions over a policy network's outputs: diagonal Gaussian and categorical.

A policy is a plain Keras model whose output holds the parameters of the
action distribution (Gaussian: mean and log standard deviation; categorical:
logits). These objects interpret those outputs: log-likelihoods for the
policy-gradient surrogates, KL divergences for the trust region, sampling for
rollouts. They are stateless, so the same object serves the meta-learned and
every adapted weight list.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfmeta.argument_validation import check_integer


class DiagonalGaussian:
    """A Gaussian with diagonal covariance over `action_dim` continuous actions.

    The parameters are the last axis of a policy's outputs:
    `[mean (action_dim), log_std (action_dim)]`.

    Args:
        action_dim: number of action dimensions.

    Example:

    ```python
    import tensorflow as tf
    from tfmeta.rl.distributions import DiagonalGaussian

    gaussian = DiagonalGaussian(2)
    params = tf.zeros([5, 4])                            # mean 0, std 1
    actions = gaussian.sample(params, seed=[1, 2])       # [5, 2]
    gaussian.log_prob(params, actions)                   # [5]
    ```
    """

    discrete = False

    def __init__(self, action_dim: int):
        self.action_dim = check_integer("action_dim", action_dim)

    @property
    def params_dim(self) -> int:
        """Width of the policy output this distribution reads."""
        return 2 * self.action_dim

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action."""
        return (self.action_dim,)

    action_dtype = tf.float32

    def split(self, params: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`(mean, log_std)` from the policy outputs."""
        return params[..., : self.action_dim], params[..., self.action_dim :]

    def log_prob(self, params: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Log-density of `actions` (`[..., action_dim]`); returns `[...]`."""
        mean, log_std = self.split(params)
        actions = tf.cast(actions, params.dtype)
        z = (actions - mean) * tf.exp(-log_std)
        return -tf.reduce_sum(0.5 * tf.square(z) + log_std + 0.5 * math.log(2.0 * math.pi), axis=-1)

    def kl(self, old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
        """`KL(old || new)` per distribution; returns `[...]`."""
        old_mean, old_log_std = self.split(old)
        new_mean, new_log_std = self.split(new)
        variance_ratio = tf.exp(2.0 * (old_log_std - new_log_std))
        mean_term = tf.square(old_mean - new_mean) * tf.exp(-2.0 * new_log_std)
        return tf.reduce_sum(
            new_log_std - old_log_std + 0.5 * (variance_ratio + mean_term) - 0.5, axis=-1
        )

    def entropy(self, params: tf.Tensor) -> tf.Tensor:
        """Differential entropy per distribution; returns `[...]`."""
        _, log_std = self.split(params)
        return tf.reduce_sum(log_std + 0.5 * math.log(2.0 * math.pi * math.e), axis=-1)

    def sample(self, params: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Actions drawn with a stateless seed (`[2]` integers): the same seed, the same draw."""
        mean, log_std = self.split(params)
        noise = tf.random.stateless_normal(tf.shape(mean), seed, dtype=params.dtype)
        return mean + tf.exp(log_std) * noise

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """The most likely action (the mean)."""
        return self.split(params)[0]


class Categorical:
    """A categorical distribution over `num_actions` discrete actions, from logits.

    Actions are integer indices (shape `[...]`).

    Args:
        num_actions: number of discrete actions.

    Example:

    ```python
    import tensorflow as tf
    from tfmeta.rl.distributions import Categorical

    categorical = Categorical(3)
    logits = tf.math.log([[0.2, 0.3, 0.5]])
    categorical.log_prob(logits, categorical.sample(logits, seed=[0, 1]))
    ```
    """

    discrete = True

    def __init__(self, num_actions: int):
        if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 2:
            raise ValueError(
                "Expected `num_actions` to be an integer >= 2. "
                f"Received: num_actions={num_actions!r}"
            )
        self.num_actions = num_actions

    @property
    def params_dim(self) -> int:
        """Width of the policy output this distribution reads."""
        return self.num_actions

    action_shape: tuple[int, ...] = ()
    action_dtype = tf.int32

    def log_prob(self, params: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Log-probability of integer `actions` (`[...]`); returns `[...]`."""
        log_probs = tf.nn.log_softmax(params, axis=-1)
        return tf.gather(
            log_probs, tf.cast(actions, tf.int32), axis=-1, batch_dims=actions.shape.rank
        )

    def kl(self, old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
        """`KL(old || new)` per distribution; returns `[...]`."""
        old_log_probs = tf.nn.log_softmax(old, axis=-1)
        new_log_probs = tf.nn.log_softmax(new, axis=-1)
        return tf.reduce_sum(tf.exp(old_log_probs) * (old_log_probs - new_log_probs), axis=-1)

    def entropy(self, params: tf.Tensor) -> tf.Tensor:
        """Entropy per distribution; returns `[...]`."""
        log_probs = tf.nn.log_softmax(params, axis=-1)
        return -tf.reduce_sum(tf.exp(log_probs) * log_probs, axis=-1)

    def sample(self, params: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Actions drawn with a stateless seed (shape `[2]` integers)."""
        flat = tf.reshape(params, [-1, self.num_actions])
        draws = tf.random.stateless_categorical(flat, 1, seed, dtype=tf.int32)
        return tf.reshape(draws, tf.shape(params)[:-1])

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """The most likely action."""
        return tf.argmax(params, axis=-1, output_type=tf.int32)


# What a policy's outputs parameterise: the types `PolicyMAML` and the objectives accept.
ActionDistribution = DiagonalGaussian | Categorical
