"""The one error rule: a `UserError` carries a message written for a person.

The app, the CLI and `Studio` show exactly these messages (no stack trace); any other exception
is a bug: it is logged with its stack trace and the person sees a short "something went wrong".
Every module's own error class for bad input (a latent of another model, an unreadable image, a
checkpoint it cannot load, ...) derives from `UserError`, so this split never depends on which
builtin exception happens to be raised deep inside torch or numpy.
"""
from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """A problem the person can fix or must know about; its message is shown as it is.

    `summary`, when set, is one sentence that stands in for a long message where space is short
    (the app's status line and pop-ups); the full message then goes to the log and a details view.
    """

    summary: Optional[str] = None
