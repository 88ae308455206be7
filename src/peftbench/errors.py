"""One exception type for every mistake a user can make, so the CLI can print one clear line."""


class PeftbenchError(Exception):
    """A problem with the user's input or environment, worded for the user (one line, no traceback)."""
