import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import tfmeta.data
from benchmark_layouts import write_tar
from tfmeta.data.temporary_files import temporary_path


def make_tar(path, files):
    return write_tar(Path(path), files, mode="w:gz")


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


def _hostile_member(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo({"absolute": "/tmp/tfmeta-escaped.txt"}.get(kind, "toy/member"))
    info.size = 1  # the b"x" of a plain file
    if kind == "parent":
        info.name = "../escaped.txt"
    elif kind == "link":
        info.type, info.linkname, info.size = tarfile.SYMTYPE, "/etc/passwd", 0
    elif kind == "device":
        info.type, info.devmajor, info.devminor, info.size = tarfile.CHRTYPE, 1, 3, 0
    return info


@pytest.mark.parametrize("kind", ["parent", "link", "device"])
def test_members_that_are_not_plain_files_inside_are_refused(tmp_path, kind):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_hostile_member(kind), io.BytesIO(b"x") if kind == "parent" else None)
    with pytest.raises(ValueError, match=r"Refusing to extract .*evil\.tar\.gz.*repack"):
        tfmeta.data.extract_archive(archive, tmp_path / "cache")
    assert not (tmp_path / "cache" / "escaped.txt").exists()
    assert list((tmp_path / "cache" / "archives").iterdir()) == []


def test_absolute_member_paths_stay_inside_the_destination(tmp_path):
    archive = tmp_path / "absolute.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_hostile_member("absolute"), io.BytesIO(b"x"))
    root = tfmeta.data.extract_archive(archive, tmp_path / "cache")
    assert (root / "tmp" / "tfmeta-escaped.txt").read_bytes() == b"x"
    assert not os.path.exists("/tmp/tfmeta-escaped.txt")


def _damaged_copies(tmp_path):
    """A good archive and damaged copies of it: truncated, garbled data, a garbled member header."""
    files = {
        f"toy/train/c{i}/{j}.png": bytes(range(256)) * (i + 1) for i in range(4) for j in range(3)
    }
    good = make_tar(tmp_path / "good.tar.gz", files).read_bytes()
    half = len(good) // 2
    plain = tmp_path / "good.tar"
    with tarfile.open(plain, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    header = plain.read_bytes()
    second_header = 512 + 512 * ((len(files["toy/train/c0/0.png"]) + 511) // 512) + 512 * 2
    garbled_header = header[:second_header] + b"\xff" * 512 + header[second_header + 512 :]
    return {
        "truncated.tar.gz": good[: len(good) // 2],
        "garbled.tar.gz": good[:40] + bytes(b ^ 0x55 for b in good[40:80]) + good[80:],
        "garbled_middle.tar.gz": good[:half] + bytes(b ^ 0x55 for b in good[half : half + 40])
        + good[half + 40 :],
        "garbled_header.tar": garbled_header,
    }


def test_truncated_or_damaged_archives_are_refused_and_nothing_is_cached(tmp_path):
    for name, data in _damaged_copies(tmp_path).items():
        archive = tmp_path / name
        archive.write_bytes(data)
        with pytest.raises(ValueError, match=rf"Expected a (complete )?tar archive.*{name}.*dama"):
            tfmeta.data.extract_archive(archive, tmp_path / "cache")
        assert list((tmp_path / "cache" / "archives").iterdir()) == [], name
        assert archive.read_bytes() == data


def test_a_killed_extraction_leaves_nothing_after_the_next_one(tmp_path):
    archive = make_tar(tmp_path / "toy.tar.gz", {"toy/a.txt": b"x"})
    parent = tmp_path / "cache" / "archives"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    leftover = temporary_path(parent / "toy-0123456789abcdef")
    leftover = leftover.with_name(leftover.name.replace(f"_{os.getpid()}.", f"_{dead}."))
    (leftover / "toy").mkdir(parents=True)  # what a SIGKILL during extraction leaves
    (leftover / "toy" / "big.bin").write_bytes(b"\0" * 1000)
    live = temporary_path(parent / "toy-fedcba9876543210")  # this process: a live extractor
    live.mkdir()
    root = tfmeta.data.extract_archive(archive, tmp_path / "cache")
    assert sorted(parent.iterdir()) == sorted([root, live])


def test_missing_or_wrong_archives_raise(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"Expected a tar archive file\. Received: .*nope\.tar\.gz"
    ):
        tfmeta.data.extract_archive(tmp_path / "nope.tar.gz", tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"Expected a tar archive \(\.tar\.gz, \.tgz, \.tar\)"):
        tfmeta.data.extract_archive(tmp_path / "notes.txt", tmp_path)
