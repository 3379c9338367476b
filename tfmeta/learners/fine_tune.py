"""The fine-tuning baseline (Chen et al. 2019): pretrain a classifier, fine-tune a new head."""

from __future__ import annotations

import contextlib
import math

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_integer, check_learning_rate
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base


@keras.saving.register_keras_serializable(package="tfmeta")
class FineTune(base.MetaLearner):
    """"Baseline" of Chen et al. (2019): supervised pretraining, then a new head per episode.

    The wrapped model is a body mapping inputs to features. Training is not
    episodic: `pretrain` fits the body plus a temporary linear classifier over
    all meta-training classes on ordinary `(image, label)` batches, then drops
    that classifier. On each evaluation episode a new linear head with `ways`
    outputs starts from its initial weights (`head_initializer`, the same
    start for every episode) and takes `eval_inner_steps` full-batch SGD
    steps on the support set through the functional core
    (`adaptation.adapt`), with the body frozen (its features are computed
    once per episode) or, with `fine_tune_body=True`, adapted too. The
    learner's variables never change in evaluation, so `evaluate`,
    `predict` and `tfmeta.evaluation` work as for the meta-learners.

    Chen et al. fine-tune with SGD (momentum 0.9, learning rate 0.01,
    minibatches of 4) for 100 iterations; the full-batch plain SGD here
    defaults to an equivalent step of 0.1. Baseline++ (cosine classifier)
    is not implemented.

    Args:
        model: a built Keras model mapping inputs to features (any rank:
            features are flattened), e.g. `tfmeta.models.conv4(num_classes=None)`.
        ways: classes per evaluation episode (outputs of the new head).
        eval_inner_learning_rate: SGD step size of the fine-tuning.
        eval_inner_steps: fine-tuning steps per episode.
        fine_tune_body: adapt the body's weights too, not only the head's.
        head_initializer: initializer of the new head's kernel (the bias
            starts at zero).
        query_statistics: which statistics the body's BatchNorm layers use
            (`tfmeta.query_statistics`). Default `"moving"`: inference mode,
            the moving statistics of pretraining; `"support"`: the support
            set's statistics for support and queries; `"transductive"`: the
            statistics of support and queries together.
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    import keras, tfmeta
    body = tfmeta.models.conv4((28, 28, 1), num_classes=None)
    baseline = tfmeta.FineTune(body, ways=5, eval_inner_steps=100)
    # images: a tf.data.Dataset of (image, label) batches of all training classes
    baseline.pretrain(images, num_classes=4400, epochs=10)
    baseline.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    baseline.evaluate(sources["test"].episodes(ways=5, shots=1, queries=15,
                                               meta_batch_size=20, num_episodes=600, seed=1))
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        ways: int,
        eval_inner_learning_rate: float = 0.1,
        eval_inner_steps: int = 100,
        fine_tune_body: bool = False,
        head_initializer: str | keras.initializers.Initializer = "zeros",
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, query_statistics=query_statistics, **kwargs)
        self.ways = check_integer("ways", ways)
        self.eval_inner_learning_rate = check_learning_rate(
            "eval_inner_learning_rate", eval_inner_learning_rate
        )
        self.eval_inner_steps = check_integer("eval_inner_steps", eval_inner_steps, minimum=0)
        self.fine_tune_body = bool(fine_tune_body)
        self.head_initializer = keras.initializers.get(head_initializer)
        num_features = math.prod(self.model.output_shape[1:])
        self.head = keras.Sequential(
            [
                keras.Input((num_features,), dtype=self.model.compute_dtype),
                keras.layers.Dense(ways, kernel_initializer=self.head_initializer, name="dense"),
            ],
            name="head",
        )
        self.episode_model = keras.Sequential(
            [self.model, keras.layers.Flatten(name="flatten"), self.head], name="episode_model"
        )

    def pretrain(
        self,
        dataset: tf.data.Dataset,
        num_classes: int,
        epochs: int = 1,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        **fit_kwargs,
    ) -> keras.callbacks.History:
        """Trains the body as a plain classifier over all meta-training classes.

        A temporary `Dense(num_classes)` classifier on top of the body is fit
        with softmax cross-entropy, then discarded; the body keeps its
        trained weights (and BatchNorm statistics).

        Args:
            dataset: `(inputs, labels)` batches, labels in `0..num_classes-1`.
            num_classes: classes of the pretraining data.
            epochs: passes over `dataset`.
            optimizer: the pretraining optimizer.
            **fit_kwargs: forwarded to `keras.Model.fit` (`steps_per_epoch`,
                `callbacks`, `verbose`, ...).

        Returns:
            The `History` of the pretraining fit.
        """
        num_classes = check_integer("num_classes", num_classes, minimum=2)
        classifier = keras.Sequential(
            [self.model, keras.layers.Flatten(), keras.layers.Dense(num_classes)],
            name="pretraining_classifier",
        )
        classifier.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return classifier.fit(dataset, epochs=epochs, **fit_kwargs)

    def train_step(self, data):
        raise ValueError(
            "FineTune is not meta-trained on episodes. Pretrain its body with "
            "`pretrain(dataset, num_classes)` on (image, label) batches of the training "
            "classes, then `evaluate` or `predict` on episodes."
        )

    def adapt_and_predict(self, task, state, training):
        del training  # FineTune adapts the same way in every call (it is never meta-trained)
        support_x, query_x = task[episode_lib.SUPPORT_X], task[episode_lib.QUERY_X]
        model_state = self.model_state(state)
        if self.fine_tune_body:
            network, network_state = self.episode_model, model_state
        else:
            body_params, _ = adaptation.initial_weights(self.model)
            support_x, query_x, _ = query_statistics_lib.episode_forward(
                self.model, body_params, model_state, support_x, query_x,
                mode=self.query_statistics, training=False,
            )
            support_x, query_x = _flatten(support_x), _flatten(query_x)
            network, network_state = self.head, []
        params, _ = adaptation.initial_weights(network)
        with self._support_passes(network):
            params, network_state = adaptation.adapt(
                network,
                self.task_loss,
                params,
                network_state,
                support_x,
                task[episode_lib.SUPPORT_Y],
                learning_rates=adaptation.constant_learning_rates(
                    self.eval_inner_learning_rate, self.eval_inner_steps, len(params)
                ),
                training=False,
            )
        predictions, _ = query_statistics_lib.predict_queries(
            network, params, network_state, support_x, query_x,
            mode=self.query_statistics, training=False,
        )
        return predictions, state

    def _support_passes(self, network: keras.Model):
        """Fine-tuning passes: the pretrained moving statistics in `"moving"` mode, else the
        support batch's statistics; Dropout off."""
        if self.query_statistics == query_statistics_lib.MOVING:
            return contextlib.nullcontext()
        return query_statistics_lib.support_passes(network, False, self.query_statistics)

    def predict_without_adaptation(self, task, state):
        return None

    def _prediction_spec(self, episodes):
        return tf.TensorSpec(
            [episodes[episode_lib.QUERY_X].shape[1], self.ways], self.head.outputs[0].dtype
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            ways=self.ways,
            eval_inner_learning_rate=self.eval_inner_learning_rate,
            eval_inner_steps=self.eval_inner_steps,
            fine_tune_body=self.fine_tune_body,
            head_initializer=keras.initializers.serialize(self.head_initializer),
        )
        return config


def _flatten(features: tf.Tensor) -> tf.Tensor:
    return tf.reshape(features, [tf.shape(features)[0], -1])
