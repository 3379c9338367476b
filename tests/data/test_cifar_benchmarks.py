"""CIFAR-FS and FC100 from CIFAR-100's binary version and a prepared TFDS cifar100 (never
downloaded unasked)."""

import numpy as np
import pytest

import tfmeta.data
from benchmark_layouts import cifar100_names, write_cifar100_binary


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return write_cifar100_binary(tmp_path_factory.mktemp("cifar"))


def test_cifar_fs_gives_the_published_split_with_all_images(binary, tmp_path):
    sources = tfmeta.data.cifar_fs(binary.parent, cache_dir=tmp_path)
    split = tfmeta.data.published_split("cifar_fs")
    for name, source in sources.items():
        assert source.class_names == sorted(split[name])
        assert source.image_shape == (32, 32, 3)
        assert set(source.class_images.counts) == {4}  # 3 train + 1 test images pooled
    fine, _, _ = cifar100_names()
    # Images carry their fine label id in red: each class holds its own images.
    worm = sources["test"].class_images.images_of("worm")
    assert np.all(worm[:, 0, 0, 0] == fine.index("worm"))
    assert np.all(worm[:, 0, 0, 1:] == 0)


def test_fc100_splits_by_superclass(binary):
    sources = tfmeta.data.fc100(binary, cache=False)
    _, _, superclass_of = cifar100_names()
    superclasses = tfmeta.data.published_split("fc100")
    for name, source in sources.items():
        assert source.num_classes == 5 * len(superclasses[name])
        assert {superclass_of[c] for c in source.class_names} == set(superclasses[name])


def test_missing_binary_file_is_named_and_pickled_version_refused(binary, tmp_path):
    import shutil

    copy = tmp_path / "cifar-100-binary"
    shutil.copytree(binary, copy)
    (copy / "coarse_label_names.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Missing: \['coarse_label_names.txt'\]"):
        tfmeta.data.fc100(copy, cache=False)
    python_version = tmp_path / "python" / "cifar-100-python"
    python_version.mkdir(parents=True)
    (python_version / "train").write_bytes(b"pickled")
    with pytest.raises(FileNotFoundError, match="pickled Python version"):
        tfmeta.data.cifar_fs(tmp_path / "python", cache=False)
    with pytest.raises(ValueError, match="never reads pickle"):
        tfmeta.data.cifar_fs(tmp_path / "cifar.pkl")


def test_truncated_binary_file_is_refused(binary, tmp_path):
    import shutil

    copy = tmp_path / "cifar-100-binary"
    shutil.copytree(binary, copy)
    data = (copy / "test.bin").read_bytes()
    (copy / "test.bin").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="test.bin"):
        tfmeta.data.cifar_fs(copy, cache=False)


def test_tfds_cifar100_unprepared_is_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar100 prepared in"):
        tfmeta.data.cifar_fs(tfds_data_dir=tmp_path, cache=False)


class _PreparedCifar100:
    """Stands in for TFDS's prepared `cifar100` builder: 2 images of every class."""

    name, full_name, data_dir = "cifar100", "cifar100/3.0.2", "/prepared"

    def __init__(self):
        import types

        fine, coarse, superclass_of = cifar100_names()
        self._fine = np.repeat(np.arange(100), 2)
        self._coarse = np.asarray([coarse.index(superclass_of[fine[i]]) for i in self._fine])
        features = {"label": types.SimpleNamespace(names=fine),
                    "coarse_label": types.SimpleNamespace(names=coarse)}
        self.info = types.SimpleNamespace(features=features, full_name=self.full_name)

    def is_prepared(self):
        return True

    def as_dataset(self, split, batch_size):
        import tensorflow as tf

        assert split == "train+test"
        images = np.zeros([len(self._fine), 32, 32, 3], np.uint8)
        images[..., 0] = self._fine[:, None, None]
        return tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": self._fine, "coarse_label": self._coarse}
        ).batch(batch_size)


def test_prepared_tfds_cifar100_gives_both_splits(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: _PreparedCifar100())
    cifar_fs = tfmeta.data.cifar_fs(cache=False)
    assert cifar_fs["test"].class_names == sorted(tfmeta.data.published_split("cifar_fs")["test"])
    fine, _, superclass_of = cifar100_names()
    worm = cifar_fs["test"].class_images.images_of("worm")
    assert worm.shape == (2, 32, 32, 3) and np.all(worm[..., 0] == fine.index("worm"))
    fc100 = tfmeta.data.fc100(cache=False)
    assert {superclass_of[c] for c in fc100["validation"].class_names} == set(
        tfmeta.data.published_split("fc100")["validation"]
    )
