"""Serving and on-device latency of each adaptation option, next to the accuracy it keeps.

Each meta-learned model (learners saved by `benchmarks/omniglot.py` or `tfmeta train`, or a
freshly initialised Conv-4 MAML when none is given) is adapted in several ways, each exported as
a SavedModel and as a TFLite model. For a gradient learner (MAML, ANIL, ...):

- `own loop`: the learner's own evaluation inner loop (MAML: every weight; ANIL: the head);
- `own loop, 1 step`: the same, one step;
- `head only, E steps` / `head only, 1 step`: only the final Dense layer adapts (ANIL's inner loop
  on the model; the body runs once per call);
- `prototypes on the body`: no inner loop, class means of the body's features (ProtoNet's head on
  the meta-learned body).

A ProtoNet is measured as it is (its prototypes are its adaptation), and so are R2-D2,
Matching and Relation Networks (`one pass`: their adaptation is one forward pass).

For each option: the latency of LiteRT's `adapt_and_predict` with one query per call (median and
p90, with 1 thread and with LiteRT's default threads), of `train_step` and of `infer`, and of the
SavedModel in TensorFlow through `adapt_and_predict` (floats) and `adapt_and_predict_images`
(Omniglot PNG bytes, decoded and preprocessed in the graph), next to the 5 ms goal; with
`--data`, the accuracy the option keeps on `--episodes` Omniglot test episodes (`--ways`-way
`--shots`-shot, 15 queries per class), run
through the LiteRT model itself; and how long each export took (the SavedModel with image
signatures, the one-query TFLite model with its LiteRT verification). `--query_statistics` exports
in another BatchNorm mode than the learner's own (a learner trained transductively needs one, since
the exporters refuse a mode in which one query's prediction depends on the others). Prints a
table, then, as its last line, one JSON object with the same figures.

    python benchmarks/export.py --learners=MAML_RUN/learner.keras,PROTONET_RUN/learner.keras \\
        --data=../shared/data/omniglot/omniglot.tar.gz --episodes=600
    python benchmarks/export.py --fresh=maml,protonet,r2d2,matching,relation  # latency only
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import latency
import machine
import tfmeta
from tfmeta import evaluation
from tfmeta.exporters import OnDeviceModel, export_saved_model, export_tflite, image_inputs

FLAGS = flags.FLAGS
flags.DEFINE_list("learners", [], "Saved learners (.keras); default: the --fresh ones.")
flags.DEFINE_list("fresh", ["maml"], "Without --learners: freshly initialised Conv-4 learners "
                  "(maml, protonet, r2d2, matching, relation), for latency.")
flags.DEFINE_string("data", None, "Omniglot .tar.gz or ImageFolder, for accuracy (optional).")
flags.DEFINE_integer("episodes", 600, "Test episodes for accuracy.")
flags.DEFINE_integer("ways", 5, "Classes per episode.")
flags.DEFINE_integer("shots", 1, "Support examples per class.")
flags.DEFINE_integer("repeats", 50, "Timed calls per measurement.")
flags.DEFINE_integer("warmup", 5, "Untimed calls before timing.")
flags.DEFINE_list("options", ["own", "own_1", "head", "head_1", "prototypes"],
                  "Adaptation options of gradient learners (see the module docstring).")
flags.DEFINE_float("goal_ms", 5.0, "The on-device latency goal.")
flags.DEFINE_enum("query_statistics", None, list(tfmeta.query_statistics.MODES),
                  "Export in this query-statistics mode (default: each learner's own; a "
                  "transductive learner needs one, e.g. `moving` or `support`).")

EVAL_QUERIES = 15
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fresh_learner(kind: str) -> tfmeta.MetaLearner:
    """A compiled learner of `kind` over a freshly initialised Omniglot Conv-4."""
    keras.utils.set_random_seed(0)
    if kind == "maml":
        learner = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), FLAGS.ways),
                              inner_learning_rate=0.4, eval_inner_steps=3)
        learner.compile(loss=LOSS)
        return learner
    embedding = tfmeta.models.conv4((28, 28, 1), num_classes=None)
    loss = LOSS
    if kind == "protonet":
        learner = tfmeta.ProtoNet(embedding, ways=FLAGS.ways)
    elif kind == "r2d2":
        learner = tfmeta.R2D2(embedding, ways=FLAGS.ways)
    elif kind == "matching":
        learner = tfmeta.MatchingNetworks(embedding, ways=FLAGS.ways)
    elif kind == "relation":
        maps = keras.Model(embedding.input, embedding.get_layer("block3_relu").output)
        learner = tfmeta.RelationNetwork(
            maps, tfmeta.models.relation_module(maps.outputs[0].shape[1:]), ways=FLAGS.ways)
        loss = tfmeta.losses.OneHotMeanSquaredError()
    else:
        raise ValueError(f"Unknown --fresh learner {kind!r}. Expected maml, protonet, r2d2, "
                         "matching or relation")
    learner.compile(loss=loss)
    return learner


def load_learners() -> list[tfmeta.MetaLearner]:
    if FLAGS.learners:
        return [keras.saving.load_model(path) for path in FLAGS.learners]
    return [fresh_learner(kind) for kind in FLAGS.fresh]


def options(learner: tfmeta.MetaLearner) -> dict[str, tfmeta.MetaLearner]:
    """The adaptation options over a learner's meta-learned weights (shared, not copied)."""
    algorithm = type(learner).__name__
    if isinstance(learner, tfmeta.ProtoNet):
        return {f"{algorithm}: prototypes": learner}
    if isinstance(learner, tfmeta.learners.SupportSetClassifier):
        return {f"{algorithm}: one pass": learner}
    steps, rate = learner.eval_inner_steps, learner.eval_inner_learning_rate
    model, mode = learner.model, learner.query_statistics
    head = model.layers[-1].name
    body = keras.Model(model.inputs, model.layers[-2].output, name="body")
    own = dict(learner.get_config(), eval_inner_steps=1, model=model)
    built = {
        "own": (f"own loop, {steps} steps", lambda: learner),
        "own_1": ("own loop, 1 step", lambda: _with_rates_of(learner, type(learner)(**own))),
        "head": (f"head only, {steps} steps",
                 lambda: tfmeta.ANIL(model, head_layers=[head], inner_learning_rate=rate,
                                     eval_inner_steps=steps, query_statistics=mode)),
        "head_1": ("head only, 1 step",
                   lambda: tfmeta.ANIL(model, head_layers=[head], inner_learning_rate=rate,
                                       eval_inner_steps=1, query_statistics=mode)),
        "prototypes": ("prototypes on the body",
                       lambda: tfmeta.ProtoNet(body, ways=FLAGS.ways, query_statistics=mode)),
    }
    chosen = {}
    for key in FLAGS.options:
        if key not in built:
            raise ValueError(f"Unknown option {key!r}. Expected some of {sorted(built)}")
        name, build = built[key]
        if key == "head" and getattr(learner, "adapted_indices", None) is not None:
            continue  # the learner's own loop adapts the head already
        option = build()
        if not option.compiled:
            option.compile(loss=LOSS)
        chosen[f"{algorithm}: {name}"] = option
    return chosen


def _with_rates_of(learner, copy):
    """`copy` with `learner`'s learned inner learning rates (MAML++ LSLR, Meta-SGD), if any."""
    for source, target in zip(getattr(learner, "inner_learning_rate_variables", []),
                              getattr(copy, "inner_learning_rate_variables", [])):
        target.assign(source)
    return copy


def timed_ms(call) -> dict[str, float]:
    return latency.timed_ms(call, FLAGS.repeats, FLAGS.warmup)


def test_episodes(sources) -> list[dict[str, np.ndarray]]:
    dataset = sources["test"].episodes(FLAGS.ways, FLAGS.shots, EVAL_QUERIES, meta_batch_size=1,
                                       num_episodes=FLAGS.episodes, seed=1)
    return [{key: value[0].numpy() for key, value in batch.items()} for batch in dataset]


def png_bytes(images: np.ndarray) -> np.ndarray:
    """Omniglot PNGs (paper white, strokes black) that preprocess back to `images`."""
    return image_inputs.encode_png(np.round((1.0 - images) * 255).astype(np.uint8))


def measure(name: str, option: tfmeta.MetaLearner, episodes, directory: str) -> dict:
    example = episodes[0] if episodes else None
    input_shape = tuple(option.model.inputs[0].shape[1:])
    support = FLAGS.ways * FLAGS.shots
    rng = np.random.default_rng(0)
    episode = example or {
        "support_x": rng.uniform(0, 1, (support, *input_shape)).astype(np.float32),
        "support_y": np.tile(np.arange(FLAGS.ways, dtype=np.int32), FLAGS.shots),
        "query_x": rng.uniform(0, 1, (EVAL_QUERIES * FLAGS.ways, *input_shape)).astype(np.float32),
    }
    single = dict(episode, query_x=episode["query_x"][:1])
    slug = "".join(c if c.isalnum() else "_" for c in name)
    row = {"option": name}

    preprocessing = tfmeta.data.omniglot_preprocessing(input_shape[0])
    start = time.perf_counter()
    version = export_saved_model(option, os.path.join(directory, slug), ways=FLAGS.ways,
                                 shots=FLAGS.shots, warmup=False, preprocessing=preprocessing,
                                 query_statistics=FLAGS.query_statistics)
    row["saved_model_export_s"] = time.perf_counter() - start
    signatures = tf.saved_model.load(version).signatures
    adapt = signatures["adapt_and_predict"]
    tensors = {key: tf.constant(single[key]) for key in ("support_x", "support_y", "query_x")}
    row["saved_model_adapt_and_predict_ms"] = timed_ms(lambda: adapt(**tensors)["outputs"].numpy())
    # What a TF Serving client sends: PNG bytes, decoded and preprocessed in the graph.
    adapt_images = signatures["adapt_and_predict_images"]
    request = {"support_images": tf.constant(png_bytes(single["support_x"])),
               "support_y": tensors["support_y"],
               "query_images": tf.constant(png_bytes(single["query_x"]))}
    row["saved_model_adapt_and_predict_images_ms"] = timed_ms(
        lambda: adapt_images(**request)["outputs"].numpy())

    models = {}
    for query_size in (1, len(episode["query_x"])):
        path = os.path.join(directory, f"{slug}_{query_size}.tflite")
        verification = dict(episode, query_x=episode["query_x"][:query_size])
        start = time.perf_counter()
        export_tflite(option, path, ways=FLAGS.ways, shots=FLAGS.shots, query_size=query_size,
                      verification_episode=verification, query_statistics=FLAGS.query_statistics)
        row.setdefault("tflite_export_s", time.perf_counter() - start)  # the one-query model
        models[query_size] = path
    row["tflite_bytes"] = os.path.getsize(models[1])
    for threads, label in ((1, "1_thread"), (None, "default_threads")):
        model = OnDeviceModel(models[1], num_threads=threads)
        row[f"litert_adapt_and_predict_ms_{label}"] = timed_ms(
            lambda: model.adapt_and_predict(single["support_x"], single["support_y"],
                                            single["query_x"]))
    model = OnDeviceModel(models[1], num_threads=1)
    row["litert_train_step_ms_1_thread"] = timed_ms(
        lambda: model.train_step(single["support_x"], single["support_y"]))
    row["litert_infer_ms_1_thread"] = timed_ms(lambda: model.infer(single["query_x"]))
    if episodes:
        batched = OnDeviceModel(models[len(episode["query_x"])], num_threads=1)
        accuracies = [evaluation.accuracy(task["query_y"], batched.adapt_and_predict(
            task["support_x"], task["support_y"], task["query_x"])) for task in episodes]
        row["accuracy"] = evaluation.mean_and_ci95(accuracies)
    return row


def main(argv):
    del argv
    learners = load_learners()
    episodes = []
    if FLAGS.data:
        episodes = test_episodes(tfmeta.data.omniglot(FLAGS.data, protocol="vinyals"))
    with tempfile.TemporaryDirectory() as directory:
        rows = [dict(measure(name, option, episodes, directory),
                     query_statistics=FLAGS.query_statistics or option.query_statistics)
                for learner in learners for name, option in options(learner).items()]
    print(f"{FLAGS.ways}-way {FLAGS.shots}-shot, one query per call; median (p90) ms "
          f"over {FLAGS.repeats} calls; goal {FLAGS.goal_ms} ms; {machine.describe()}")
    header = ["option", "LiteRT adapt+predict 1 thread", "LiteRT default threads",
              "train_step", "infer", "SavedModel floats", "SavedModel PNG bytes",
              "accuracy % (95% CI)", "export s: SavedModel, TFLite"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    def cell(timing):
        return f"{timing['median']:.2f} ({timing['p90']:.2f})"

    for row in rows:
        accuracy = row.get("accuracy")
        accuracy = "-" if accuracy is None else \
            f"{100 * accuracy['mean']:.2f} +/- {100 * accuracy['ci95']:.2f}"
        print(f"| {row['option']} | {cell(row['litert_adapt_and_predict_ms_1_thread'])} | "
              f"{cell(row['litert_adapt_and_predict_ms_default_threads'])} | "
              f"{cell(row['litert_train_step_ms_1_thread'])} | "
              f"{cell(row['litert_infer_ms_1_thread'])} | "
              f"{cell(row['saved_model_adapt_and_predict_ms'])} | "
              f"{cell(row['saved_model_adapt_and_predict_images_ms'])} | {accuracy} | "
              f"{row['saved_model_export_s']:.1f}, {row['tflite_export_s']:.1f} |")
    print(json.dumps({
        "benchmark": "export",
        "processor": machine.processor(),
        "setup": {"learners": FLAGS.learners, "ways": FLAGS.ways, "shots": FLAGS.shots,
                  "repeats": FLAGS.repeats,
                  "episodes": len(episodes), "goal_ms": FLAGS.goal_ms},
        "results": rows,
    }))


if __name__ == "__main__":
    app.run(main)
