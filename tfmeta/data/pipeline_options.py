"""`without_autotune_thread`: the tf.data options of the episode pipelines tfmeta builds.

With autotuning on (tf.data's default), every iterator runs a model thread
that sleeps between optimisations, and destroying the iterator joins that
thread. In the test
suite (TensorFlow 2.21) garbage collections that freed forgotten iterators
(reference cycles, such as those a Keras `fit` leaves) stalled a process for
20-80 s with almost no CPU; native stacks showed every one waiting in
`RootDataset::Iterator`'s destructor for its autotuning thread. Outside the
suite the wait is rare (12 s once, for an iterator idle for 70 s, against a
few milliseconds in seven other tries). Episodes are cheap to make, so the
pipelines run without that thread: `tf.data.AUTOTUNE` parallelism becomes a
fixed min(16, cores) and `prefetch(tf.data.AUTOTUNE)` keeps its own buffer
tuning (delivery rate: `python benchmarks/iterator_release.py`).
"""

from __future__ import annotations

import tensorflow as tf


def without_autotune_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning (and so its model thread) turned off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
