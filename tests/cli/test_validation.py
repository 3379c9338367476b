"""Validation callbacks of `tfmeta train`: the best epoch kept, and found again on resume."""

import math

import pytest

from tfmeta.cli import validation


def test_keep_best_saves_only_on_improvement():
    saved = []
    keep = validation.KeepBest("val_accuracy", "max", save=lambda: saved.append(len(saved)))
    for epoch, value in enumerate([0.5, 0.7, 0.6, math.nan, 0.7, 0.9]):
        keep.on_epoch_end(epoch, {"val_accuracy": value, "loss": 1.0})
    assert len(saved) == 3 and (keep.best, keep.best_epoch) == (0.9, 5)
    lower = validation.KeepBest("val_loss", "min", save=lambda: None, best=0.3, best_epoch=2)
    lower.on_epoch_end(3, {"val_loss": 0.4})
    assert (lower.best, lower.best_epoch) == (0.3, 2)
    with pytest.raises(ValueError, match=r"`mode` to be one of \['max', 'min'\]\. Received: mode="):
        validation.KeepBest("val_loss", "up", save=lambda: None)


def test_best_in_history_reads_a_csv_logger_file(tmp_path):
    history = tmp_path / "history.csv"
    assert validation.best_in_history(history, "val_loss", "min") == (None, None)
    history.write_text(
        "epoch,loss,val_accuracy,val_loss\r\n0,1.0,0.5,0.9\r\n1,0.8,0.75,NA\r\n2,0.7,0.625,0.4\r\n"
    )
    assert validation.best_in_history(history, "val_accuracy", "max") == (0.75, 1)
    assert validation.best_in_history(history, "val_loss", "min") == (0.4, 2)
    assert validation.best_in_history(history, "val_other", "min") == (None, None)
