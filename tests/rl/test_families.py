import sys

import pytest

from tfmeta import rl


def test_names_list_every_family():
    assert rl.families.names() == [
        "ant_dir",
        "ant_vel",
        "halfcheetah_dir",
        "halfcheetah_vel",
        "navigation_2d",
    ]


def test_a_family_is_rebuilt_from_its_config():
    family = rl.families.get(rl.Navigation2D(horizon=30).get_config())
    assert isinstance(family, rl.Navigation2D) and family.horizon == 30


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(
        ValueError, match=r"Unknown task family 'pendulum'. Expected one of \['ant_dir'"
    ):
        rl.families.get("pendulum")


def test_mujoco_families_without_gymnasium_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"pip install 'tfmeta\[rl\]'"):
        rl.families.get("halfcheetah_vel")
