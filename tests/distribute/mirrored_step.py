"""One meta-step with and without MirroredStrategy on two logical CPUs; prints the max weight difference.

Run as a script (logical devices must be configured before TensorFlow starts):
`python mirrored_step.py maml|protonet`.
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
    if algorithm == "maml":
        learner = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), 5, filters=8), inner_learning_rate=0.4)
    else:
        learner = tfmeta.ProtoNet(tfmeta.models.conv4((28, 28, 1), None, filters=8), ways=5)
    learner.compile(optimizer=keras.optimizers.SGD(0.5),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


def one_meta_step(algorithm, strategy):
    with strategy.scope():
        learner = learner_for(algorithm)
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(5, dtype=np.int32), (4, 2))
    batch = {
        "support_x": rng.random((4, 10, 28, 28, 1), np.float32),
        "support_y": labels,
        "query_x": rng.random((4, 10, 28, 28, 1), np.float32),
        "query_y": labels,
    }
    initial = [np.asarray(v) for v in learner.model.weights]
    learner.fit(tf.data.Dataset.from_tensor_slices(batch).batch(4), epochs=1, verbose=0)
    return initial, [np.asarray(v) for v in learner.model.weights]


algorithm = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
initial, single = one_meta_step(algorithm, tf.distribute.get_strategy())
_, mirrored = one_meta_step(algorithm, strategy)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)),
    "max_update": max(float(np.abs(a - b).max()) for a, b in zip(initial, single)),
}))
