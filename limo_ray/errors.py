"""User-facing errors: the CLI prints their message as one line and exits non-zero, with no traceback."""


class LimoError(Exception):
    """A user-facing error: the message is one clear line saying what failed and what to do."""
