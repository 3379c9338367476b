import sys

import pytest

from tfmeta import rl


def test_names_list_every_family():
    assert rl.families.names() == [
        "ant_dir",
        "ant_vel",
        "halfcheetah_dir",
        "halfcheetah_vel",
        "ml1",
        "navigation_2d",
    ]


def test_a_family_is_rebuilt_from_its_config():
    family = rl.families.get(rl.Navigation2D(horizon=30).get_config())
    assert isinstance(family, rl.Navigation2D) and family.horizon == 30


@pytest.mark.parametrize("lookup", [rl.families.get, rl.families.family_class])
def test_an_unknown_name_lists_the_known_ones(lookup):
    with pytest.raises(
        ValueError, match=r"Unknown task family 'pendulum'. Expected one of \['ant_dir'"
    ):
        lookup("pendulum")


def test_a_family_class_tells_whether_it_rolls_out_in_one_graph():
    assert rl.families.family_class("navigation_2d") is rl.Navigation2D
    assert rl.Navigation2D.in_graph
    assert not rl.families.family_class("halfcheetah_vel").in_graph


def test_mujoco_families_without_gymnasium_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"pip install 'tfmeta\[rl\]'"):
        rl.families.get("halfcheetah_vel")


def test_meta_world_without_metaworld_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)
    with pytest.raises(ImportError, match=r"pip install 'tfmeta\[metaworld\]'"):
        rl.families.get("ml1")


def test_a_task_split_other_than_train_or_test_is_rejected():
    with pytest.raises(ValueError, match=r"Expected `split` in \['train', 'test'\]"):
        rl.Navigation2D().sample_tasks(3, seed=0, split="validation")
