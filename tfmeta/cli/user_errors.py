"""The errors the `tfmeta` command reports as a user's fault: one line, exit code 2.

A user fault is a bad flag or file the user named (`ValueError`,
`FileExistsError`, ...), a missing optional dependency (`ImportError`), or
an operating-system error on the user's paths (`OSError`: a read-only
directory, a full disk, a file too large for the file system's limit), or
episodes that fail the learner's checks (`EpisodeError`, e.g. more classes
than the model predicts; its message names the field and the fix).
TensorFlow reports the same failures of its own file writes as
`tf.errors.PermissionDeniedError` or, for a full disk, as
`ResourceExhaustedError` / `UnknownError` / `FailedPreconditionError` whose
message holds the operating system's reason: those count too. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

import tensorflow as tf

from tfmeta.data.episode import EpisodeError

USER_ERRORS = (ValueError, ImportError, OSError)

_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
# How TensorFlow's file system layer (and an OSError's text) names the system's reasons.
_OS_REASONS = {
    "No space left on device": errno.ENOSPC,
    "File too large": errno.EFBIG,
    "Disk quota exceeded": errno.EDQUOT,
    "Permission denied": errno.EACCES,
    "Read-only file system": errno.EROFS,
}


def is_user_error(error: BaseException) -> bool:
    """Whether the command reports `error` as a user fault (see the module docstring)."""
    if isinstance(error, EpisodeError):  # an OpError too, but the user's episodes
        return True
    if isinstance(error, tf.errors.OpError):
        return isinstance(error, tf.errors.PermissionDeniedError) or _os_reason(error) is not None
    return isinstance(error, USER_ERRORS)


def describe(error: BaseException) -> str:
    """One line naming what failed, where, and the fix."""
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}; {_fix(error.errno)}"
    text = _first_line(_text(error)) or type(error).__name__
    reason = _os_reason(error)
    return text if reason is None else f"{text}; {_fix(reason)}"


def _text(error: BaseException) -> str:
    return error.message if isinstance(error, tf.errors.OpError) else str(error)


def _fix(code: int | None) -> str:
    if code in _NO_SPACE:
        return "free space on that disk (or raise its limit), or choose a directory on another one"
    if code in _NOT_ALLOWED:
        return "make it writable, or choose a directory you may write to"
    if code == errno.ENOENT:
        return "check the path"
    return "check the path, its permissions and the free space of its disk"


def _os_reason(error: BaseException) -> int | None:
    """The operating system's reason named in a TensorFlow or tfmeta error message."""
    if isinstance(error, tf.errors.PermissionDeniedError):
        return errno.EACCES
    text = _text(error)
    for reason, code in _OS_REASONS.items():
        if reason in text:
            return code
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
