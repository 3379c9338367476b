"""Locomotion task families of Finn et al. 2017 on Gymnasium's v5 MuJoCo environments.

The rewards follow the paper's rllab environments, computed from the
quantities Gymnasium reports in `info` (forward velocity, control, contact
and survival terms, with the cost weights set through `gymnasium.make`).
The simulators differ from rllab's: Gymnasium's v5 models and MuJoCo 3
physics. Returns are therefore comparable to the paper's in kind, not to
the decimal.

The control step is rllab's, not Gymnasium's default: rllab simulates one
MuJoCo step per action (its models set no `frame_skip`), so a 200-step
HalfCheetah episode lasts 2 s of simulated time (timestep 0.01 s) and an Ant
episode 4 s (rllab's Ant model has timestep 0.02 s). Gymnasium's v5
environments default to 5 MuJoCo steps of 0.01 s per action, which would
make the same 200 steps last 10 s, a different control problem; the
families set `frame_skip` to match rllab (1 for HalfCheetah, 2 for Ant).

The observation is rllab's by default (`observation="rllab"`,
`tfmeta.rl.rllab_observation`): HalfCheetah's adds the body's centre of
mass, whose x tells the policy how far it has run; Ant's keeps the torso's
position and adds its orientation. `observation="gymnasium"` keeps
Gymnasium's own (17 features for HalfCheetah, 105 for Ant).

The forward velocity the rewards score is Gymnasium's by default
(`velocity="gymnasium"`: the torso's displacement over the step);
`velocity="rllab"` scores rllab's, the whole robot's centre-of-mass velocity
after the step (`tfmeta.rl.rllab_velocity`). Episodes start from
Gymnasium's initial-state noise by default (`reset_noise="gymnasium"`) or
from rllab's (`reset_noise="rllab"`, `tfmeta.rl.rllab_reset`: positions six
times less noisy).

Needs the `rl` extra: `pip install 'tfmeta[rl]'`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_choice
from tfmeta.rl.gymnasium_family import GymnasiumTaskFamily

OBSERVATIONS = ("rllab", "gymnasium")
VELOCITIES = ("gymnasium", "rllab")
RESET_NOISES = ("gymnasium", "rllab")


def _random_directions(num_tasks: int, seed) -> tf.Tensor:
    """`[num_tasks, 1]` of +1 (forward) or -1 (backward), each with probability 1/2."""
    coin = tf.random.stateless_uniform([num_tasks, 1], seed)
    return tf.where(coin < 0.5, -1.0, 1.0)


class LocomotionFamily(GymnasiumTaskFamily):
    """A family on a Gymnasium MuJoCo robot, observed as in rllab or as in Gymnasium.

    Subclasses set `rllab_features`, the name of a function of
    `tfmeta.rl.rllab_observation` (imported with the simulator, on first use).

    Args:
        horizon: steps per trajectory.
        max_environments: the most environments held at once.
        observation: `"rllab"` (the paper's) or `"gymnasium"` (the environment's own).
        velocity: the forward velocity the reward scores: `"gymnasium"` (the
            torso's, `info["x_velocity"]`) or `"rllab"` (the paper's: the
            robot's centre of mass, `tfmeta.rl.rllab_velocity`).
        reset_noise: the initial-state noise: `"gymnasium"` or `"rllab"` (the
            paper's, `tfmeta.rl.rllab_reset`).
        processes: the processes that step the environments (`GymnasiumTaskFamily`).
    """

    rllab_features: str

    def __init__(
        self,
        horizon: int = 200,
        max_environments: int | None = None,
        observation: str = "rllab",
        velocity: str = "gymnasium",
        reset_noise: str = "gymnasium",
        processes: int = 1,
    ):
        self.observation = check_choice("observation", observation, OBSERVATIONS)
        self.velocity = check_choice("velocity", velocity, VELOCITIES)
        self.reset_noise = check_choice("reset_noise", reset_noise, RESET_NOISES)
        super().__init__(  # checks the extra
            horizon=horizon, max_environments=max_environments, processes=processes
        )
        self._rllab_velocity_key = None
        if self.velocity == "rllab":  # imported once here, not in every step's reward
            from tfmeta.rl.rllab_velocity import INFO_KEY

            self._rllab_velocity_key = INFO_KEY

    def wrap_environment(self, env):
        if self.reset_noise == "rllab":
            from tfmeta.rl.rllab_reset import RllabReset

            env = RllabReset(env)
        if self.velocity == "rllab":
            from tfmeta.rl.rllab_velocity import CentreOfMassVelocity

            env = CentreOfMassVelocity(env)
        if self.observation == "gymnasium":
            return env
        from tfmeta.rl import rllab_observation

        features = getattr(rllab_observation, self.rllab_features)
        return rllab_observation.RllabObservation(env, features)

    def forward_velocity(self, info: dict) -> float:
        """The step's forward (x) velocity that the reward scores, from `info`."""
        if self._rllab_velocity_key is not None:
            return float(info[self._rllab_velocity_key][0])
        return info["x_velocity"]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "observation": self.observation,
            "velocity": self.velocity,
            "reset_noise": self.reset_noise,
        }


class HalfCheetahVelocity(LocomotionFamily):
    """HalfCheetah running at a target forward velocity, uniform in [0, 2] (`task = [velocity]`).

    Reward per step: `-|v_x - velocity| - 0.05 * |action|^2` (`v_x`: `forward_velocity`).

    Example:

    ```python
    from tfmeta import rl
    family = rl.families.get("halfcheetah_vel")
    env = family.make_env(task=[1.5])          # a Gymnasium env rewarding velocity 1.5
    ```
    """

    name = "halfcheetah_vel"
    env_id = "HalfCheetah-v5"
    env_kwargs = {"ctrl_cost_weight": 0.05, "frame_skip": 1}  # rllab: 0.01 s per action
    rllab_features = "half_cheetah_features"
    task_dim = 1

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        return tf.random.stateless_uniform([num_tasks, 1], seed, minval=0.0, maxval=2.0)

    def reward(self, task: np.ndarray, info: dict, action: np.ndarray) -> float:
        return -abs(self.forward_velocity(info) - task[0]) + info["reward_ctrl"]


class HalfCheetahDirection(LocomotionFamily):
    """HalfCheetah running forward or backward (`task = [+1]` or `[-1]`, each with probability 1/2).

    Reward per step: `direction * v_x - 0.05 * |action|^2`.
    """

    name = "halfcheetah_dir"
    env_id = "HalfCheetah-v5"
    env_kwargs = HalfCheetahVelocity.env_kwargs
    rllab_features = HalfCheetahVelocity.rllab_features
    task_dim = 1

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        return _random_directions(num_tasks, seed)

    def reward(self, task: np.ndarray, info: dict, action: np.ndarray) -> float:
        return task[0] * self.forward_velocity(info) + info["reward_ctrl"]


class AntDirection(LocomotionFamily):
    """Ant walking forward or backward (`task = [+1]` or `[-1]`).

    Reward per step: `direction * v_x - 0.005 * |action|^2 - 5e-4 *
    |clip(contact forces, -1, 1)|^2 + 0.05`; the episode ends when the torso
    leaves heights [0.2, 1.0] (Gymnasium's healthy range).
    """

    name = "ant_dir"
    env_id = "Ant-v5"
    env_kwargs = {
        "ctrl_cost_weight": 0.005,
        "contact_cost_weight": 5e-4,
        "healthy_reward": 0.05,
        "frame_skip": 2,  # rllab: one step of its 0.02 s timestep per action
    }
    rllab_features = "ant_features"
    task_dim = 1

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        return _random_directions(num_tasks, seed)

    def reward(self, task: np.ndarray, info: dict, action: np.ndarray) -> float:
        return (
            task[0] * self.forward_velocity(info)
            + info["reward_ctrl"]
            + info["reward_contact"]
            + info["reward_survive"]
        )


class AntVelocity(LocomotionFamily):
    """Ant walking at a target forward velocity, uniform in [0, 3] (`task = [velocity]`).

    Reward per step: `1 - |v_x - velocity|` minus the costs of
    `AntDirection`, plus 0.05 (the paper's "happy, not suicidal" offset).
    """

    name = "ant_vel"
    env_id = "Ant-v5"
    env_kwargs = AntDirection.env_kwargs
    rllab_features = AntDirection.rllab_features
    task_dim = 1

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        return tf.random.stateless_uniform([num_tasks, 1], seed, minval=0.0, maxval=3.0)

    def reward(self, task: np.ndarray, info: dict, action: np.ndarray) -> float:
        return (
            1.0
            - abs(self.forward_velocity(info) - task[0])
            + info["reward_ctrl"]
            + info["reward_contact"]
            + info["reward_survive"]
        )
