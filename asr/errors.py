"""User-facing errors: one clear line, no traceback."""


class UserError(Exception):
    """Bad input from the user (a missing file, unreadable audio, a bad manifest line).

    The CLI prints ``error: <message>`` and exits non-zero; the message must say
    what was wrong and what to do about it.
    """
