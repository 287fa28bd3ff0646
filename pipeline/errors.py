"""The one exception type for bad input a user can fix."""


class InputError(ValueError):
    """Bad input: the message names the file, the record and the fix.

    Stages catch it at the command-line edge and print it without a traceback.
    """
