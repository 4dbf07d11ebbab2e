"""The error a store raises when a file the build wrote is missing or unreadable."""

from __future__ import annotations

from pathlib import Path

LOGGED_CHARS = 1000  # the most of a failed call's message one log line holds


class ArtifactError(RuntimeError):
    """A build artifact is missing or unreadable; the message names it and the command that rebuilds it."""


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type when the message is empty), for a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def logged(exc: BaseException) -> str:
    """An exception's message on one line, cut to LOGGED_CHARS, for a log line only (a driver's message may hold
    SQL and its parameters: answers name the error's type)."""
    return " ".join(str(exc).split())[:LOGGED_CHARS]


def retrain_command(model_dir: Path) -> str:
    """The command that trains a model of the set in `model_dir` again (``models/<set>/<model>``)."""
    return "nextwatch evaluate" if model_dir.parent.name == "evaluation" else "nextwatch train --force"
