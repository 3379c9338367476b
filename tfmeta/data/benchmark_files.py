"""What the benchmark readers share: refusing pickles, naming what is missing, making sources."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from tfmeta.data.class_images import ClassImages
from tfmeta.data.few_shot import FewShotEpisodes

PICKLE_SUFFIXES = (".pkl", ".pickle")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # the image files the benchmark folders hold
SHOWN = 5  # names listed in a message before "and N more"


def refuse_pickle(path: Path, alternative: str) -> None:
    """Raises a ValueError if `path` is a pickle file, saying why and what to pass instead.

    Unpickling runs whatever code the file names, so no tfmeta reader ever
    loads one, not even the widely shared benchmark caches.
    """
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(
            f"Expected image files or arrays, never a pickle file. Received: {str(path)!r}; "
            "tfmeta never reads pickle files (loading one can run any code it holds). "
            f"Pass {alternative} instead"
        )


def pickles_in(folder: Path) -> list[str]:
    """Names of the pickle files directly in `folder`, for messages."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)


def shown(names: Iterable[str]) -> str:
    """`['a', 'b', ...] and N more`: a short list for messages."""
    names = list(names)
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return f"{names[:SHOWN]}{more}"


def check_folder(path: Path, what: str) -> Path:
    """`path` if it is a folder; else a FileNotFoundError naming `what` was expected there."""
    if not path.is_dir():
        state = "a file" if path.exists() else "does not exist"
        raise FileNotFoundError(f"Expected {what}. Received: {str(path)!r}, which {state}")
    return path


def images_in(folder: Path) -> list[Path]:
    """The image files of `folder`, sorted by name; a FileNotFoundError if there are none."""
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise FileNotFoundError(
            f"Expected images of type {list(IMAGE_SUFFIXES)} in {str(folder)!r}. Received: none"
        )
    return paths


def episode_sources(
    splits: Mapping[str, ClassImages], benchmark: str
) -> dict[str, FewShotEpisodes]:
    """`{"train", "validation", "test"}` episode sources named `"<benchmark>/<split>"`."""
    return {
        split: FewShotEpisodes(images, name=f"{benchmark}/{split}")
        for split, images in splits.items()
    }
