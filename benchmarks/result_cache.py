"""Results that are a function of their settings alone, kept in a file beside a run.

A benchmark that runs in resumable parts may compute the same figure in every
part: `benchmarks/meta_rl.py` evaluates the randomly initialised policy (seeded
weights, tasks and rollouts) before each part, minutes of sampling for Ant.
`cached` keeps each result with the settings that produced it and hands it back
when the settings match, so later parts read it instead of computing it again.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from absl import logging

from tfmeta.data.temporary_files import write_atomically


def _canonical(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(value, sort_keys=True))


def _entries(path: str) -> list:
    """The kept `{"settings", "result"}` entries, or none if the file is missing or unreadable."""
    try:
        with open(path) as file:
            entries = json.load(file)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        logging.warning("Ignoring the unreadable result cache %s (%s); computing again",
                        path, error)
        return []
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and {"settings", "result"} <= entry.keys() for entry in entries
    ):
        logging.warning("Ignoring the result cache %s: not a list of entries; computing again",
                        path)
        return []
    return entries


def cached(path: str, settings: dict, compute: Callable[[], Any]) -> Any:
    """The result kept in `path` for `settings`, or `compute()`'s, then kept there.

    Args:
        path: the JSON file of kept results (a list of `{"settings", "result"}`).
        settings: everything the result depends on (JSON-serialisable).
        compute: computes the result (JSON-serialisable) when none is kept.

    Results for other settings stay in the file, so switching between
    settings computes each once. The file is replaced atomically
    (`tfmeta.data.temporary_files.write_atomically`), so a crash mid-write leaves the
    previous one.
    """
    key = _canonical(settings)
    entries = _entries(path)
    for entry in entries:
        if entry["settings"] == key:
            return entry["result"]
    result = _canonical(compute())  # as a later part will read it back
    entries.append({"settings": key, "result": result})
    write_atomically(path, json.dumps(entries, indent=1))
    return result
