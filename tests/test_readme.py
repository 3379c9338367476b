"""Every code block of the README runs, as a reader would run it (doctest-style, shrunk).

Python blocks run in document order, one namespace per group of sections, in an empty
folder. Where a block trains, `SHRINK` replaces the README's sizes by small ones: each
replacement must match the README exactly the given number of times, so a README edit
that changes a snippet fails here until the shrink follows it. Where a block uses
names the README defines elsewhere in prose (the LiteRT snippet's `maml`, `support_x`),
`SETUP` defines them. Blocks that decode Omniglot, convert to LiteRT or train policies
are `slow`. The `tfmeta` command lines run in `tests/cli/test_readme_commands.py`.
TF Serving's `curl` requests need a server, which cannot be installed here
(`examples/serving_round_trip.py` and the exporter tests send the same requests to the
loaded SavedModel).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

import tfmeta.data.tfds_images

README = Path(__file__).resolve().parents[1] / "README.md"
OMNIGLOT = "path/to/omniglot.tar.gz"
BENCHMARK_LAYOUTS = Path(__file__).resolve().parent / "data" / "benchmark_layouts.py"


@dataclasses.dataclass
class Block:
    section: str  # the nearest heading above the block
    index: int  # its position among the section's blocks of the same language
    language: str
    code: str


def readme_blocks() -> list[Block]:
    blocks, section, counts = [], "", {}
    lines = README.read_text().splitlines()
    line_number = 0
    while line_number < len(lines):
        line = lines[line_number]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("```"):
            language = line[3:].strip()
            end = lines.index("```", line_number + 1)
            index = counts.get((section, language), 0)
            counts[(section, language)] = index + 1
            blocks.append(Block(section, index, language, "\n".join(lines[line_number + 1 : end])))
            line_number = end
        line_number += 1
    return blocks


# (section, index) -> [(README text, replacement, occurrences)]
SHRINK = {
    ("Using it from Python", 0): [
        ("steps_per_epoch=1000, epochs=10", "steps_per_epoch=2, epochs=1", 1),
        ("num_episodes=600", "num_episodes=50", 2),
    ],
    ("Using it from Python", 1): [
        (OMNIGLOT, "{omniglot}", 1),
        ("meta_batch_size=32", "meta_batch_size=2", 1),
        ("num_episodes=600", "num_episodes=25", 1),
        ("steps_per_epoch=500, epochs=10", "steps_per_epoch=2, epochs=1", 1),
    ],
    ("Conditional Neural Processes", 0): [
        ("steps_per_epoch=1000, epochs=200", "steps_per_epoch=2, epochs=1", 1),
        ("num_episodes=600", "num_episodes=25", 1),
    ],
    ("Your own data", 1): [
        ("steps_per_epoch=1000", "steps_per_epoch=2", 1),
        ("num_episodes=600", "num_episodes=50", 1),
    ],
    ("Writing your own learner", 0): [
        ("meta_batch_size=4", "meta_batch_size=2", 1),
        ("steps_per_epoch=100", "steps_per_epoch=2", 1),
    ],
    ("Distributed training", 0): [
        (OMNIGLOT, "{omniglot}", 1),
        ("meta_batch_size=32", "meta_batch_size=2", 1),
        ("steps_per_epoch=500, epochs=10", "steps_per_epoch=2, epochs=1", 1),
    ],
    ("Standard benchmarks from files you hold", 0): [
        ("path/to/mini-imagenet", "mini", 1),
        ("path/to/CUB_200_2011", "cub/CUB_200_2011", 1),
        # With ResNet-12 this block took 52 s on the loaded 2-core test machine, with Conv-4 7 s.
        ("tfmeta.models.resnet12((84, 84, 3))",
         "tfmeta.models.conv4((84, 84, 3), num_classes=None, filters=4, max_pool=True)", 1),
        ("steps_per_epoch=1000, epochs=10", "steps_per_epoch=1, epochs=1", 1),
        ("shots=5, queries=15", "shots=1, queries=1", 1),
        ("num_episodes=600", "num_episodes=5", 1),
    ],
    ("Meta-reinforcement learning", 0): [
        ("steps_per_epoch=10, epochs=10", "steps_per_epoch=1, epochs=1", 1),
        ("rollouts_per_task=20", "rollouts_per_task=2", 1),
        ("task_batches(meta_batch_size=20", "task_batches(meta_batch_size=2", 1),
        ("task_batches(40, seed=1", "task_batches(2, seed=1", 1),
        ("sample_tasks(40,", "sample_tasks(2,", 1),
        ("iterations=100, meta_batch_size=20", "iterations=1, meta_batch_size=2", 1),
    ],
}
# What a block uses that the README defines in prose: a trained 5-way Omniglot MAML and a task.
SETUP = {
    ("Distributed training", 0): "import keras, tfmeta\n",
    # Tiny copies of the benchmark folders (real names, 8x8 images;
    # tests/data/benchmark_layouts.py).
    ("Standard benchmarks from files you hold", 0): f"""
import importlib.util
from pathlib import Path
_spec = importlib.util.spec_from_file_location("benchmark_layouts", {str(BENCHMARK_LAYOUTS)!r})
_layouts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_layouts)
Path("mini").mkdir()
_layouts.write_mini_imagenet_csv_layout(Path("mini"))
_layouts.write_cub(Path("cub"), per_class=2)
""",
    ("On the device with LiteRT", 0): """
import keras, numpy as np, tfmeta, tfmeta.exporters
maml = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), 5, filters=8), inner_learning_rate=0.4,
                   eval_inner_steps=2)
maml.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
support_x, support_y = rng.random([5, 28, 28, 1]).astype("float32"), np.arange(5, dtype="int32")
query_x = rng.random([1, 28, 28, 1]).astype("float32")
""",
    # A small 2D-navigation learner, a controller's rollouts and its current observation.
    ("On-device adaptation with LiteRT", 0): """
import numpy as np
from tfmeta import rl
from tfmeta.exporters.policy_tflite import example_rollouts
learner = rl.PolicyMAML(rl.gaussian_mlp_policy(2, 2, hidden_units=(8,)), rl.Navigation2D(),
                        eval_rollouts_per_task=4)
rollouts = example_rollouts(learner, 4)
observation = np.zeros((1, 2), np.float32)
""",
}
# Sections that run in one namespace, in this order; every other section runs alone.
GROUPS = [("Your own data", "Writing your own learner")]
SLOW = {"Using it from Python/1", "Distributed training", "On the device with LiteRT",
        "Meta-reinforcement learning", "On-device adaptation with LiteRT"}


def _shrunk(block: Block, omniglot: str | None) -> str:
    code = block.code
    for old, new, count in SHRINK.get((block.section, block.index), []):
        assert code.count(old) == count, f"README {block.section!r} #{block.index}: {old!r}"
        code = code.replace(old, new.format(omniglot=omniglot))
    return SETUP.get((block.section, block.index), "") + code


def _python_cases() -> list:
    blocks = [block for block in readme_blocks() if block.language == "python"]
    cases, grouped = [], {section for group in GROUPS for section in group}
    for group in GROUPS:
        cases.append(("+".join(group), [b for s in group for b in blocks if b.section == s]))
    for block in blocks:
        if block.section not in grouped:
            name = block.section if block.index == 0 else f"{block.section}/{block.index}"
            if any(other.section == block.section for other in blocks if other is not block):
                # later blocks of a section continue the earlier ones' namespace
                earlier = [
                    b for b in blocks if b.section == block.section and b.index <= block.index
                ]
                cases.append((name, earlier))
            else:
                cases.append((name, [block]))
    return [
        pytest.param(members, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
        for name, members in cases
    ]


def test_every_python_block_is_run():
    run = {(block.section, block.index) for case in _python_cases() for block in case.values[0]}
    blocks = [(b.section, b.index) for b in readme_blocks() if b.language == "python"]
    assert [block for block in blocks if block not in run] == []


@pytest.fixture
def reader_folder(tmp_path, monkeypatch):
    """An empty folder to run in, TFDS mocked (TFDS names read generated examples) and its
    download hosts counted as reachable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFMETA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tfmeta.data.tfds_images, "unreachable_hosts", lambda urls: {})
    with tfds.testing.mock_data(num_examples=40):
        yield tmp_path


@pytest.mark.parametrize("blocks", _python_cases())
def test_python_blocks_run(blocks, reader_folder, request):
    needs_omniglot = any(OMNIGLOT in block.code for block in blocks)
    omniglot = str(request.getfixturevalue("omniglot_tarball")) if needs_omniglot else None
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(_shrunk(block, omniglot), f"README:{block.section}", "exec"), namespace)
