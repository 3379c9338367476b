"""One worker of a two-worker MultiWorkerMirroredStrategy run (TF_CONFIG from the environment).

`python multi_worker_train.py RUN_DIR RESULT_FILE`: meta-trains MAML on sinusoid tasks
for a few steps; the chief alone writes RUN_DIR (learner and metrics); every worker
writes its final weights to RESULT_FILE for the test to compare.
"""

import json
import pathlib
import sys

import keras
import numpy as np

import tfmeta
from tfmeta import distribute

run_dir, result_file = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
strategy = distribute.make_strategy("multi_worker")
with strategy.scope():
    keras.utils.set_random_seed(0)
    learner = tfmeta.MAML(tfmeta.models.mlp(), inner_learning_rate=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
episodes = tfmeta.data.SinusoidTasks().episodes(10, 10, meta_batch_size=8, seed=0)
history = learner.fit(episodes, steps_per_epoch=5, epochs=2, verbose=0)
if distribute.is_chief(strategy):
    run_dir.mkdir(parents=True, exist_ok=True)
    learner.save(run_dir / "learner.keras")
    (run_dir / "metrics.json").write_text(json.dumps(history.history))
np.savez(result_file, *[np.asarray(v) for v in learner.model.weights])
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "chief": distribute.is_chief(strategy)}))
