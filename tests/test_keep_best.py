"""`KeepBest`: what a run keeps is saved on each improvement of its monitored value, only then."""

import math

import pytest

from tfmeta.keep_best import KeepBest


def test_keep_best_saves_only_on_improvement():
    saved = []
    keep = KeepBest("val_accuracy", "max", save=lambda epoch, value: saved.append((epoch, value)))
    for epoch, value in enumerate([0.5, 0.7, 0.6, math.nan, math.inf, 0.7, 0.9]):
        keep.on_epoch_end(epoch, {"val_accuracy": value, "loss": 1.0})
    keep.on_epoch_end(7, {"loss": 1.0})  # an epoch without the value is skipped
    assert saved == [(0, 0.5), (1, 0.7), (6, 0.9)] and (keep.best, keep.best_epoch) == (0.9, 6)
    lower = KeepBest("val_loss", "min", save=lambda epoch, value: None, best=0.3, best_epoch=2)
    lower.on_epoch_end(3, {"val_loss": 0.4})
    assert (lower.best, lower.best_epoch) == (0.3, 2)
    with pytest.raises(ValueError, match=r"`mode` to be one of \['max', 'min'\]\. Received: mode="):
        KeepBest("val_loss", "up", save=lambda epoch, value: None)


def test_keep_best_refuses_an_epoch_without_a_required_value():
    keep = KeepBest("return_after", "max", save=lambda epoch, value: None, required=True)
    with pytest.raises(ValueError, match=r"logs to hold 'return_after'.*Received: \['loss'\]"):
        keep.on_epoch_end(0, {"loss": 1.0})
