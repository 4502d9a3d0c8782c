"""Project exception types.

Every error a user can cause (a wrong file, a bad parameter, data that fails
validation) is raised as a subclass of :class:`OncoPersistNetError` with a
message that says what is wrong and where. Entry points catch exactly this type
and turn it into one readable line and a non-zero exit; anything else is a bug
and keeps its traceback.
"""


class OncoPersistNetError(Exception):
    """Base class of every error caused by input, configuration or data."""


class ConfigError(OncoPersistNetError):
    """params.yaml (or a command-line option) is malformed or out of range."""


class InputDataError(OncoPersistNetError):
    """An input file cannot be read or does not hold what it must."""


class DataValidationError(OncoPersistNetError):
    """Great Expectations found data that must not be trained on."""


class ModelError(OncoPersistNetError):
    """A model cannot be found, loaded, exported or does not match its input."""
