import tfmeta.data
from tfmeta.data.cache import class_images_cache_path, directory_fingerprint, load_or_build


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFMETA_CACHE_DIR", str(tmp_path / "c"))
    assert tfmeta.data.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TFMETA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tfmeta.data.default_cache_dir() == tmp_path / "xdg" / "tfmeta"


def test_load_or_build_builds_once_then_loads(tmp_path, toy_class_images):
    calls = []

    def build():
        calls.append(1)
        return toy_class_images(num_classes=2, per_class=3)

    path = class_images_cache_path(tmp_path, "toy split", "key", 1)
    assert path.parent == tmp_path / "class_images" and path.name.startswith("toy_split-")
    first = load_or_build(path, build)
    second = load_or_build(path, build)
    assert len(calls) == 1 and second.class_names == first.class_names
    assert class_images_cache_path(tmp_path, "toy", "key", 2) != class_images_cache_path(
        tmp_path, "toy", "key", 1
    )
    path.write_bytes(b"corrupt")
    load_or_build(path, build)
    assert len(calls) == 2


def test_directory_fingerprint_depends_on_contents_not_location(tmp_path):
    for root in ("a", "b"):
        (tmp_path / root / "x").mkdir(parents=True)
        (tmp_path / root / "x" / "1.png").write_bytes(b"12")
    assert directory_fingerprint(tmp_path / "a") == directory_fingerprint(tmp_path / "b")
    (tmp_path / "b" / "x" / "2.png").write_bytes(b"3")
    assert directory_fingerprint(tmp_path / "a") != directory_fingerprint(tmp_path / "b")
