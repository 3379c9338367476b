"""One meta-step with and without MirroredStrategy on two logical CPUs; prints the max weight
difference.

Run as a script (logical devices must be configured before TensorFlow starts):
`python mirrored_step.py maml|protonet|r2d2|relation|cnp`.
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfmeta  # noqa: E402


def learner_for(algorithm):
    keras.utils.set_random_seed(0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    embedding = tfmeta.models.conv4((28, 28, 1), None, filters=8)
    if algorithm == "maml":
        learner = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), 5, filters=8),
                              inner_learning_rate=0.4)
    elif algorithm == "r2d2":
        learner = tfmeta.R2D2(embedding, ways=5)
    elif algorithm == "relation":
        maps = keras.Model(embedding.input, embedding.get_layer("block3_relu").output)
        learner = tfmeta.RelationNetwork(maps, tfmeta.models.relation_module((2, 2, 8), 8), ways=5)
        loss = tfmeta.losses.OneHotMeanSquaredError()
    elif algorithm == "cnp":
        learner = tfmeta.ConditionalNeuralProcess(tfmeta.models.cnp_encoder(units=(32, 32)),
                                                  tfmeta.models.cnp_decoder(representation_dim=32))
        loss = tfmeta.losses.GaussianNegativeLogLikelihood()
    else:
        learner = tfmeta.ProtoNet(embedding, ways=5)
    learner.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    return learner


def meta_batch(algorithm, rng):
    """Four tasks: 5-way 2-shot images, or 10 context and 10 target points of GP curves."""
    if algorithm == "cnp":
        tasks = tfmeta.data.GaussianProcessTasks().episodes(10, 10, meta_batch_size=4, seed=0)
        return {key: value.numpy() for key, value in next(iter(tasks)).items()}
    labels = np.tile(np.arange(5, dtype=np.int32), (4, 2))
    return {
        "support_x": rng.random((4, 10, 28, 28, 1), np.float32),
        "support_y": labels,
        "query_x": rng.random((4, 10, 28, 28, 1), np.float32),
        "query_y": labels,
    }


def weights(learner):
    return [np.asarray(v) for v in learner.meta_variables + learner.state_variables]


def one_meta_step(algorithm, strategy):
    with strategy.scope():
        learner = learner_for(algorithm)
    batch = meta_batch(algorithm, np.random.default_rng(0))
    initial = weights(learner)
    learner.fit(tf.data.Dataset.from_tensor_slices(batch).batch(4), epochs=1, verbose=0)
    return initial, weights(learner)


algorithm = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
initial, single = one_meta_step(algorithm, tf.distribute.get_strategy())
_, mirrored = one_meta_step(algorithm, strategy)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)),
    "max_update": max(float(np.abs(a - b).max()) for a, b in zip(initial, single)),
}))
