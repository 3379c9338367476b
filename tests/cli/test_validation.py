"""Validation of `tfmeta train`: the best epoch found again on resume."""

from tfmeta.cli import validation


def test_best_in_history_reads_a_csv_logger_file(tmp_path):
    history = tmp_path / "history.csv"
    assert validation.best_in_history(history, "val_loss", "min") == (None, None)
    history.write_text(
        "epoch,loss,val_accuracy,val_loss\r\n0,1.0,0.5,0.9\r\n1,0.8,0.75,NA\r\n2,0.7,0.625,0.4\r\n"
    )
    assert validation.best_in_history(history, "val_accuracy", "max") == (0.75, 1)
    assert validation.best_in_history(history, "val_loss", "min") == (0.4, 2)
    assert validation.best_in_history(history, "val_other", "min") == (None, None)
