"""Task sources: episodes for meta-learning, as tf.data pipelines."""

from tfmeta.data.episode import EPISODE_KEYS
from tfmeta.data.sinusoid import SinusoidTasks
