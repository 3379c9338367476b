"""tfmeta: meta-learning for Keras 3 and TensorFlow.

Learners (`MAML`, `MetaSGD`, `ANIL`, `Reptile`, `ProtoNet`, `ProtoMAML`, `FineTune`, and
the one-pass `R2D2`, `MatchingNetworks`, `RelationNetwork`,
`ConditionalNeuralProcess`) are `keras.Model`s: `compile`, `fit` on meta-batches of episodes from
`tfmeta.data`, `evaluate` after adaptation (`tfmeta.evaluation` for the
few-shot convention: accuracy over 600 episodes with a 95% CI), and export
with `tfmeta.exporters`.
"""

from tfmeta.cli import tensorflow_logs as _tensorflow_logs
from tfmeta.version import __version__

_tensorflow_logs.silence_for_command()  # the `tfmeta` command only, before TensorFlow loads

# `import tfmeta` registers the learners with `keras.saving`, so `load_model` finds them; only
# `tfmeta --help` skips them (and TensorFlow): it is answered from the flag definitions alone.
if not _tensorflow_logs.help_only():
    from tfmeta import cpu_threads, data, distribute, evaluation, layers, losses, models
    from tfmeta.learners import (ANIL, MAML, R2D2, ConditionalNeuralProcess, FineTune,
                                 MatchingNetworks, MetaLearner, MetaSGD, ProtoMAML,
                                 ProtoNet, RelationNetwork, Reptile)
