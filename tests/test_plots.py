"""Figures: the sinusoid panels follow each learner's own evaluation inner loop."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import plots


@pytest.mark.parametrize("learner_class", [tfmeta.MAML, tfmeta.ANIL, tfmeta.MetaSGD])
def test_drawn_trajectory_ends_where_the_learner_adapts(learner_class, tmp_path):
    learner = learner_class(tfmeta.models.mlp(), inner_learning_rate=0.1, eval_inner_steps=3)
    learner.compile(optimizer="adam", loss="mse")
    batch = next(iter(tfmeta.data.SinusoidTasks().episodes(5, 5, meta_batch_size=3, seed=0)))
    support_x, support_y = batch["support_x"][0], batch["support_y"][0]

    trajectory = plots.evaluation_trajectory(learner, support_x, support_y)
    expected, _ = learner.adapt(support_x, support_y)
    assert len(trajectory) == 4
    for drawn, adapted in zip(trajectory[-1][0], expected):
        np.testing.assert_allclose(drawn, adapted, rtol=1e-6, atol=1e-7)
    moved = [not np.allclose(a, b) for a, b in zip(trajectory[0][0], trajectory[-1][0])]
    if learner_class is tfmeta.ANIL:
        assert moved == [False] * (len(moved) - 2) + [True, True], "ANIL adapts only its head"
    else:
        assert all(moved)

    plots.plot_sinusoid_adaptation(learner, batch, tmp_path / "adaptation.png")
    assert (tmp_path / "adaptation.png").stat().st_size > 10_000


def test_a_meta_batch_of_fewer_tasks_than_panels_draws_one_panel_per_task(tmp_path):
    # `tfmeta train --meta_batch_size=2` on the sinusoid probes 2 tasks; drawing 3 panels
    # from them ended the run at its first epoch end.
    learner = tfmeta.MAML(tfmeta.models.mlp(), inner_learning_rate=0.1, eval_inner_steps=2)
    learner.compile(optimizer="adam", loss="mse")
    batch = next(iter(tfmeta.data.SinusoidTasks().episodes(5, 5, meta_batch_size=2, seed=0)))
    path = plots.plot_sinusoid_adaptation(learner, batch, tmp_path / "two.png", num_tasks=3)
    height, width, _ = tf.io.decode_png(tf.io.read_file(path)).shape
    assert (width, height) == (2 * 450, 350)  # two panels of 4.5 x 3.5 inches at 100 dpi
