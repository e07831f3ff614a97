"""Errors that the command line reports as one line and exit status 2."""


class InputError(Exception):
    """Bad input the user can fix (a file, a flag, a path); the message says what and how."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""
