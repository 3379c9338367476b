"""`graph_function`: `tf.function` without AutoGraph, for the exporters' signature functions.

The exporters' code and what it calls (the learners' adaptation, `layer_program`, Keras layers)
has no Python control flow on tensors: loops and branches are `tf.while_loop` and `tf.cond`.
AutoGraph's source conversion of every function reached while tracing then only costs time
(about half of a Conv-4 MAML TFLite export); a tensor used as a Python bool still fails loudly
while tracing. Keras 3 traces its own train, test and predict steps the same way (they are
`do_not_convert`), so a model that trains and evaluates also exports.
"""

import functools

import tensorflow as tf

graph_function = functools.partial(tf.function, autograph=False)
