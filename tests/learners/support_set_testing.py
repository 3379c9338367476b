"""Small compiled one-pass classifiers (R2-D2 and LR-D2, Matching and Relation Networks) for the
tests."""

import keras

import tfmeta

LEARNERS = ("r2d2", "r2d2_logistic", "matching", "matching_fce", "relation")


def embedding(filters=4, seed=0):
    """Conv-4 with `filters` channels and BatchNorm, as `[2, 2, filters]` maps of 28x28 inputs."""
    keras.utils.set_random_seed(seed)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=None, filters=filters)
    return keras.Model(net.input, net.get_layer("block3_relu").output)


def make(kind, ways=5, query_statistics="moving", seed=0, **kwargs):
    """A compiled learner of `kind` (one of `LEARNERS`) over `embedding()`."""
    net = embedding(seed=seed)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    common = dict(ways=ways, query_statistics=query_statistics, **kwargs)
    if kind.startswith("r2d2"):
        head = "logistic" if kind == "r2d2_logistic" else "ridge"
        learner = tfmeta.R2D2(net, head=head, **common)
    elif kind.startswith("matching"):
        learner = tfmeta.MatchingNetworks(
            net, full_context_embeddings=kind == "matching_fce",
            similarity="euclidean" if kind == "matching_euclidean" else "cosine", **common)
    else:
        learner = tfmeta.RelationNetwork(
            net, tfmeta.models.relation_module(net.outputs[0].shape[1:], filters=4), **common
        )
        loss = tfmeta.losses.OneHotMeanSquaredError()
    learner.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
    return learner
