"""How a command ends: its exit code, and the error that ends it with a message."""

from __future__ import annotations

#: 0 done; 1 refused or failed (the message says why); 2 bad input (usage, a bad file);
#: 3 Personify360 could not be used (settings, credentials, an outage).
EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT, EXIT_PERSONIFY_UNUSABLE = 0, 1, 2, 3


class CommandError(Exception):
    """Ends a command with a message on stderr and the given exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code
