import io
import tarfile

import pytest

import tfmeta.data


def make_tar(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extracts_once_into_the_cache(tmp_path, monkeypatch):
    archive = make_tar(
        tmp_path / "toy.tar.gz", {"toy/train/a/1.txt": b"x", "toy/test/b/1.txt": b"y"}
    )
    root = tfmeta.data.extract_archive(archive, tmp_path / "cache")
    assert (root / "toy/train/a/1.txt").read_bytes() == b"x"
    assert root.parent == tmp_path / "cache" / "archives" and root.name.startswith("toy-")

    def no_second_extraction(*args, **kwargs):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_second_extraction)
    assert tfmeta.data.extract_archive(archive, tmp_path / "cache") == root


def test_a_crash_during_extraction_leaves_no_folder(tmp_path, monkeypatch):
    archive = make_tar(tmp_path / "toy.tar.gz", {"toy/a.txt": b"x"})

    def crash(self, path, *args, **kwargs):
        (path / "half-written").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", crash)
    with pytest.raises(KeyboardInterrupt):
        tfmeta.data.extract_archive(archive, tmp_path / "cache")
    assert list((tmp_path / "cache" / "archives").iterdir()) == []
    monkeypatch.undo()
    assert (tfmeta.data.extract_archive(archive, tmp_path / "cache") / "toy/a.txt").is_file()


def test_members_outside_the_destination_are_refused(tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", {"../escaped.txt": b"x"})
    with pytest.raises(tarfile.TarError):
        tfmeta.data.extract_archive(archive, tmp_path / "cache")
    assert not (tmp_path / "cache" / "escaped.txt").exists()
    assert list((tmp_path / "cache" / "archives").iterdir()) == []


def test_missing_or_wrong_archives_raise(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"Expected a tar archive file\. Received: .*nope\.tar\.gz"
    ):
        tfmeta.data.extract_archive(tmp_path / "nope.tar.gz", tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"Expected a tar archive \(\.tar\.gz, \.tgz, \.tar\)"):
        tfmeta.data.extract_archive(tmp_path / "notes.txt", tmp_path)
