"""The PyTorch reference for protocol P: learn2learn's MAML loop, timed in the same run as tfmeta.

A ratio against a peer means something only when both ran on the same machine in the same
run (processor kinds rank the frameworks differently), so `benchmarks/throughput.py` runs
this script in its own process right after tfmeta's configurations. It is written here,
not imported from learn2learn, and does what learn2learn 0.2.1's MAML does for its
Omniglot example, step for step:

- the network is learn2learn's `OmniglotCNN`: 4 x [conv 3x3, 64 filters, stride 2,
  padding 1 -> BatchNorm (batch statistics, running statistics updated) -> ReLU], mean
  over the spatial axes, a linear head; its initialisation (Xavier-uniform convolutions,
  uniform BatchNorm scales, normal head). Its `ConvBase` has no max-pooling for Omniglot;
- per task, the weights are cloned (`MAML.clone`), one inner step on the support loss
  with `torch.autograd.grad(create_graph=True)` (second order; plain `autograd.grad`
  first order) gives the adapted weights `w - lr * g`, the query loss of the adapted
  weights is back-propagated at once (`loss.backward()` per task, so one task's graph is
  alive at a time), then the summed gradients are divided by the meta-batch and Adam steps.

Protocol P: 28x28x1 random episodes held in memory, 5-way 1-shot, 15 queries per class,
meta-batch 32, 1 inner step at 0.4, Adam; tasks per second at the median step time after
warm-up, torch using as many threads as the machine has cores (as TensorFlow does). On a
machine other processes share, those OpenMP threads wait at every barrier for a core and
the figure falls by an order of magnitude: measure it idle.

    python benchmarks/reference_maml_torch.py                  # second order
    python benchmarks/reference_maml_torch.py --first_order --repeats=20

Needs PyTorch (`pip install .[bench]`). Prints a summary, and as its last line one JSON
object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

import machine

WAYS, SHOTS, QUERIES, IMAGE = 5, 1, 15, (1, 28, 28)
FILTERS, BLOCKS = 64, 4
INNER_LEARNING_RATE, META_LEARNING_RATE = 0.4, 1e-3
BATCH_NORM_EPSILON, BATCH_NORM_MOMENTUM = 1e-5, 0.1  # torch.nn.BatchNorm2d's defaults, as l2l


def init_weights(ways: int = WAYS, filters: int = FILTERS, channels: int = IMAGE[0],
                 dtype: torch.dtype = torch.float32, seed: int = 0) -> list[torch.Tensor]:
    """learn2learn OmniglotCNN's trainable weights, initialised as it does.

    Order, per block: conv kernel `[out, in, 3, 3]`, conv bias, BatchNorm scale, BatchNorm
    offset; then head kernel `[ways, filters]` and head bias.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = []
    for block in range(BLOCKS):
        kernel = torch.empty(filters, channels if block == 0 else filters, 3, 3, dtype=dtype)
        fan_in, fan_out = kernel.shape[1] * 9, kernel.shape[0] * 9
        bound = (6.0 / (fan_in + fan_out)) ** 0.5  # Xavier-uniform, gain 1
        kernel.uniform_(-bound, bound, generator=generator)
        scale = torch.empty(filters, dtype=dtype).uniform_(0.0, 1.0, generator=generator)
        weights += [kernel, torch.zeros(filters, dtype=dtype), scale,
                    torch.zeros(filters, dtype=dtype)]
    head = torch.empty(ways, filters, dtype=dtype).normal_(generator=generator)
    weights += [head, torch.zeros(ways, dtype=dtype)]
    return [w.requires_grad_() for w in weights]


def init_running_statistics(filters: int = FILTERS,
                            dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """BatchNorm running means and variances, one pair per block (updated, never read)."""
    return [torch.zeros(filters, dtype=dtype) if i % 2 == 0 else torch.ones(filters, dtype=dtype)
            for i in range(2 * BLOCKS)]


def _padding(size: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of a 3x3 stride-2 convolution along one axis.

    "symmetric" is learn2learn's `padding=1`; "same" is TensorFlow's, which pads after
    only when the total is odd. Tests use "same" to compare with tfmeta weight for weight.
    """
    if padding == "symmetric":
        return 1, 1
    total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
    return total // 2, total - total // 2


def forward(weights: Sequence[torch.Tensor], images: torch.Tensor,
            running: Sequence[torch.Tensor] | None = None, padding: str = "symmetric",
            epsilon: float = BATCH_NORM_EPSILON) -> torch.Tensor:
    """Logits of OmniglotCNN on `images` `[batch, channels, height, width]`, BatchNorm in
    training mode (the batch's statistics, as learn2learn's MAML examples use it)."""
    x = images
    for block in range(BLOCKS):
        kernel, bias, scale, offset = weights[4 * block: 4 * block + 4]
        top, bottom = _padding(x.shape[2], padding)
        left, right = _padding(x.shape[3], padding)
        if (top, left) == (bottom, right):
            x = F.conv2d(x, kernel, bias, stride=2, padding=(top, left))
        else:
            x = F.conv2d(F.pad(x, (left, right, top, bottom)), kernel, bias, stride=2)
        mean, variance = (None, None) if running is None else running[2 * block: 2 * block + 2]
        x = F.batch_norm(x, mean, variance, scale, offset, training=True,
                         momentum=BATCH_NORM_MOMENTUM, eps=epsilon)
        x = F.relu(x)
    return F.linear(x.mean(dim=(2, 3)), weights[-2], weights[-1])


def task_query_loss(weights: Sequence[torch.Tensor], task: dict[str, torch.Tensor],
                    inner_learning_rate: float = INNER_LEARNING_RATE, first_order: bool = False,
                    **forward_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """One task: clone, one inner step on the support loss, query loss of the adapted weights.

    Returns `(query_loss, query_accuracy)`; `query_loss` is differentiable w.r.t. `weights`
    through the inner step (second order) or only through the clone (first order).
    """
    fast = [w.clone() for w in weights]
    support_loss = F.cross_entropy(forward(fast, task["support_x"], **forward_kwargs),
                                   task["support_y"])
    grads = torch.autograd.grad(support_loss, fast, create_graph=not first_order)
    fast = [w - inner_learning_rate * g for w, g in zip(fast, grads)]
    logits = forward(fast, task["query_x"], **forward_kwargs)
    accuracy = (logits.argmax(dim=1) == task["query_y"]).float().mean()
    return F.cross_entropy(logits, task["query_y"]), accuracy


def meta_step(weights: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer,
              tasks: Sequence[dict[str, torch.Tensor]], first_order: bool = False,
              **forward_kwargs) -> float:
    """One meta-update: per-task backward, gradients divided by the meta-batch, optimizer step.

    Returns the mean query loss.
    """
    optimizer.zero_grad()
    total = 0.0
    for task in tasks:
        loss, _ = task_query_loss(weights, task, first_order=first_order, **forward_kwargs)
        loss.backward()
        total += loss.item()
    for w in weights:
        w.grad.mul_(1.0 / len(tasks))
    optimizer.step()
    return total / len(tasks)


def tasks_from_meta_batch(batch: dict[str, np.ndarray]) -> list[dict[str, torch.Tensor]]:
    """Per-task torch episodes from a tfmeta meta-batch (`[tasks, examples, H, W, C]` images).

    Images become `[examples, C, H, W]` (a copy, same dtype) and labels int64, as `F.conv2d` and
    `F.cross_entropy` take them; the values are the same, so both frameworks see one episode.
    """
    tasks = []
    for index in range(len(batch["support_y"])):
        tasks.append({
            key: torch.from_numpy(
                np.array(batch[key][index].transpose(0, 3, 1, 2))
                if key.endswith("_x") else batch[key][index].astype(np.int64))
            for key in ("support_x", "support_y", "query_x", "query_y")
        })
    return tasks


def accuracy(weights: Sequence[torch.Tensor], tasks: Sequence[dict[str, torch.Tensor]],
             **forward_kwargs) -> list[float]:
    """Query accuracy of each task after its inner step: how the reference is evaluated.

    The adaptation needs a gradient, but nothing is kept for a meta-update.
    """
    return [task_query_loss(weights, task, first_order=True, **forward_kwargs)[1].item()
            for task in tasks]


def protocol_p_tasks(meta_batch_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """A meta-batch of random Omniglot-shaped episodes (the learner's time alone)."""
    rng = np.random.default_rng(seed)
    labels = torch.arange(WAYS)
    return [{
        "support_x": torch.from_numpy(rng.random((WAYS * SHOTS, *IMAGE), np.float32)),
        "support_y": labels.repeat_interleave(SHOTS),
        "query_x": torch.from_numpy(rng.random((WAYS * QUERIES, *IMAGE), np.float32)),
        "query_y": labels.repeat_interleave(QUERIES),
    } for _ in range(meta_batch_size)]


def measure(first_order: bool, meta_batch_size: int, warmup: int, repeats: int) -> dict:
    """Times `repeats` meta-updates after `warmup` ones; tasks/s at the median and mean step."""
    torch.manual_seed(0)
    weights, running = init_weights(), init_running_statistics()
    optimizer = torch.optim.Adam(weights, lr=META_LEARNING_RATE)
    tasks = protocol_p_tasks(meta_batch_size)

    def step():
        meta_step(weights, optimizer, tasks, first_order=first_order, running=running)

    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return {
        "train_tasks_per_second": meta_batch_size / statistics.median(seconds),
        "train_tasks_per_second_mean_step": meta_batch_size / statistics.mean(seconds),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first_order", action="store_true", help="FOMAML instead of MAML.")
    parser.add_argument("--meta_batch_size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="Meta-updates before timing.")
    parser.add_argument("--repeats", type=int, default=10, help="Timed meta-updates.")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    result = measure(args.first_order, args.meta_batch_size, args.warmup, args.repeats)
    result.update(learner="fomaml" if args.first_order else "maml", torch=torch.__version__,
                  threads=torch.get_num_threads(), meta_batch_size=args.meta_batch_size,
                  repeats=args.repeats, processor=machine.processor())
    print(f"PyTorch {torch.__version__} reference ({result['learner']}, protocol P, "
          f"{result['threads']} threads) on {machine.describe()}: "
          f"{result['train_tasks_per_second']:.1f} tasks/s at the median of {args.repeats} steps, "
          f"peak RSS {result['peak_rss_mib']:.0f} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
