"""Where a protocol-P meta-step spends its time, per TensorFlow op type (tf.profiler trace).

Times a few meta-updates of one `benchmarks/throughput.py` learner under
`tf.profiler.experimental`, reads the host trace (XPlane) back and sums each op kernel's
self time (its span minus the op spans nested in it on the same thread) by op type over
all TensorFlow threads. The shares say which kernels to work on; thread time summed over
threads exceeds wall time when kernels run side by side.

    python benchmarks/profile_meta_step.py --learner=maml
    python benchmarks/profile_meta_step.py --learner=fomaml --steps=5 --top=25
    python benchmarks/profile_meta_step.py --learner=maml --cpu_threads=per_op  # TF's pools

TensorFlow's CPU threads as benchmarks/throughput.py sets them (`--cpu_threads`).

Prints a table, and as its last line one JSON object with the same figures.
"""

from __future__ import annotations

import collections
import glob
import json
import tempfile
import time

from absl import app, flags

import machine
import throughput

flags.DEFINE_string("learner", "maml", "A learner name of benchmarks/throughput.py.")
flags.DEFINE_integer("steps", 3, "Profiled meta-updates (after two unprofiled ones).")
flags.DEFINE_integer("top", 20, "Op types to list.")
FLAGS = flags.FLAGS


def op_self_seconds(xspace_path: str) -> dict[str, float]:
    """Self time in seconds per op type, summed over the host plane's TensorFlow threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as file:
        space.ParseFromString(file.read())
    host = next(plane for plane in space.planes if plane.name == "/host:CPU")
    totals: dict[str, float] = collections.defaultdict(float)
    for line in host.lines:
        if not line.name.startswith(("tf_Compute", "tf_numa", "tf_inter", "python")):
            continue
        names = [host.event_metadata[e.metadata_id].name for e in line.events]
        ops = [(e.offset_ps, e.offset_ps + e.duration_ps, name)  # "op name:OpType"
               for e, name in zip(line.events, names) if ":" in name and "::" not in name]
        ops.sort(key=lambda op: (op[0], -op[1]))
        stack: list[list] = []  # [end, op type, nested time, span] of the open ops
        for start, end, name in ops:
            while stack and stack[-1][0] <= start:
                _close(stack, totals)
            stack.append([end, name.rsplit(":", 1)[1], 0, end - start])
        while stack:
            _close(stack, totals)
    return dict(totals)


def _close(stack: list[list], totals: dict[str, float]) -> None:
    """Pops the innermost open op, books its self time and charges its span to its parent."""
    _, op_type, nested, span = stack.pop()
    totals[op_type] += (span - nested) / 1e12
    if stack:
        stack[-1][2] += span


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import tfmeta

    cpu_threads = tfmeta.cpu_threads.configure(FLAGS.cpu_threads, FLAGS.meta_batch_size)
    learner = throughput.make_learner(FLAGS.learner, 1, int(FLAGS.parallel_tasks[0]))
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = throughput.protocol_p_batch(FLAGS.meta_batch_size)
    for _ in range(2):
        learner.train_on_batch(batch)
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        learner.train_on_batch(batch)
    wall = (time.perf_counter() - start) / FLAGS.steps
    tf.profiler.experimental.stop()
    totals = op_self_seconds(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0])
    per_step = {op: seconds / FLAGS.steps for op, seconds in
                sorted(totals.items(), key=lambda item: -item[1])}
    busy = sum(per_step.values())
    print(f"{FLAGS.learner}, protocol P, meta-batch {FLAGS.meta_batch_size}, "
          f"{FLAGS.query_statistics} query statistics, on {machine.describe()}; CPU threads "
          f"{cpu_threads} ({tfmeta.cpu_threads.describe()})")
    print(f"wall {1000 * wall:.0f} ms per meta-step (profiled); op self time summed over "
          f"threads {1000 * busy:.0f} ms")
    print(f"{'op type':<36}{'ms/step':>10}{'share':>8}")
    for op, seconds in list(per_step.items())[:FLAGS.top]:
        print(f"{op:<36}{1000 * seconds:>10.1f}{100 * seconds / busy:>7.1f}%")
    print(json.dumps({"benchmark": "profile_meta_step", "learner": FLAGS.learner,
                      "processor": machine.processor(), "cpu_threads": cpu_threads,
                      "wall_seconds_per_step": wall,
                      "op_self_seconds_per_step": per_step}))


if __name__ == "__main__":
    app.run(main)
