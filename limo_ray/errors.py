"""User-facing errors: the CLI prints their message as one line and exits non-zero, with no traceback."""


class LimoError(Exception):
    """A user-facing error: the message is one clear line saying what failed and what to do."""


def one_line(exc: BaseException) -> str:
    """An exception's message folded onto one line (its type name when it has no message), for a LimoError."""
    return " ".join(str(exc).split()) or type(exc).__name__
