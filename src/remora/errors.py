"""The root of every error Remora reports to a user; each layer derives its own."""


class RemoraError(Exception):
    """Anything Remora reports to a user as a message rather than a traceback."""
