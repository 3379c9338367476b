"""Every runnable `tfmeta` line of the README runs (in-process, with small sizes appended).

Lines that are templates (`[--flags]`, `RUN`) are not runnable; the progress lines the
README shows are output, not commands.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
OMNIGLOT = "path/to/omniglot.tar.gz"
# Appended to every `tfmeta train` line: a few meta-updates, a few evaluation tasks.
SMALL = ["--iterations=2", "--steps_per_epoch=1", "--eval_episodes=2", "--val_episodes=2",
         "--meta_batch_size=2", "--eval_inner_steps=1", "--queries=2", "--filters=4"]
META_RL_SMALL = ["--iterations=1", "--meta_batch_size=2"]


def command_lines() -> list[str]:
    """The runnable `tfmeta` lines of the README's code blocks (not `tfmeta:` output)."""
    lines, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        command = re.sub(r"^.*&& \.venv/bin/", "", line.split("  #")[0]).strip()
        if in_block and re.match(r"tfmeta( |$)", command) and not re.search(r"\[|RUN", command):
            lines.append(command)
    return lines


def test_the_command_lines_are_found():
    lines = command_lines()
    assert "tfmeta train" in lines and "tfmeta --help" in lines  # the Quickstart's, the help
    assert "tfmeta train --config=sinusoid_maml" in lines and len(lines) >= 8


@pytest.mark.slow
@pytest.mark.parametrize("line", command_lines())
def test_command_lines_run(line, run_tfmeta, image_folder, request):
    args = shlex.split(line)[1:]
    if any(OMNIGLOT in arg for arg in args):
        omniglot = str(request.getfixturevalue("omniglot_tarball"))
        args = [arg.replace(OMNIGLOT, omniglot) for arg in args]
    args = [arg.replace("path/to/images", str(image_folder)) for arg in args]
    if any(arg.startswith("--flagfile=") for arg in args):
        Path("run.flags").write_text("--algorithm=fomaml\n--inner_steps=1\n")
    if args[:1] == ["train"]:
        meta_rl = any(arg.startswith("--env=") for arg in args)
        args += META_RL_SMALL if meta_rl else SMALL
        if "--algorithm=protonet" in args:  # the toy folder's test split holds 6 classes
            args += ["--ways=3", "--eval_ways=3"]
    result = run_tfmeta(*args)
    assert result.returncode == 0, (line, result.stderr[-3000:])
