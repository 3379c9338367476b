"""Conditional Neural Processes (Garnelo et al. 2018): a task's context set, encoded and averaged,
conditions a decoder that predicts a Gaussian for each query."""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base


def _feature_size(model: keras.Model, kind: str, role: str) -> int | None:
    """The size of a model's flat `(features,)` inputs or outputs; None if not declared so."""
    try:
        tensors = getattr(model, kind)
    except (AttributeError, ValueError):  # a subclassed model without symbolic tensors
        return None
    shape = tuple(tensors[0].shape[1:]) if tensors else ()
    if len(shape) != 1 or shape[0] is None:
        raise ValueError(
            f"Expected the {role} to have flat {kind} of shape (features,). Received: model "
            f"'{model.name}' with {kind} of shape {shape}"
        )
    return shape[0]


def _dimensions(encoder: keras.Model, decoder: keras.Model) -> tuple[int, int]:
    """`(x_dim, y_dim)` read from the encoder's and decoder's shapes, checked to fit together."""
    sizes = {
        (role, kind): _feature_size(model, kind, role)
        for role, model in (("encoder", encoder), ("decoder", decoder))
        for kind in ("inputs", "outputs")
    }
    if None in sizes.values():
        raise ValueError(
            "Expected an encoder and a decoder with declared input and output shapes (functional "
            "or Sequential models with keras.Input), e.g. tfmeta.models.cnp_encoder() and "
            f"tfmeta.models.cnp_decoder(). Received: encoder '{encoder.name}', decoder "
            f"'{decoder.name}'"
        )
    x_dim = sizes["decoder", "inputs"] - sizes["encoder", "outputs"]
    y_dim, odd = divmod(sizes["decoder", "outputs"], 2)
    if x_dim < 1 or y_dim < 1 or odd or sizes["encoder", "inputs"] != x_dim + y_dim:
        raise ValueError(
            "Expected an encoder from concat(x, y) (x_dim + y_dim) to a representation r, and a "
            "decoder from concat(r, x) (r + x_dim) to 2 * y_dim values (mean, raw standard "
            "deviation), e.g. tfmeta.models.cnp_encoder(x_dim, y_dim) and "
            "tfmeta.models.cnp_decoder(x_dim, y_dim, representation_dim). Received: encoder "
            f"{sizes['encoder', 'inputs']} -> {sizes['encoder', 'outputs']}, decoder "
            f"{sizes['decoder', 'inputs']} -> {sizes['decoder', 'outputs']}"
        )
    return x_dim, y_dim


def positive_stddev(raw: tf.Tensor, min_stddev: float) -> tf.Tensor:
    """`min_stddev + (1 - min_stddev) * softplus(raw)`, the decoder's standard deviation.

    Softplus is written `relu(x) + log(1 + exp(-|x|))`: stable for large
    `|x|`, and made of ops LiteRT has builtin kernels for (it has none for
    softplus itself), so an on-device export computes the same function.
    """
    softplus = tf.nn.relu(raw) + tf.math.log(1.0 + tf.exp(-tf.abs(raw)))
    return min_stddev + (1.0 - min_stddev) * softplus


@keras.saving.register_keras_serializable(package="tfmeta")
class ConditionalNeuralProcess(base.MetaLearner):
    """A Conditional Neural Process: context points in, a Gaussian for every query out.

    Per task, every support (context) pair is encoded, `r_i = encoder(concat(x_i,
    y_i))`; their mean `r` is the task's representation (so predictions do not
    depend on the order of the context points, and adaptation is one forward
    pass); the decoder maps `concat(r, x)` of each query to a mean and a raw
    standard deviation, made positive as in the authors' code,
    `stddev = min_stddev + (1 - min_stddev) * softplus(raw)`. Predictions
    are `[Q, y_dim, 2]` (mean, stddev), as
    `tfmeta.losses.GaussianNegativeLogLikelihood` (the paper's loss) takes
    them; compile with it.

    Episodes hold `[S, x_dim]` / `[Q, x_dim]` inputs and float `[S, y_dim]` /
    `[Q, y_dim]` targets (`tfmeta.data.GaussianProcessTasks`,
    `tfmeta.data.SinusoidTasks`). The encoder is the learner's `model`;
    `query_statistics` does not apply (the encoder sees the context set only,
    the decoder each query on its own) and is not an argument. Calling the
    learner on anything but episodes raises: a CNP predicts from a context.

    Args:
        encoder: a built Keras model `(x_dim + y_dim,) -> (r,)`, e.g.
            `tfmeta.models.cnp_encoder()`.
        decoder: a built Keras model `(r + x_dim,) -> (2 * y_dim,)`, e.g.
            `tfmeta.models.cnp_decoder()`.
        min_stddev: the smallest predicted standard deviation, in `[0, 1)`
            (the authors' code: 0.1).
        **kwargs: forwarded to `tfmeta.MetaLearner` (`parallel_tasks`, `name`).

    Example:

    ```python
    import keras, tfmeta
    cnp = tfmeta.ConditionalNeuralProcess(tfmeta.models.cnp_encoder(),
                                          tfmeta.models.cnp_decoder())
    cnp.compile(optimizer=keras.optimizers.Adam(1e-4),
                loss=tfmeta.losses.GaussianNegativeLogLikelihood())
    tasks = tfmeta.data.GaussianProcessTasks()
    cnp.fit(tasks.episodes(support_shots=10, query_shots=20, meta_batch_size=16, seed=0),
            steps_per_epoch=1000)
    ```
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        min_stddev: float = 0.1,
        **kwargs,
    ):
        super().__init__(encoder, query_statistics=query_statistics_lib.MOVING, **kwargs)
        adaptation.check_built(decoder)
        self.x_dim, self.y_dim = _dimensions(encoder, decoder)
        if isinstance(min_stddev, bool) or not isinstance(min_stddev, (int, float)) or not (
                0.0 <= min_stddev < 1.0):
            raise ValueError(
                "Expected `min_stddev` to be a float in [0, 1). "
                f"Received: min_stddev={min_stddev!r}"
            )
        self.min_stddev = float(min_stddev)
        self.decoder = decoder

    @property
    def encoder(self) -> keras.Model:
        """The context-point encoder (the learner's `model`)."""
        return self.model

    @property
    def meta_variables(self) -> list:
        """The encoder's trainable weights, then the decoder's."""
        return list(self.model.trainable_variables) + list(self.decoder.trainable_variables)

    @property
    def state_variables(self) -> list:
        """The encoder's non-trainable weights, then the decoder's."""
        return list(self.model.non_trainable_variables) + list(
            self.decoder.non_trainable_variables)

    def adapt_and_predict(self, task, state, training):
        """Encodes the context set, averages it, decodes each query: `([Q, y_dim, 2], state)`."""
        encoder_state = self.model_state(state)
        representation, encoder_state = self.representation(
            task[episode_lib.SUPPORT_X], task[episode_lib.SUPPORT_Y], encoder_state, training
        )
        predictions, decoder_state = self.decode(
            representation, task[episode_lib.QUERY_X], list(state[len(encoder_state):]), training
        )
        return predictions, list(encoder_state) + list(decoder_state)

    def representation(
        self, support_x: tf.Tensor, support_y: tf.Tensor, state: adaptation.Weights,
        training: bool,
    ) -> tuple[tf.Tensor, adaptation.Weights]:
        """The mean encoding `[r]` of the context pairs `[S, x_dim]`, `[S, y_dim]`, and the
        encoder's new state."""
        params, _ = adaptation.initial_weights(self.model)
        context = tf.concat([support_x, tf.cast(support_y, support_x.dtype)], axis=-1)
        encodings, state = adaptation.forward(self.model, params, state, context, training)
        return tf.reduce_mean(encodings, axis=0), state

    def decode(
        self, representation: tf.Tensor, query_x: tf.Tensor, state: adaptation.Weights,
        training: bool,
    ) -> tuple[tf.Tensor, adaptation.Weights]:
        """Each query's `(mean, stddev)` `[Q, y_dim, 2]` given the representation `[r]`, and the
        decoder's new state."""
        params, _ = adaptation.initial_weights(self.decoder)
        tiled = tf.tile(representation[tf.newaxis], [tf.shape(query_x)[0], 1])
        inputs = tf.concat([tiled, tf.cast(query_x, tiled.dtype)], axis=-1)
        outputs, state = adaptation.forward(self.decoder, params, state, inputs, training)
        mean, raw_stddev = outputs[:, : self.y_dim], outputs[:, self.y_dim:]
        return tf.stack([mean, positive_stddev(raw_stddev, self.min_stddev)], axis=-1), state

    def predict_without_adaptation(self, task, state):
        return None  # nothing to predict before the context set is seen

    def checked_episodes(self, episodes: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The meta-batch, checked: `[T, S|Q, x_dim]` inputs, float `[T, S|Q, y_dim]` targets,
        finite values (in the graph)."""
        episodes = episode_lib.validate_meta_batch(episodes)
        for key, size, what in (
            (episode_lib.SUPPORT_X, self.x_dim, "x_dim"),
            (episode_lib.QUERY_X, self.x_dim, "x_dim"),
            (episode_lib.SUPPORT_Y, self.y_dim, "y_dim"),
            (episode_lib.QUERY_Y, self.y_dim, "y_dim"),
        ):
            shape = episodes[key].shape
            if shape.rank != 3 or shape[2] not in (size, None):
                raise ValueError(
                    f"Expected `{key}` of shape [tasks, points, {what}={size}] "
                    f"({type(self).__name__}"
                    f" with x_dim={self.x_dim}, y_dim={self.y_dim}). Received: {key}.shape={shape}"
                )
        for key in (episode_lib.SUPPORT_Y, episode_lib.QUERY_Y):
            if not episodes[key].dtype.is_floating:
                raise ValueError(
                    f"Expected floating-point regression targets in `{key}` "
                    f"({type(self).__name__}). Received: {key}.dtype={episodes[key].dtype.name}"
                )
        return episode_lib.check_meta_batch_values(episodes)

    def call(self, inputs, training=False):
        """Adapts to each task of a meta-batch of episodes and predicts its queries."""
        if not isinstance(inputs, Mapping):
            raise ValueError(
                f"Expected a meta-batch of episodes (a dict with {list(episode_lib.EPISODE_KEYS)}):"
                f" {type(self).__name__} predicts from a context set. Received: inputs of type "
                f"{type(inputs).__name__}"
            )
        return self.predict_step(inputs)

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        return True  # one backward pass, no inner loop

    def _prediction_spec(self, episodes):
        return tf.TensorSpec(
            [episodes[episode_lib.QUERY_X].shape[1], self.y_dim, 2],
            tf.as_dtype(self.decoder.outputs[0].dtype),
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("query_statistics")
        config.update(decoder=keras.saving.serialize_keras_object(self.decoder),
                      min_stddev=self.min_stddev)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        encoder, decoder = (
            keras.saving.deserialize_keras_object(config.pop(key), custom_objects=custom_objects)
            for key in ("model", "decoder")
        )
        return cls(encoder, decoder, **config)
