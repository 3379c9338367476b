"""The compiled learner that `--algorithm` and its flags describe, for a task source."""

from __future__ import annotations

import keras

from tfmeta import data, learners, losses, models
from tfmeta.cli.options import ALGORITHM_VARIANTS, RunOptions

_GRADIENT_LEARNERS = {
    "maml": learners.MAML,
    "fomaml": learners.MAML,
    "metasgd": learners.MetaSGD,
    "anil": learners.ANIL,
    "reptile": learners.Reptile,
}


# Learners that classify from embeddings with a head of their own, not a `--ways` output layer.
_EMBEDDING_LEARNERS = ("protonet", "finetune", "r2d2", "matching", "relation")
# One-pass classifiers: `ways=None` when evaluation and training ways differ.
_SUPPORT_SET_CLASSIFIERS = {
    "r2d2": learners.R2D2,
    "matching": learners.MatchingNetworks,
    "relation": learners.RelationNetwork,
}


def _network(
    options: RunOptions, input_shape: tuple[int, ...], classification: bool
) -> keras.Model:
    """The wrapped model: the regression MLP, or Conv-4 (an embedding for the metric and
    one-pass learners; feature maps before its pooling for Relation Networks), or the
    Relation Network paper's embedding (`--network=relation`)."""
    if not classification:
        return models.mlp()
    if options.network == "relation":
        return models.relation_embedding(input_shape, filters=options.filters)
    embedding_only = options.algorithm in _EMBEDDING_LEARNERS
    net = models.conv4(
        input_shape,
        num_classes=None if embedding_only else options.ways,
        filters=options.filters,
        max_pool=options.max_pool,
        normalization=options.normalization,
    )
    if options.algorithm == "relation":
        return keras.Model(net.input, net.get_layer("block3_relu").output, name="embedding")
    return net


def _variant_keywords(options: RunOptions) -> dict:
    """The learner's keyword arguments that the variant flags set (`ALGORITHM_VARIANTS`)."""
    keywords = {}
    for flag, (_, algorithm, _, keyword) in ALGORITHM_VARIANTS.items():
        value = getattr(options, flag)
        if options.algorithm == algorithm and value is not None:
            keywords[keyword] = value
    return keywords


def _reptile_keywords(options: RunOptions) -> dict:
    """Reptile's inner minibatches (seeded by `--seed`) and, with an Adam inner loop, its
    second moments carried from task to task, as in the paper's code."""
    return dict(
        inner_batch_size=options.inner_batch_size,
        eval_inner_batch_size=options.eval_inner_batch_size,
        carry_inner_moments=options.reptile_inner_optimizer == "adam",
        seed=options.seed,
    )


def _support_set_classifier(
    options: RunOptions, net: keras.Model, common: dict
) -> learners.SupportSetClassifier:
    """R2-D2, Matching Networks or Relation Networks over `net`, N-way unless evaluation
    changes N."""
    ways = options.ways if options.evaluation_ways == options.ways else None
    if options.algorithm == "relation":
        module = models.relation_module(net.outputs[0].shape[1:], filters=options.filters)
        return learners.RelationNetwork(net, module, ways=ways, **common)
    return _SUPPORT_SET_CLASSIFIERS[options.algorithm](net, ways=ways, **common)


def build(
    options: RunOptions, input_shape: tuple[int, ...], classification: bool
) -> learners.MetaLearner:
    """The compiled learner, its weights drawn from `--seed`.

    The outer optimizer is Adam at `--meta_learning_rate`, except for Reptile:
    SGD whose step size (epsilon) decays linearly from `--meta_learning_rate`
    to 0 over `--iterations` (Nichol et al. 2018). The fine-tuning baseline
    is compiled without one: `FineTune.pretrain` trains its body.
    """
    keras.utils.set_random_seed(options.seed)
    if options.algorithm == "cnp":
        learner = learners.ConditionalNeuralProcess(models.cnp_encoder(), models.cnp_decoder())
        _compile(learner, options, classification)
        return learner
    net = _network(options, input_shape, classification)
    common = _variant_keywords(options)
    if options.query_statistics is not None:
        common["query_statistics"] = options.query_statistics
    if options.algorithm in _SUPPORT_SET_CLASSIFIERS:
        learner = _support_set_classifier(options, net, common)
    elif options.algorithm == "protonet":
        # Padded variable episodes need a fixed logit count: the config's largest way count.
        ways = None if options.variable_episodes is None else (
            data.VARIABLE_EPISODE_CONFIGS[options.variable_episodes].max_ways
        )
        learner = learners.ProtoNet(net, ways=ways, **common)
    elif options.algorithm == "finetune":
        if options.eval_inner_learning_rate is not None:  # else FineTune's default
            common["eval_inner_learning_rate"] = options.eval_inner_learning_rate
        learner = learners.FineTune(
            net, ways=options.evaluation_ways, eval_inner_steps=options.eval_inner_steps, **common
        )
    else:
        kwargs = dict(
            inner_learning_rate=options.inner_learning_rate,
            inner_steps=options.inner_steps,
            eval_inner_steps=options.eval_inner_steps,
            **common,
        )
        if options.algorithm != "metasgd":
            kwargs["eval_inner_learning_rate"] = options.eval_inner_learning_rate
        if options.algorithm in ("maml", "fomaml"):
            kwargs["first_order"] = options.algorithm == "fomaml"
        if options.algorithm == "reptile":
            kwargs.update(_reptile_keywords(options))
        learner = _GRADIENT_LEARNERS[options.algorithm](net, **kwargs)
    _compile(learner, options, classification)
    return learner


def _compile(learner: learners.MetaLearner, options: RunOptions, classification: bool) -> None:
    """Compiles with the task loss, accuracy for classification, and the outer optimizer.

    Relation Networks regress scores to one-hot labels (their paper's loss);
    a CNP is trained by Gaussian NLL and also reports the squared error of
    its predicted mean (comparable with the other learners' `mse`).
    """
    if options.algorithm == "relation":
        loss, metrics = losses.OneHotMeanSquaredError(), ["accuracy"]
    elif options.algorithm == "cnp":
        loss = losses.GaussianNegativeLogLikelihood()
        metrics = [losses.predictive_mean_squared_error]
    elif classification:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = ["accuracy"]
    else:
        loss, metrics = "mse", None
    if options.algorithm == "finetune":
        learner.compile(loss=loss, metrics=metrics)
    else:
        learner.compile(optimizer=outer_optimizer(options), loss=loss, metrics=metrics)


def outer_optimizer(options: RunOptions) -> keras.optimizers.Optimizer:
    """Adam at `--meta_learning_rate`; Reptile: SGD decaying linearly to 0 (see `build`)."""
    if options.algorithm == "reptile":
        schedule = keras.optimizers.schedules.PolynomialDecay(
            options.meta_learning_rate, options.iterations, end_learning_rate=0.0
        )
        return keras.optimizers.SGD(schedule)
    return keras.optimizers.Adam(options.meta_learning_rate)
