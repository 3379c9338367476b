"""Session-wide learners of the exporter tests."""

import pytest

import exporter_testing


@pytest.fixture(scope="session")
def conv4_learner():
    return exporter_testing.conv4_maml()


@pytest.fixture(scope="session")
def mlp_learner():
    return exporter_testing.mlp_maml()
