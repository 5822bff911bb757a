"""User-facing errors: one clear line, no traceback."""

from __future__ import annotations

import errno


class UserError(Exception):
    """Bad input from the user (a missing file, unreadable audio, a bad manifest line).

    The CLI prints ``error: <message>`` and exits non-zero; the message must say
    what was wrong and what to do about it.
    """


def user_message(e: UserError) -> str:
    """The message of ``e``; for one raised in a DataLoader worker, which PyTorch re-raises in the main process with
    the worker's traceback in its message ("Caught UserError in DataLoader worker process 1. Original Traceback
    ..."), the original message alone."""
    text = str(e)
    if "\nOriginal Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split(f"{UserError.__module__}.{UserError.__name__}: ", 1)[-1]


_ADVICE = {  # errno -> what to do about it
    errno.ENOENT: "check the path (the folder it goes in must exist)",
    errno.EACCES: "choose a path you may use, or change its permissions",
    errno.EPERM: "choose a path you may use, or change its permissions",
    errno.EROFS: "the file system is read-only: choose a path on a writable one",
    errno.ENOSPC: "the disk is full: free some space or write elsewhere, then run the same command again",
    errno.EDQUOT: "the disk quota is spent: free some space or write elsewhere, then run the same command again",
    errno.EISDIR: "a folder is in the way: give a file path",
    errno.ENOTDIR: "a file is in the way where a folder should be: check the path",
    errno.EEXIST: "something is already there (a file where a folder should be?): check the path",
}
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})  # about the disk even without a file name


def os_error_message(e: OSError) -> str | None:
    """One line for a failed file operation (what, where, what to do), or None when ``e`` names no file and is not
    about the disk: then it is not the user's to fix, and the caller keeps its traceback."""
    if e.filename is None and e.errno not in DISK_ERRNOS:
        return None
    where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 is not None else "") if e.filename else "disk"
    reason = e.strerror or str(e)
    advice = _ADVICE.get(e.errno)
    return f"{where}: {reason}" + (f"; {advice}" if advice else "")
