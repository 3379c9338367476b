import pytest

from tfmeta import rl


def test_the_navigation_recipe_builds_the_papers_learner():
    learner = rl.recipes.build_learner("navigation_2d", rollouts_per_task=5)
    assert isinstance(learner.optimizer, rl.TRPO) and learner.optimizer.max_kl == 0.01
    assert learner.inner_learning_rate == 0.5 and learner.eval_learning_rates == [0.5, 0.25, 0.25]
    assert learner.rollouts_per_task == 5  # overridden
    assert [layer.units for layer in learner.policy.layers[:2]] == [100, 100]


def test_the_direction_recipe_is_that_of_the_papers_direction_model():
    # Its test script loads maml1_fbs20_mbs40_flr_0.1_mlr0.02/itr_100.
    recipe = rl.recipes.get("halfcheetah_dir")
    assert (recipe.rollouts_per_task, recipe.meta_batch_size, recipe.max_kl, recipe.iterations) \
        == (20, 40, 0.02, 100)
    assert rl.recipes.get("halfcheetah_vel").max_kl == 0.01


def test_every_family_of_the_paper_has_a_recipe():
    assert sorted(rl.recipes.RECIPES) == [name for name in rl.families.names() if name != "ml1"]


def test_an_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown task family 'walker'.*navigation_2d"):
        rl.recipes.get("walker")
