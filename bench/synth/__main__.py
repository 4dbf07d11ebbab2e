"""`python -m bench.synth --scale 32m --out DIR`: write a synthetic release in the MovieLens 32M format."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from bench.synth.synth import SCALES, synthesize

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="directory to write the release into")],
    scale: Annotated[str, typer.Option(help="32m | 1m | 100k | tiny")] = "32m",
    seed: Annotated[int, typer.Option(help="random seed: the same seed writes the same bytes")] = 42,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bars")] = False,
) -> None:
    """Write a synthetic release (ratings, movies, links, TMDB metadata) in the MovieLens 32M format."""
    if scale not in SCALES:
        typer.secho(f"error: unknown scale {scale!r}: choose one of {', '.join(SCALES)}", fg="red", err=True)
        raise typer.Exit(code=1)
    started = time.perf_counter()
    try:
        synthesize(scale, out, seed=seed, progress=not quiet)
    except OSError as exc:
        typer.secho(f"error: cannot write {out}: {exc}", fg="red", err=True)
        raise typer.Exit(code=1) from None
    spec = SCALES[scale]
    typer.echo(
        f"synth: {spec.ratings:,} ratings, {spec.users:,} users, {spec.movies:,} movies ({scale}, seed {seed}) "
        f"in {out} in {time.perf_counter() - started:.1f} s; next: nextwatch ingest --source {out}",
        err=True,
    )


if __name__ == "__main__":
    app()
