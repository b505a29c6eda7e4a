"""The error type of mistakes a user can fix (a flag, a file, a work directory)."""


class UserError(ValueError):
    """A mistake the user can fix; its message names the flag or file and what to do.

    The command-line tools print it as one line without a traceback (see
    `common.cli.user_errors`); any other exception is the project's own bug
    and keeps its traceback. It is a ValueError so that callers that catch bad
    values keep working.
    """


def check_positive(config, names) -> None:
    """Each named field of `config` (a config object or parsed flags) that is set
    must be a positive finite number (its flag is --NAME); None means unset.

    Written `not 0 < value < inf` so that NaN fails too (every comparison with
    NaN is false, so `value <= 0` would let it through).
    """
    for name in names:
        value = getattr(config, name)
        if value is not None and not 0 < value < float("inf"):
            kind = "integer" if isinstance(value, int) else "finite number"
            raise UserError(f"--{name} must be a positive {kind}, got {value}.")


def check_non_negative(config, names) -> None:
    """Each named field of `config` must be a finite number >= 0 (its flag is --NAME)."""
    for name in names:
        value = getattr(config, name)
        if not 0 <= value < float("inf"):
            raise UserError(f"--{name} must be a finite number >= 0, got {value}.")
