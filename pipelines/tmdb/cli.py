"""`nextwatch tmdb ...`: Korean TMDB metadata fetched at the rate limit (resumable) or imported from a dump.

Whatever stops a command (no catalog, no credentials, a damaged checkpoint, an unreadable dump) is one
line on stderr naming the problem and the command that fixes it, and a non-zero exit: no traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pipelines.data_lock import writing
from services.settings import Settings
from services.stores.generations import resolve_generation

if TYPE_CHECKING:
    from pipelines.tmdb.fetcher import Kind
    from services.stores.catalog import Catalog

tmdb_app = typer.Typer(
    help="Korean TMDB metadata (titles, overviews, taglines, posters, collections as real series): "
    "fetch it from the API at the rate limit, resumably, or import a dump.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Limit = Annotated[Optional[int], typer.Option("--limit", min=0, help="fetch only the first N missing ids")]
Concurrency = Annotated[
    Optional[int],
    typer.Option("--concurrency", min=1, help="requests in flight (default: NEXTWATCH_TMDB_CONCURRENCY or 8)"),
]
RateLimit = Annotated[
    Optional[float],
    typer.Option("--rate-limit", min=0.01, help="requests per second (default: NEXTWATCH_TMDB_RATE_LIMIT or 40)"),
]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="also fetch again the ids that failed before")]
Apply = Annotated[bool, typer.Option("--apply/--no-apply", help="write the fetched records into the catalog")]
Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bar")]


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _say(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """What stops a command becomes `error: ...` and exit code 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.tmdb.errors import TmdbError
    from pipelines.tmdb.mapping import DumpError

    try:
        yield
    except (TmdbError, DumpError, ValueError, OSError) as exc:
        _fail(" ".join(str(exc).split()) or type(exc).__name__)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        _fail(f"cannot use the catalog ({reason}): check NEXTWATCH_DATABASE_URL, or run `nextwatch catalog`")


@contextmanager
def _catalog(settings: Settings, command: str) -> Iterator[Catalog]:
    """The catalog, opened under the data dir's writer lock (held for the block) once it is known to exist."""
    from sqlalchemy.engine import make_url

    from services.stores.catalog import Catalog

    url = make_url(settings.catalog_url)
    if (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(url.database).exists()
    ):
        _fail(
            f"no catalog at {url.database}: run `nextwatch build` (or `nextwatch ingest` then "
            "`nextwatch catalog`) first"
        )
    with writing(settings.data_dir, command):
        catalog = Catalog(settings.catalog_url)
        try:
            catalog.create_schema()
            if catalog.count_movies() == 0:
                _fail("the catalog is empty: run `nextwatch catalog` first")
            yield catalog
        finally:
            catalog.close()


@contextmanager
def _quiet_http_log() -> Iterator[None]:
    """httpx logs every request at INFO: too chatty next to a progress bar (and it would show URLs)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        logger.setLevel(level)


def _run_fetch(
    kind: Kind,
    wanted: list[int],
    settings: Settings,
    *,
    limit: int | None,
    retry_failed: bool,
    concurrency: int | None,
    rate_limit: float | None,
    quiet: bool,
) -> None:
    from pipelines.tmdb.checkpoint import Checkpoint
    from pipelines.tmdb.runs import fetch_sync

    path = settings.tmdb_checkpoint_path if kind == "movie" else settings.tmdb_collections_checkpoint_path
    try:
        with _quiet_http_log():
            summary = fetch_sync(
                settings,
                kind,
                wanted,
                limit=limit,
                retry_failed=retry_failed,
                concurrency=concurrency,
                rate_limit=rate_limit,
                progress=not quiet,
            )
    except KeyboardInterrupt:
        saved = len(Checkpoint(path).statuses())
        _fail(f"interrupted: {saved:,} records are safe in {path}; run the same command again to resume", code=130)
        return
    _say(summary.describe())
    if summary.failed_total:
        _say(f"tmdb: {summary.failed_total:,} ids failed; `--retry-failed` fetches them again")


@tmdb_app.command()
def fetch(
    limit: Limit = None,
    concurrency: Concurrency = None,
    rate_limit: RateLimit = None,
    retry_failed: RetryFailed = False,
    apply: Apply = True,
    quiet: Quiet = False,
) -> None:
    """Fetch every catalog movie with a TMDB id (ko-KR + translations), resumably, then load the catalog.

    Auth: TMDB_READ_ACCESS_TOKEN (preferred) or TMDB_API_KEY from the environment or .env.
    Records go to <data_dir>/tmdb/movies.jsonl as they arrive; a rerun fetches only what is missing.
    """
    _fetch_and_apply(
        "movie",
        lambda settings, catalog: [tmdb_id for _, tmdb_id in catalog.movies_with_tmdb_id()],
        "no catalog movie has a TMDB id (MovieLens links.csv tmdbId)",
        limit=limit,
        retry_failed=retry_failed,
        concurrency=concurrency,
        rate_limit=rate_limit,
        apply=apply,
        quiet=quiet,
    )


@tmdb_app.command()
def collections(
    limit: Limit = None,
    concurrency: Concurrency = None,
    rate_limit: RateLimit = None,
    retry_failed: RetryFailed = False,
    apply: Apply = True,
    quiet: Quiet = False,
) -> None:
    """Fetch each real series' TMDB collection (ko-KR) for its Korean name and full member list."""
    from pipelines.tmdb.runs import collection_ids

    _fetch_and_apply(
        "collection",
        collection_ids,
        "no TMDB collection known yet: run `nextwatch tmdb fetch` (or `tmdb import`) first",
        limit=limit,
        retry_failed=retry_failed,
        concurrency=concurrency,
        rate_limit=rate_limit,
        apply=apply,
        quiet=quiet,
    )


def _fetch_and_apply(
    kind: Kind,
    wanted_ids: Callable[[Settings, Catalog], list[int]],
    none_wanted: str,
    *,
    apply: bool,
    **options: Any,
) -> None:
    """`tmdb fetch` / `tmdb collections`: check the credentials, fetch the wanted ids of `kind` into its
    checkpoint (under the writer lock), then load the checkpoints into the catalog unless `apply` is off."""
    from pipelines.tmdb.credentials import Credentials
    from pipelines.tmdb.runs import apply_checkpoints

    settings = resolve_generation(Settings())
    command = "tmdb fetch" if kind == "movie" else "tmdb collections"
    with _one_line_errors(), _catalog(settings, command) as catalog:
        Credentials.from_settings(settings)  # before any work
        wanted = wanted_ids(settings, catalog)
        if not wanted:
            _fail(none_wanted)
        _run_fetch(kind, wanted, settings, **options)
        if apply:
            _report_apply(apply_checkpoints(settings, catalog))


@tmdb_app.command("import")
def import_(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="a .jsonl checkpoint (ours) or a Kaggle-style TMDB movies .csv",
        ),
    ],
    language: Annotated[
        Optional[str],
        typer.Option(
            "--language",
            help="language of the dump's title/overview/tagline: ko or en (default: ko for .jsonl, en for .csv)",
        ),
    ] = None,
) -> None:
    """Load TMDB metadata from a dump instead of the API (idempotent). Pickles are refused: unsafe."""
    from pipelines.tmdb.apply import apply_records
    from pipelines.tmdb.checkpoint import Checkpoint
    from pipelines.tmdb.mapping import read_dump
    from pipelines.tmdb.runs import merge_ko_records, movielens_titles

    settings = resolve_generation(Settings())
    with _one_line_errors(), _catalog(settings, "tmdb import") as catalog:
        dump = read_dump(path, language)
        ours = dump.format == "jsonl" and dump.language == "ko"
        if ours:
            Checkpoint(settings.tmdb_checkpoint_path).statuses()  # a damaged checkpoint stops us before any write
        result = apply_records(catalog, dump.ok_payloads(), language=dump.language, movies=movielens_titles(settings))
        if ours:
            # our own records: later `tmdb fetch` runs need not fetch them again
            merged = merge_ko_records(settings.tmdb_checkpoint_path, dump)
            if merged:
                _say(f"import: {merged:,} records added to the checkpoint {settings.tmdb_checkpoint_path}")
    _say(
        f"import: {dump.records:,} records read from {path.name} ({dump.format}, {dump.language})"
        + (f", {dump.skipped:,} unusable lines skipped" if dump.skipped else "")
    )
    _report_apply(result)


@tmdb_app.command()
def repair() -> None:
    """Set the unreadable lines of the TMDB checkpoints aside (<name>.rejected); their ids are fetched again."""
    from pipelines.tmdb.checkpoint import Checkpoint

    settings = resolve_generation(Settings())
    with _one_line_errors():
        for path in (settings.tmdb_checkpoint_path, settings.tmdb_collections_checkpoint_path):
            if path.exists():
                with writing(settings.data_dir, "tmdb repair"):
                    rejected = Checkpoint(path).repair()
                aside = f", set aside in {path.name}.rejected" if rejected else ""
                _say(
                    f"repair: {path}: {rejected:,} unreadable lines{aside}; "
                    f"{len(Checkpoint(path).statuses()):,} records kept"
                )


def _report_apply(result) -> None:
    inferred = "" if result.inferred_series is None else f"; {result.inferred_series:,} inferred series remain"
    _say(
        f"catalog: {result.movies:,} movies updated from {result.records:,} TMDB records "
        f"({result.unmatched:,} not in the catalog), {result.series:,} real series, "
        f"{result.english_overviews:,} English overviews, {result.no_overview:,} without overview{inferred}"
    )
