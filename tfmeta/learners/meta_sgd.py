"""Meta-SGD (Li et al. 2017): MAML with a learned inner learning rate per parameter."""

from __future__ import annotations

import keras

from tfmeta.learners import maml

_FIXED_BY_META_SGD = ("learned_inner_learning_rates", "eval_inner_learning_rate")


@keras.saving.register_keras_serializable(package="tfmeta")
class MetaSGD(maml.MAML):
    """Meta-SGD: meta-learns the initialization and a learning rate for every parameter.

    The inner loop steps `w <- w - alpha * grad`, where `alpha` has the shape
    of `w` (an elementwise rate, direction and size together). The rates are
    variables of the learner (`inner_learning_rate_variables`), initialised to
    `inner_learning_rate`, and the outer optimizer updates them with the
    weights (`meta_variables` holds both). The same learned rates serve every
    inner step, in meta-training and in evaluation. This is
    `MAML(learned_inner_learning_rates="per_parameter")`; the other MAML
    options apply.

    Args:
        model: a built Keras model (the meta-learned initialization).
        inner_learning_rate: the initial value of every learned rate (the
            paper draws it from `U[0.005, 0.1]`; a constant start is common).
        inner_steps: inner steps in meta-training (the paper: 1).
        eval_inner_steps: inner steps in evaluation (default: `inner_steps`).
        **kwargs: the other `MAML` arguments (`first_order`, `query_statistics`,
            `multi_step_loss`, ...) and `keras.Model` arguments.

    Example:

    ```python
    import keras, tfmeta
    net = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    learner = tfmeta.MetaSGD(net, inner_learning_rate=0.4, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    learner.fit(sources["train"].episodes(ways=5, shots=1, queries=15, meta_batch_size=32,
                                          seed=0), steps_per_epoch=1000)
    rates = learner.inner_learning_rate_variables  # one tensor per weight, shaped like it
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        inner_learning_rate: float = 0.01,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        **kwargs,
    ):
        for name in _FIXED_BY_META_SGD:
            if kwargs.get(name) is not None:
                raise ValueError(
                    f"MetaSGD learns its inner learning rates per parameter; `{name}` does not "
                    f"apply. Received: {name}={kwargs[name]!r}"
                )
            kwargs.pop(name, None)
        super().__init__(
            model,
            inner_learning_rate=inner_learning_rate,
            inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps,
            learned_inner_learning_rates=maml.PER_PARAMETER,
            **kwargs,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        for name in _FIXED_BY_META_SGD:
            config.pop(name)
        return config
