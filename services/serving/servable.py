"""Whether a data dir can be served yet: checked by `serve` before it starts its workers, without importing the
runtime (most of a second of imports the parent of the workers would never use)."""

from __future__ import annotations

from services.settings import Settings
from services.stores.generations import resolve_generation


def check_servable(settings: Settings) -> str | None:
    """Why the data dir cannot be served yet (naming the command that fixes it), or None."""
    if not settings.ratings_path.exists():
        return f"nothing built in {settings.data_dir}: run `nextwatch build` first"
    return missing_evaluation_build(resolve_generation(settings))


def missing_evaluation_build(settings: Settings) -> str | None:
    """With ``serve_models="evaluation"``: why the evaluation build cannot be served (a model missing), or None."""
    if settings.serve_models != "evaluation":
        return None
    from services.recommender.registry import REGISTRY  # the sources and their stores: only this case needs them

    directory = settings.models_dir(evaluation=True)
    if not all(spec.store.exists(directory / spec.name) for spec in REGISTRY.models.values()):
        return f"no evaluation build in {directory}: run `nextwatch evaluate` first"
    return None
