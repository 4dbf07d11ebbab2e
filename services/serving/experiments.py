"""Experiments: which variant (a history strategy, optionally with its own fusion settings or history length)
answers a viewer.

One TOML file (``NEXTWATCH_EXPERIMENTS``) holds every experiment (docs/experiments.md):

    [experiments.next-list]
    salt = "2026-12"
    control = "hybrid"
    variants.hybrid = { share = 0.5, strategy = "hybrid" }
    variants.sequential = { share = 0.5, strategy = "sequential", stopped = false }

A viewer's place is ``blake2b(salt, user id)`` read as a number in [0, 1); the variants own consecutive
ranges of it by their shares, the control first, then the others in the file's order, so the same viewer
always gets the same variant and a changed share moves only the viewers between the old and the new
boundary. A stopped variant's viewers get the control. The file is read again when its mtime changes; a bad
file at start is one error naming the file and the key (later, the last good one is kept and logged).

A variant may be pinned (``generation = "<id>"``) to the build generation the process serves; a process serves
one generation, so a pin to another is refused when the file is read, and after a hot reload to another
generation the pinned variant's viewers get the control (the report flags it degraded).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import tomllib
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.recommender.registry import HYBRID, REGISTRY, fusable, part_of_source, strategy_names
from services.recommender.standard import FusionConfig, build_strategies
from services.recommender.strategies import BatchStrategy
from services.serving.runtime import Runtime, history_sources_reading

log = logging.getLogger(__name__)

NAME_CHARS = 64  # experiment and variant names fit the exposure table's columns
SHARE_TOLERANCE = 1e-6
VARIANT_KEYS = frozenset({"share", "strategy", "stopped", "weights", "rank_constant", "history", "generation"})
HISTORY_LAST = (1, 200)  # a variant's history length: the bounds of NEXTWATCH_HISTORY_LAST
EXPERIMENT_KEYS = frozenset({"salt", "control", "variants"})


class ExperimentsError(ValueError):
    """The experiments file is unusable: the message names the file and the key."""


@dataclass(frozen=True)
class Variant:
    """A traffic share answered by a history strategy; `weights`/`rank_constant` re-fuse hybrid's sources;
    `history`: how many of the last movies its sources read; `generation`: the build generation it is pinned
    to (None: whichever is served)."""

    name: str
    share: float
    strategy: str
    stopped: bool = False
    weights: tuple[tuple[str, float], ...] | None = None  # (source, weight): hashable
    rank_constant: float | None = None
    history: int | None = None
    generation: str | None = None

    @property
    def own_settings(self) -> bool:
        """Whether it has fusion settings or a history length of its own (strategies of its own are made)."""
        return self.weights is not None or self.rank_constant is not None or self.history is not None


@dataclass(frozen=True)
class Experiment:
    """A named experiment: its salt, its control and its variants, control first."""

    name: str
    salt: str
    control: str
    variants: tuple[Variant, ...]

    def place(self, user_id: str) -> float:
        """The viewer's stable place in [0, 1): blake2b of (salt, user id)."""
        digest = hashlib.blake2b(f"{self.salt}\x00{user_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def assign(self, user_id: str) -> Variant:
        """The variant answering the viewer (the control when theirs is stopped)."""
        place, edge = self.place(user_id), 0.0
        chosen = self.variants[-1]
        for variant in self.variants:
            edge += variant.share
            if place < edge:
                chosen = variant
                break
        return self.variant(self.control) if chosen.stopped else chosen

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def load_experiments(path: Path, served: str | None = None) -> dict[str, Experiment]:
    """Every experiment of the file; ExperimentsError naming the file and the key of the first problem.
    `served`: the build generation the process serves (None: the flat layout), the only one a variant may pin."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExperimentsError(f"experiments file {path}: unreadable ({' '.join(str(exc).split())})") from None
    found = document.get("experiments", {})
    unknown = sorted(set(document) - {"experiments"})
    if unknown or not isinstance(found, dict):
        key = (unknown or ["experiments"])[0]
        raise ExperimentsError(f"experiments file {path}: {key}: expected [experiments.NAME] tables only")
    return {name: _experiment(path, name, body, served) for name, body in found.items()}


def _experiment(path: Path, name: str, body: Any, served: str | None) -> Experiment:
    where = f"experiments.{name}"

    def fail(key: str, message: str) -> ExperimentsError:
        return ExperimentsError(f"experiments file {path}: {where}{'.' + key if key else ''}: {message}")

    if not isinstance(body, dict):
        raise fail("", "expected a table")
    if len(name) > NAME_CHARS:
        raise fail("", f"a name of at most {NAME_CHARS} characters")
    for key in sorted(set(body) - EXPERIMENT_KEYS):
        raise fail(key, f"unknown key (known: {', '.join(sorted(EXPERIMENT_KEYS))})")
    salt, control, variants = body.get("salt"), body.get("control"), body.get("variants")
    if not isinstance(salt, str) or not salt:
        raise fail("salt", "a non-empty string is required")
    if not isinstance(variants, dict) or not variants:
        raise fail("variants", "at least one variant is required (variants.NAME = { share = ..., strategy = ... })")
    if not isinstance(control, str) or control not in variants:
        raise fail("control", f"must name one of the variants ({', '.join(variants)})")
    made = [
        _variant(lambda key, message, v=v: fail(f"variants.{v}.{key}", message), v, variants[v], served)
        for v in variants
    ]
    total = sum(v.share for v in made)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise fail("variants", f"the shares add up to {total:g}, not 1")
    ordered = tuple(sorted(made, key=lambda v: v.name != control))  # the control first, then the file's order
    return Experiment(name, salt, control, ordered)


def _variant(fail: Any, name: str, body: Any, served: str | None) -> Variant:
    if not isinstance(body, dict):
        raise fail("share", "expected a table { share = ..., strategy = ... }")
    if len(name) > NAME_CHARS:
        raise fail("share", f"a variant name of at most {NAME_CHARS} characters")
    for key in sorted(set(body) - VARIANT_KEYS):
        raise fail(key, f"unknown key (known: {', '.join(sorted(VARIANT_KEYS))})")
    generation = body.get("generation")
    if generation is not None and generation != served:
        serving = f"this server serves {served}" if served else "this data dir has no build generations"
        raise fail(
            "generation",
            f"variant {name} is pinned to build generation {str(generation)[:40]!r} but {serving}; one process "
            "serves one generation: pin it to the served one or remove the key",
        )
    share = body.get("share")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1 or math.isnan(share):
        raise fail("share", "a number from 0 to 1 is required")
    strategy = body.get("strategy")
    if strategy not in strategy_names():
        raise fail("strategy", f"{strategy!r} is no strategy (one of {', '.join(strategy_names())})")
    stopped = body.get("stopped", False)
    if not isinstance(stopped, bool):
        raise fail("stopped", "true or false")
    weights = body.get("weights")
    if weights is not None:
        if strategy != HYBRID:
            raise fail("weights", f"only a {HYBRID} variant takes fusion weights")
        if not isinstance(weights, dict) or any(
            k not in fusable() or isinstance(w, bool) or not isinstance(w, int | float) or w < 0
            for k, w in weights.items()
        ):
            raise fail("weights", f"a table of weights >= 0 of {', '.join(fusable())}")
    rank_constant = body.get("rank_constant")
    if rank_constant is not None and (
        strategy != HYBRID or isinstance(rank_constant, bool) or not isinstance(rank_constant, int | float)
    ):
        raise fail("rank_constant", f"a number, for a {HYBRID} variant only")
    history = body.get("history")
    low, high = HISTORY_LAST
    if history is not None and (
        isinstance(history, bool) or not isinstance(history, int) or not low <= history <= high
    ):
        raise fail("history", f"a whole number of movies from {low} to {high}")
    return Variant(
        name,
        float(share),
        strategy,
        stopped,
        None if weights is None else tuple((k, float(w)) for k, w in weights.items()),
        None if rank_constant is None else float(rank_constant),
        history,
        generation,
    )


@dataclass
class ExperimentBook:
    """The experiments file as last read (none configured: empty), read again when its mtime changes or
    another generation is served; `served`: the generation pins are checked against."""

    path: Path | None
    served: str | None = None
    experiments: dict[str, Experiment] = field(default_factory=dict)
    _mtime: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, path: Path | None, served: str | None = None) -> ExperimentBook:
        """The book of `path` (None: no experiments); ExperimentsError when the file is unusable."""
        book = cls(path, served)
        if path is not None:
            book._mtime = _mtime(path)
            book.experiments = load_experiments(path, served)
        return book

    def serve(self, generation: str | None) -> None:
        """Another generation is served (hot reload): the file is checked against it at the next read."""
        with self._lock:
            self.served = generation
            self._mtime = None

    def current(self) -> dict[str, Experiment]:
        """The experiments, re-read first when the file changed (a bad new file keeps the last good one)."""
        if self.path is None:
            return self.experiments
        mtime = _mtime(self.path)
        if mtime != self._mtime:
            with self._lock:
                if mtime != self._mtime:
                    self._mtime = mtime
                    try:
                        self.experiments = load_experiments(self.path, self.served)
                    except ExperimentsError as exc:
                        log.warning("%s; the experiments as last read go on", exc)
        return self.experiments

    def assign(self, user_id: str) -> tuple[Experiment, Variant] | None:
        """The first experiment of the file and the viewer's variant in it (None without experiments)."""
        current = self.current()
        if not current:
            return None
        experiment = next(iter(current.values()))
        return experiment, experiment.assign(user_id)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


# per runtime (weakly, so a reloaded build's runtime goes) and variant: the strategy made for its settings
_made: dict[int, tuple[weakref.ref[Runtime], dict[Variant, BatchStrategy | None]]] = {}
_made_lock = threading.Lock()


def variant_strategy(rt: Runtime, variant: Variant) -> BatchStrategy | None:
    """The history strategy answering a variant: the runtime's own, or (settings of its own) one made once per
    runtime and variant: hybrid re-fused by its weights, over sources reading its history length."""
    if not variant.own_settings:
        return rt.history_strategies.get(variant.strategy)
    with _made_lock:
        held = _made.get(id(rt))
        if held is None or held[0]() is not rt:
            key = id(rt)
            held = _made[key] = (weakref.ref(rt, lambda _: _made.pop(key, None)), {})
        made = held[1]
        if variant not in made:
            base = rt.settings.history
            fusion = FusionConfig(
                dict(variant.weights) if variant.weights is not None else dict(base.weights),
                rt.settings.fusion.depth,
                variant.rank_constant if variant.rank_constant is not None else base.rank_constant,
            )
            sources = rt.history_sources if variant.history is None else history_sources_reading(rt, variant.history)
            made[variant] = build_strategies(sources, fusion, facts=rt.items).get(variant.strategy)
        return made[variant]


def pinned_elsewhere(rt: Runtime, variant: Variant) -> bool:
    """Whether the variant is pinned to a generation the runtime does not serve (its viewers get the control)."""
    return variant.generation is not None and variant.generation != rt.settings.generation


def missing_parts(rt: Runtime, variant: Variant) -> list[str]:
    """The parts a variant's strategy lacks here: its answers are degraded, or (all of them) it cannot answer;
    "generation" when it is pinned to one not served."""
    if pinned_elsewhere(rt, variant):
        return ["generation"]
    strategy = variant_strategy(rt, variant)
    if strategy is None:
        spec = REGISTRY.sources.get(variant.strategy)
        return [spec.part] if spec is not None and spec.part else list(rt.missing)
    absent = getattr(strategy, "absent", [])
    return list(dict.fromkeys(part_of_source().get(s, s) for s in absent))
