"""`tfmeta train` killed at random moments, its newest checkpoint sometimes damaged, then resumed.

Every trial must end exactly as the uninterrupted run: the same `history.csv`
bytes, the same held-out evaluation, the same learner weights, and no
temporary file left behind. Seeded and bounded in time; slow.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tfmeta import checkpointing

# 12 epochs of 5 meta-updates: a checkpoint every 5, kills land in all phases of a run.
RUN = ["--iterations=60", "--steps_per_epoch=5", "--eval_episodes=20", "--meta_batch_size=4"]
SEED = 13
BUDGET_S = 360
MAX_TRIALS = 25
MIN_TRIALS = 6


def _train(output_dir: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tfmeta.cli.main", "train", *RUN, f"--output_dir={output_dir}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _garble_state(checkpoints: Path, newest: int) -> None:
    (checkpoints / "checkpoint").write_bytes(b"\x00garbled{{")


def _truncate_data(checkpoints: Path, newest: int) -> None:
    data = checkpoints / f"ckpt-{newest}.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def _garbage_index(checkpoints: Path, newest: int) -> None:
    (checkpoints / f"ckpt-{newest}.index").write_bytes(b"\x01" * 64)


DAMAGE = [None, _garble_state, _truncate_data, _garbage_index]


def _weights(run: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in keras.saving.load_model(run / "learner.keras").get_weights()]


def _leftovers(run: Path) -> list[str]:
    return [
        str(p.relative_to(run))
        for p in run.rglob("*")
        if ".tmp" in p.name or p.name.endswith("_temp") or "tempstate" in p.name
    ]


@pytest.mark.slow
def test_random_kills_and_damaged_checkpoints_resume_to_the_uninterrupted_result(
    tmp_path, command_env
):
    started = time.monotonic()
    reference = tmp_path / "reference"
    process = _train(reference, command_env)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    run_seconds = time.monotonic() - started
    expected_history = (reference / "history.csv").read_bytes()
    expected_eval = json.loads((reference / "metrics.json").read_text())["eval"]
    expected_weights = _weights(reference)

    rng = random.Random(SEED)
    trials = []
    while len(trials) < MAX_TRIALS and time.monotonic() - started < BUDGET_S:
        run = tmp_path / f"trial{len(trials)}"
        kills = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            # Importing TensorFlow takes the first ~40% of a run: kill mostly after it.
            delay = rng.uniform(0.25, 1.0) * run_seconds
            process = _train(run, command_env)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills.append(round(delay, 2))
            else:
                assert process.returncode == 0, process.stderr.read()[-3000:]
            process.stdout.close()
            process.stderr.close()
        damage = rng.choice(DAMAGE)
        newest = checkpointing.checkpoint_steps(run / "checkpoints")
        if damage is not None and newest:
            damage(run / "checkpoints", newest[0])
        process = _train(run, command_env)
        out, err = process.communicate(timeout=600)
        trial = (kills, damage.__name__ if damage and newest else None, newest[:1])
        trials.append(trial)
        assert process.returncode == 0, (trial, err[-3000:])
        assert err == "", (trial, err[-3000:])
        if damage is not None and newest:
            assert "skipped" in out, (trial, out[-2000:])
        assert (run / "history.csv").read_bytes() == expected_history, trial
        assert json.loads((run / "metrics.json").read_text())["eval"] == expected_eval, trial
        for a, b in zip(expected_weights, _weights(run), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=str(trial))
        assert _leftovers(run) == [], (trial, _leftovers(run))
    assert len(trials) >= MIN_TRIALS, trials
    print(f"{len(trials)} trials in {time.monotonic() - started:.0f} s: {trials}")
