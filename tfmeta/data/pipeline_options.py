"""`without_autotune_thread`: the tf.data options of the pipelines tfmeta trains on.

With autotuning on (tf.data's default), every iterator runs a model thread,
and destroying the iterator waits for that thread. In the test suite
(TensorFlow 2.21, 2-core AMD EPYC), garbage collections that freed forgotten
iterators (held in reference cycles) stalled a worker for 19-49 s with almost
no CPU, once or twice in each of four instrumented runs; the native stacks
taken during four such stalls all waited in `RootDataset::Iterator`'s
destructor for one of its threads. With autotuning off for every iterator, a
full run had no collection over 2.3 s. Outside a loaded process the wait is rare (12 s
once, deleting an iterator idle for 70 s; a few milliseconds in seven other
tries). Episodes are cheap to make, so the pipelines run without that thread:
`tf.data.AUTOTUNE` parallelism becomes a fixed min(16, cores) and
`prefetch(tf.data.AUTOTUNE)` keeps its own buffer tuning (delivery rate:
`python benchmarks/iterator_release.py`).
"""

from __future__ import annotations

import tensorflow as tf


def without_autotune_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning (and so its model thread) turned off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
