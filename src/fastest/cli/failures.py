"""The two kinds of failure a client command ends with, as base classes.

`fastest.cli.commands.run` turns them into one `fastest: …` line and an exit code without importing
every command's module for its exception classes (a command imports only what it needs, so
`fastest status` does not load checkout or sync just to be able to catch their errors).
"""

from __future__ import annotations


class UsageFailure(Exception):
    """Wrong use: bad arguments, not logged in, not a fastest folder (exit code 2)."""


class CommandFailure(Exception):
    """The operation failed: the server said no, the network, a conflict, a file changed (exit 1)."""
