"""Which errors `tfmeta` reports as the user's fault, and the one line it prints for each."""

import errno

import tensorflow as tf

from tfmeta.cli import user_errors


def test_operating_system_errors_name_the_file_and_the_fix():
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/a/learner.keras")
    assert user_errors.is_user_error(full)
    assert user_errors.describe(full) == (
        "/runs/a/learner.keras: No space left on device; free space on that disk (or raise "
        "its limit), or choose a directory on another one"
    )
    denied = PermissionError(errno.EACCES, "Permission denied", "/runs/a/options.json")
    assert user_errors.describe(denied) == (
        "/runs/a/options.json: Permission denied; make it writable, or choose a directory you "
        "may write to"
    )


def test_tensorflow_file_errors_with_a_system_reason_are_user_errors():
    full = tf.errors.UnknownError(None, None, "/runs/a/logs/events.out; No space left on device")
    assert user_errors.is_user_error(full)
    assert user_errors.describe(full) == (
        "/runs/a/logs/events.out; No space left on device; free space on that disk (or raise "
        "its limit), or choose a directory on another one"
    )
    assert user_errors.is_user_error(tf.errors.PermissionDeniedError(None, None, "/x"))
    bug = tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [3] vs. [4]")
    assert not user_errors.is_user_error(bug)


def test_other_errors_keep_their_message_and_bugs_are_not_user_errors():
    assert user_errors.describe(ValueError("--shots must be >= 1\nmore")) == "--shots must be >= 1"
    assert user_errors.describe(FileExistsError("version 1 already exists in m")) == (
        "version 1 already exists in m"
    )
    assert not user_errors.is_user_error(KeyError("x"))
    assert not user_errors.is_user_error(AttributeError("x"))
