"""The one error type of data loading."""


class DataError(ValueError):
    """Missing, unreadable or malformed data, with what was looked for."""
