"""Arithmetic per protocol-P task, and the processor's nominal FP32 peak to set it against.

Tasks per second say how fast; the share of the processor's peak says how far from the
hardware's limit that is, on any machine kind. Both figures are estimates and are named so:

- FLOP per task counts the multiply-adds of the convolutions and the head (2 FLOP each);
  BatchNorm, ReLU, pooling and the loss are left out (a few per cent). A backward pass
  costs twice its forward pass. A second-order inner step differentiates the support
  set's backward pass again (twice its cost, so 4x forward) and back-propagates through
  the support forward pass once more (2x): 9 forward passes per support image, against
  3 per query image (forward, backward).
- The nominal FP32 peak is cores x clock x FLOP per cycle, with the clock the processor
  reports (`cpu MHz`, no turbo), cores as the operating system counts them, and FLOP per
  cycle for the widest vector extension present assuming two FMA units per core:
  AVX-512 2 x 16 lanes x 2 = 64, AVX2 with FMA 2 x 8 x 2 = 32, else SSE 2 x 4 x 2 = 16.
  AMD processors before Zen 5 (family 26) run AVX-512 on their 256-bit units (Zen 4
  splits each 512-bit instruction in two halves), so they count 32.
- The reported clock is the base clock; a processor that runs faster under load (turbo)
  exceeds its nominal peak. `matmul_ceiling` measures what this machine gives instead: a
  large float32 matmul in TensorFlow on every core, the best case of the same oneDNN
  kernels the convolutions use. A share of that ceiling is the sterner figure.
"""

from __future__ import annotations

import time
from typing import Iterable

import machine

MATMUL_SIZE = 2048


def conv4_forward_flop(image: tuple[int, int, int] = (28, 28, 1), filters: int = 64,
                       ways: int = 5) -> int:
    """FLOP of one image's forward pass through the stride-2 Conv-4 (no max-pool variant)."""
    height, width, channels = image
    total = 0
    for _ in range(4):
        height, width = -(-height // 2), -(-width // 2)  # stride 2, same padding
        total += 2 * height * width * filters * channels * 9
        channels = filters
    return total + 2 * filters * ways


def task_flop(support: int, queries: int, first_order: bool, **conv4_args) -> int:
    """FLOP of one meta-training task with one inner step (see the module docstring)."""
    forward = conv4_forward_flop(**conv4_args)
    support_passes = 3 if first_order else 9
    return forward * (support_passes * support + 3 * queries)


def nominal_fp32_peak() -> dict:
    """`{"gflops", "cores", "ghz", "flop_per_cycle", "formula"}` of this processor (nominal)."""
    info = machine.processor()
    per_cycle = flop_per_cycle(info["vector_extensions"], info["vendor"], info["family"])
    ghz, cores = info["clock_ghz"], info["cores"] or 1
    return {"gflops": cores * ghz * per_cycle, "cores": cores, "ghz": ghz,
            "flop_per_cycle": per_cycle,
            "formula": f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle (nominal)"}


def flop_per_cycle(vector_extensions: Iterable[str], vendor: str = "",
                   family: int | None = None) -> int:
    """FP32 FLOP per cycle and core: two FMA units as wide as the datapath (module docstring)."""
    extensions = set(vector_extensions)
    amd_256_bit = vendor == "AuthenticAMD" and family is not None and family < 26
    if "avx512f" in extensions and not amd_256_bit:
        return 64
    if {"avx2", "fma"} <= extensions:
        return 32
    return 16


def matmul_ceiling(size: int = MATMUL_SIZE, repeats: int = 10) -> dict:
    """`{"gflops", "what"}`: the best of `repeats` float32 `size` x `size` matmuls in
    TensorFlow with its default pools (every core). Run it in a process of its own, before
    anything sets TensorFlow's threads otherwise."""
    import tensorflow as tf

    a = tf.random.normal([size, size], seed=0)
    b = tf.random.normal([size, size], seed=1)
    matmul = tf.function(tf.linalg.matmul)
    for _ in range(3):  # trace, and warm the kernel's buffers
        matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2 * size ** 3 / best / 1e9,
            "what": f"best of {repeats} float32 {size} x {size} matmuls in TensorFlow, "
                    "its default pools"}
