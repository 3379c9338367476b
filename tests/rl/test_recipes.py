import keras
import pytest

from tfmeta import rl


def test_the_navigation_recipe_builds_the_papers_learner():
    learner = rl.recipes.build_learner("navigation_2d", rollouts_per_task=5)
    assert isinstance(learner.optimizer, rl.TRPO) and learner.optimizer.max_kl == 0.01
    assert learner.inner_learning_rate == 0.5 and learner.eval_learning_rates == [0.5, 0.25, 0.25]
    assert learner.rollouts_per_task == 5  # overridden
    assert [layer.units for layer in learner.policy.layers[:2]] == [100, 100]


def test_a_kl_bound_replaces_the_recipes():
    assert rl.recipes.build_learner("halfcheetah_dir").optimizer.max_kl == 0.02
    learner = rl.recipes.build_learner("halfcheetah_dir", max_kl=0.005)
    assert learner.optimizer.max_kl == 0.005


def test_another_optimizer_replaces_trpo_with_the_clipped_surrogate():
    adam = keras.optimizers.Adam(5e-5)
    learner = rl.recipes.build_learner("navigation_2d", optimizer=adam, clip_ratio=0.3)
    assert learner.optimizer is adam and learner.clip_ratio == 0.3
    assert learner.inner_learning_rate == 0.5  # the recipe's otherwise


def test_a_kl_bound_with_another_optimizer_is_refused():
    with pytest.raises(ValueError, match="max_kl is TRPO's KL bound"):
        rl.recipes.build_learner("navigation_2d", max_kl=0.01, optimizer=keras.optimizers.Adam())


@pytest.mark.parametrize("name, model, evaluation", [
    # The model file each test script of the authors loads, and how the script evaluates it.
    ("halfcheetah_vel", "maml1_fbs10_mbs40_flr_0.1_mlr0.01/itr_475", ((0.1, 0.05, 0.05), 20)),
    ("halfcheetah_dir", "maml1_fbs20_mbs40_flr_0.1_mlr0.02/itr_100", ((0.1, 0.05, 0.05), 20)),
    ("ant_vel", "maml1_fbs20_mbs40_flr_0.1_mlr0.01/itr_375", ((0.1, 0.05, 0.05), 20)),
    ("ant_dir", "maml1_fbs40_mbs40_flr_0.1_mlr0.01/itr_575", ((0.1, 0.001, 0.001), 40)),
])
def test_each_mujoco_recipe_is_that_of_the_papers_model(name, model, evaluation):
    recipe = rl.recipes.get(name)
    settings = (f"maml1_fbs{recipe.rollouts_per_task}_mbs{recipe.meta_batch_size}"
                f"_flr_{recipe.inner_learning_rate}_mlr{recipe.max_kl}/itr_{recipe.iterations}")
    assert settings == model
    assert (recipe.eval_learning_rates, recipe.eval_rollouts_per_task) == evaluation


def test_every_family_of_the_paper_has_a_recipe():
    assert sorted(rl.recipes.RECIPES) == [name for name in rl.families.names() if name != "ml1"]


def test_an_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown task family 'walker'.*navigation_2d"):
        rl.recipes.get("walker")
