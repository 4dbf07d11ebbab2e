"""What a failed `nextwatch` command prints: one line naming the problem and the command that fixes it.

Our own errors already name their fix (``run `nextwatch ...```) and are shown as they are; the known
failures of the libraries underneath (a damaged SQLite file, parquet, zip or JSON) get the fix added;
anything else is a bug, shown as its type and message with a pointer to ``--debug`` for the traceback.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from services.stores.errors import reason

DEBUG_HINT = "rerun `nextwatch --debug ...` for the traceback"


def one_line(exc: BaseException) -> str:
    """The `error: ...` line (without the prefix) for an exception that stopped a command."""
    if isinstance(exc, SQLAlchemyError):
        return _catalog_error(exc)
    message = " ".join(str(exc).split()) or type(exc).__name__
    if "`nextwatch " in message:
        return message
    import pyarrow as pa

    from pipelines.data_lock import DataDirNotWritable
    from pipelines.ingest.release import IngestError
    from services.serving.experiments import ExperimentsError
    from services.stores.vectors import VectorStoreError, VectorStoreLocked

    if isinstance(exc, (DataDirNotWritable, ExperimentsError)):  # the volume or the file named fixes it
        return message
    if isinstance(exc, IngestError):
        return f"{message}: check the MovieLens source (`nextwatch ingest --source SOURCE` or NEXTWATCH_SOURCE)"
    if isinstance(exc, VectorStoreLocked):
        return f"{message} (a running `nextwatch serve` holds it)"
    if isinstance(exc, VectorStoreError):
        return f"{message} (`nextwatch embed --recreate`)"

    if isinstance(exc, pa.ArrowException):
        return f"an ingested parquet file is unreadable ({message}): run `nextwatch ingest --force`"
    if isinstance(exc, sqlite3.DatabaseError):
        return f"a SQLite file in the data dir is unreadable ({message}): move it aside and run `nextwatch build`"
    if isinstance(exc, (zipfile.BadZipFile, json.JSONDecodeError)):
        return f"a file in the data dir is unreadable ({type(exc).__name__}: {message}): run `nextwatch build --force`"
    return f"{type(exc).__name__}: {message} ({DEBUG_HINT})"


def _catalog_error(exc: SQLAlchemyError) -> str:
    """A catalog database error, with where the catalog is (never its password) and what fixes it."""
    why = reason(getattr(exc, "orig", None) or exc)
    where, sqlite = _catalog_location()
    if "no such table" in why:
        return f"the catalog {where} has no tables yet ({why}): run `nextwatch catalog`"
    if sqlite:
        return f"the catalog {where} is unreadable ({why}): move it aside and run `nextwatch catalog`"
    return f"cannot use the catalog {where} ({why}): check NEXTWATCH_DATABASE_URL, then run `nextwatch catalog`"


def _catalog_location() -> tuple[str, bool]:
    """The catalog's file (SQLite) or URL with the password hidden, and whether it is SQLite."""
    from services.settings import Settings
    from services.stores.generations import resolve_generation

    try:
        url = make_url(resolve_generation(Settings()).catalog_url)
    except Exception:  # the settings themselves are broken: say less
        return "database", False
    if url.get_backend_name() == "sqlite":
        return f"at {url.database}", True
    return f"at {url.render_as_string(hide_password=True)}", False
