"""Errors that end a command with a clear message instead of a traceback."""


class LlmrecError(Exception):
    """A failure the user can act on; the CLI prints its message and exits non-zero."""


class DataQualityError(LlmrecError):
    """A partition's bad share exceeded the configured threshold."""


class MissingInputError(LlmrecError):
    """An input partition or file that a run needs does not exist."""
