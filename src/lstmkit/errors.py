"""Errors that the command line reports as one line and exit status 2."""


class InputError(Exception):
    """Bad input the user can fix (a file, a flag, a path); the message says what and how, on one line:
    characters that are not printable (a line break in a quoted CSV header, say) show as escapes."""

    def __str__(self) -> str:
        text = super().__str__()
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""
