"""Errors that the command line reports as one line (exit status 2 for bad input, 1 for a diverged run)."""


class InputError(ValueError):
    """Bad input the user can fix (a file, a column, a flag, a path, data from Python); the message says
    what and how, on one line: characters that are not printable (a line break in a quoted CSV header,
    say) show as escapes. A ValueError, so that Python callers may catch it as one."""

    def __str__(self) -> str:
        text = super().__str__()
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


class NotFittedError(InputError):
    """An estimator used before ``fit`` or ``load``."""
