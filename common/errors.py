"""The error type of mistakes a user can fix (a flag, a file, a work directory)."""


class UserError(ValueError):
    """A mistake the user can fix; its message names the flag or file and what to do.

    The command-line tools print it as one line without a traceback (see
    `common.flags.user_errors`); any other exception is the project's own bug
    and keeps its traceback. It is a ValueError so that callers that catch bad
    values keep working.
    """
