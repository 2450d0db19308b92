"""What can go wrong, and the exit code each kind of failure gets.

0 success; 1 the operation failed (content mismatch, verification failed, timed out, local
I/O); 2 usage (a missing or empty flag, a bad value); 3 the API refused (HTTP 4xx, or a state
the CLI will not overwrite); 4 the server could not be reached or failed (network, HTTP 5xx).
"""

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure shown as one line on stderr."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Failed(CliError):
    exit_code = EXIT_FAILED


class UsageProblem(CliError):
    exit_code = EXIT_USAGE


class Refused(CliError):
    exit_code = EXIT_REFUSED


class Unavailable(CliError):
    exit_code = EXIT_UNAVAILABLE


class ApiError(CliError):
    """The API answered with an error status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.exit_code = EXIT_REFUSED if status < 500 else EXIT_UNAVAILABLE
