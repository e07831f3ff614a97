"""Errors that the command line reports as one line and exit status 2."""


class InputError(Exception):
    """Bad input the user can fix (a file, a flag, a path); the message says what and how."""
