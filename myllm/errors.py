"""The one exception type that the CLI turns into a one-line message and an exit code."""


class UserError(Exception):
    """Bad input (exit code 2) or a run that cannot go on (e.g. diverged, exit code 1).

    The message names the problem and how to fix it, in one line.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
