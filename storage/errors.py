"""One clear line for a database failure: what happened, and what an operator can do.

A read-only database file, a full disk, a lock held too long or a server that cannot be
reached raise exceptions whose text carries the SQL and its parameters (decrypted command
text, phone numbers); a traceback of them in the log is both unreadable at 3 a.m. and a leak.
:func:`describe_failure` names the kind of fault, and for anything it does not know it gives
only the exception's type and the first line of its message without SQL or parameters.
"""

from __future__ import annotations

import errno

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

#: (what the driver says, in lower case) → the line for the log.
_KNOWN: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("readonly database", "read-only", "read only"),
        "the database is read-only: make the database file and its folder writable by the bot "
        "(storage.database_url), or give the database role write access",
    ),
    (
        ("database or disk is full", "no space left", "disk full", "could not extend file"),
        "the disk holding the database is full: free space there; nothing is lost, the work "
        "is done when writes succeed again",
    ),
    (
        ("database is locked", "lock timeout", "deadlock detected"),
        "the database is locked by another process: is a second bot or a backup holding it?",
    ),
    (
        ("unable to open database", "connection refused", "could not connect", "connection was"),
        "the database cannot be reached or opened: check storage.database_url and the server",
    ),
    (
        ("disk i/o error", "input/output error"),
        "the disk holding the database reports I/O errors: check the disk",
    ),
)


def is_database_fault(exc: BaseException) -> bool:
    """A fault of the database or its disk (not a bug in the code that called it): worth one
    line, not a traceback."""
    return isinstance(exc, SQLAlchemyError | OSError)


def describe_failure(exc: BaseException) -> str:
    """A one-line description of ``exc`` fit for the log and for the coordinators: never the
    SQL, never the parameters."""
    text = _message(exc).lower()
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        text += " no space left"
    if isinstance(exc, SQLAlchemyError | OSError):
        for needles, line in _KNOWN:
            if any(needle in text for needle in needles):
                return line
    if isinstance(exc, DBAPIError | OperationalError):
        return f"database error ({type(exc.orig).__name__}): {_first_line(_message(exc))}"
    return f"{type(exc).__name__}: {_first_line(str(exc))}" if str(exc) else type(exc).__name__


def _message(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig)
    return str(exc)


def _first_line(text: str) -> str:
    """The message's first line without SQLAlchemy's ``[SQL: …]``/``[parameters: …]``."""
    line = text.splitlines()[0] if text else ""
    for marker in ("[SQL:", "[parameters:", "(Background on this error"):
        line = line.split(marker)[0]
    return line.strip()[:200]
