"""`LinearFeatureBaseline`: the state-value baseline of Finn et al. 2017 (from rllab)."""

from __future__ import annotations

import tensorflow as tf

from tfmeta.argument_validation import check_choice

FITS = ("own_task", "previous_task")


class LinearFeatureBaseline:
    """A per-task linear regression of returns on polynomial features of state and time.

    Features of an observation `o` at step `t`: `[clip(o, -10, 10), its
    square, t/100, (t/100)**2, (t/100)**3, 1]`. The coefficients are the
    ridge least-squares fit (`tf.linalg.lstsq` with `l2_regularizer`) of the
    returns over every step of a task's rollouts, computed in float64 and
    refitted from scratch for each batch of rollouts (so a meta-iteration
    depends on nothing but the policy and its seed).

    Each task's values come from the fit on its own rollouts
    (`fit_on="own_task"`), or, as in the paper's code, from the fit on the
    previous task's (`"previous_task"`; the first task takes the last
    task's): rllab's sampler keeps one baseline for the tasks of a
    meta-batch and predicts a task's values before refitting it on that
    task's paths.

    Args:
        regularization: the ridge coefficient.
        fit_on: `"own_task"` or `"previous_task"`.

    Example:

    ```python
    import tensorflow as tf
    from tfmeta.rl.linear_baseline import LinearFeatureBaseline

    observations = tf.random.normal([4, 10, 100, 2])     # tasks, rollouts, steps, features
    returns, mask = tf.random.normal([4, 10, 100]), tf.ones([4, 10, 100])
    values = LinearFeatureBaseline()(observations, returns, mask)   # [4, 10, 100]
    ```
    """

    def __init__(self, regularization: float = 1e-5, fit_on: str = "own_task"):
        if not regularization >= 0.0:
            raise ValueError(
                f"Expected `regularization` >= 0. Received: regularization={regularization!r}"
            )
        self.regularization = float(regularization)
        self.fit_on = check_choice("fit_on", fit_on, FITS)

    def features(self, observations: tf.Tensor, dtype: tf.DType = tf.float64) -> tf.Tensor:
        """`[..., T, observation_dim]` -> `[..., T, 2 * observation_dim + 4]` in `dtype`
        (float64 for the fit; the LiteRT export computes them in float32); the last
        feature is the constant 1."""
        observations = tf.clip_by_value(tf.cast(observations, dtype), -10.0, 10.0)
        length = observations.shape[-2]
        time = tf.range(length, dtype=dtype)[:, None] / 100.0
        time = tf.broadcast_to(time, tf.concat([tf.shape(observations)[:-1], [1]], axis=0))
        return tf.concat(
            [observations, tf.square(observations), time, time**2, time**3, tf.ones_like(time)],
            axis=-1,
        )

    def fit(self, observations: tf.Tensor, returns: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Coefficients of each task's fit over the steps where `mask` is 1.

        Args:
            observations: `[tasks, rollouts, T, observation_dim]`.
            returns, mask: `[tasks, rollouts, T]`.

        Returns:
            `[tasks, num_features]`, float64.
        """
        if observations.shape.rank != 4:
            raise ValueError(
                "Expected observations of shape [tasks, rollouts, steps, observation_dim]. "
                f"Received: shape {observations.shape}"
            )
        features = self.features(observations)
        weights = tf.cast(mask, tf.float64)[..., None]
        num_features = features.shape[-1]
        rows = tf.reshape(features * weights, [tf.shape(features)[0], -1, num_features])
        targets = tf.reshape(
            tf.cast(returns, tf.float64)[..., None] * weights, [tf.shape(rows)[0], -1, 1]
        )
        solution = tf.linalg.lstsq(rows, targets, l2_regularizer=self.regularization)
        return solution[..., 0]

    def predict(self, coefficients: tf.Tensor, observations: tf.Tensor) -> tf.Tensor:
        """Baseline values `[tasks, rollouts, T]` in the observations' float dtype."""
        values = tf.einsum("brtf,bf->brt", self.features(observations), coefficients)
        dtype = observations.dtype if observations.dtype.is_floating else tf.float32
        return tf.cast(values, dtype)

    def __call__(self, observations: tf.Tensor, returns: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Fits on the rollouts and returns their baseline values, `[tasks, rollouts, T]`."""
        coefficients = self.fit(observations, returns, mask)
        if self.fit_on == "previous_task":
            coefficients = tf.roll(coefficients, shift=1, axis=0)
        return self.predict(coefficients, observations)

    def get_config(self) -> dict:
        return {"regularization": self.regularization, "fit_on": self.fit_on}
