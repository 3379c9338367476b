"""`ProgressLine`: a line every few seconds with tasks/s and ETA, and one per epoch."""

import io

import pytest

from tfmeta.cli import progress


@pytest.mark.parametrize(
    "seconds, text", [(0.4, "0s"), (9, "9s"), (249, "4m09s"), (11100, "3h05m"), (-3, "0s")]
)
def test_duration(seconds, text):
    assert progress.duration(seconds) == text


def test_lines_name_the_step_metrics_rate_and_eta(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    line = progress.ProgressLine(
        total_steps=40, steps_per_epoch=10, items_per_step=4, every_seconds=2.0, stream=stream
    )
    line.on_train_begin()
    line.on_epoch_begin(2)  # a run resumed at epoch 3: step 20
    for batch in range(5):  # steps 21..25 at t = 0, 1, 2, 3, 4 (21: compiled)
        line.on_train_batch_end(batch, {"loss": 0.5, "accuracy": 0.75})
    line.on_epoch_end(2, {"loss": 0.5, "val_accuracy": 0.8})
    assert stream.getvalue().splitlines() == [
        # step 23 at t=2: 2 steps in 2 s since step 21 -> 4 tasks/s; 17 steps left at 1 step/s
        "tfmeta: 23/40 meta-updates (epoch 3/4): loss 0.5, accuracy 0.75; 4.0 tasks/s, ETA 17s",
        "tfmeta: 25/40 meta-updates (epoch 3/4): loss 0.5, accuracy 0.75; 4.0 tasks/s, ETA 15s",
        "tfmeta: epoch 3/4 done: loss 0.5, val_accuracy 0.8",
    ]
