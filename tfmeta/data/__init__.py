"""Task sources: episodes for meta-learning, as tf.data pipelines."""

from tfmeta.data.episode import EPISODE_KEYS
from tfmeta.data.task_family import TaskFamily
from tfmeta.data.sinusoid import SinusoidTasks
from tfmeta.data.gaussian_process import GaussianProcessTasks
from tfmeta.data.archive import extract_archive
from tfmeta.data.cache import default_cache_dir
from tfmeta.data.class_images import ClassImages
from tfmeta.data.class_split import class_order, split_classes
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.omniglot_protocols import (
    OMNIGLOT_PROTOCOLS,
    omniglot,
    omniglot_class_images,
    omniglot_preprocessing,
)
from tfmeta.data import pixels
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.tfds_images import image_folder_class_images, tfds_class_images
from tfmeta.data.published_splits import published_split
from tfmeta.data.mini_imagenet_source import mini_imagenet
from tfmeta.data.tiered_imagenet_source import tiered_imagenet
from tfmeta.data.cifar_benchmarks import cifar100, cifar_fs, fc100
from tfmeta.data.cub_source import cub, cub_split
from tfmeta.data.variable_episodes import (
    VARIABLE_EPISODE_CONFIGS,
    VariableEpisodeConfig,
    variable_episodes,
)
from tfmeta.data.augmentation import EpisodeAugmentation, augment_episodes
