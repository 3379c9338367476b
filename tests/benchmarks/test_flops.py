"""benchmarks/flops.py: the FLOP count of a protocol-P image and the nominal FP32 peak's width.

The share of peak that benchmarks/throughput.py prints is FLOP per second over cores x clock x
FLOP per cycle; both factors must be right for the machine kind at hand.
"""

import sys
import types
from pathlib import Path

import keras
import pytest

import tfmeta

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import flops  # noqa: E402


def test_conv4_forward_flop_counts_every_multiply_add_of_the_model():
    model = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    multiply_adds = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            multiply_adds += height * width * int(keras.ops.size(layer.kernel))
        elif isinstance(layer, keras.layers.Dense):
            multiply_adds += int(keras.ops.size(layer.kernel))
    assert flops.conv4_forward_flop((28, 28, 1), filters=64, ways=5) == 2 * multiply_adds


@pytest.mark.parametrize("extensions, vendor, family, expected", [
    (["avx2", "avx512f", "fma"], "GenuineIntel", 6, 64),  # two 512-bit FMA units
    (["avx2", "avx512f", "fma"], "AuthenticAMD", 25, 32),  # Zen 4: 512-bit split in halves
    (["avx2", "avx512f", "fma"], "AuthenticAMD", 26, 64),  # Zen 5: 512-bit datapath
    (["avx2", "fma"], "AuthenticAMD", 23, 32),  # Zen 2
    (["avx2"], "GenuineIntel", 6, 16),  # no FMA
    ([], "", None, 16),
])
def test_flop_per_cycle_follows_the_datapath_width(extensions, vendor, family, expected):
    assert flops.flop_per_cycle(extensions, vendor, family) == expected


def test_matmul_ceiling_is_the_best_repeat_at_two_flop_per_multiply_add(monkeypatch):
    clock = iter([0.0, 4.0, 10.0, 12.0, 20.0, 23.0])  # matmuls of 4, 2 and 3 seconds
    monkeypatch.setattr(flops, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    ceiling = flops.matmul_ceiling(size=64, repeats=3)
    assert ceiling["gflops"] == pytest.approx(2 * 64 ** 3 / 2.0 / 1e9)
    assert "64 x 64" in ceiling["what"]
