"""Errors a user can act on. The CLI prints them without a traceback and exits with status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, config or environment: the message names what is wrong, the hint what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class NotBuiltYet(UserError):
    """A docs/design.md stage whose implementation has not landed yet."""

    def __init__(self, command: str, issue: int):
        super().__init__(
            f"`agentdistill {command}` is not implemented yet (tracked in issue {issue}).",
            hint="See README.md for the stages that work today.",
        )
