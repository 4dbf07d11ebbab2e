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

A variant may be pinned (``generation = "<id>"``) to a build generation the data dir holds (a pin to one it
does not hold is refused when the file is read): it answers from that generation, opened once beside the served
one, whatever later builds serve; builds keep the pinned generations (`pinned_generations`). A pinned generation
that cannot be opened sends the variant's viewers to the control (the report flags it degraded).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import tomllib
import weakref
from collections.abc import Callable, Collection
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


def load_experiments(path: Path, held: Collection[str] = ()) -> dict[str, Experiment]:
    """Every experiment of the file; ExperimentsError naming the file and the key of the first problem.
    `held`: the build generations of the data dir, those a variant may pin."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExperimentsError(f"experiments file {path}: unreadable ({' '.join(str(exc).split())})") from None
    found = document.get("experiments", {})
    unknown = sorted(set(document) - {"experiments"})
    if unknown or not isinstance(found, dict):
        key = (unknown or ["experiments"])[0]
        raise ExperimentsError(f"experiments file {path}: {key}: expected [experiments.NAME] tables only")
    return {name: _experiment(path, name, body, held) for name, body in found.items()}


def _experiment(path: Path, name: str, body: Any, held: Collection[str]) -> Experiment:
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
        _variant(lambda key, message, v=v: fail(f"variants.{v}.{key}", message), v, variants[v], held) for v in variants
    ]
    total = sum(v.share for v in made)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise fail("variants", f"the shares add up to {total:g}, not 1")
    ordered = tuple(sorted(made, key=lambda v: v.name != control))  # the control first, then the file's order
    return Experiment(name, salt, control, ordered)


def _variant(fail: Any, name: str, body: Any, held: Collection[str]) -> Variant:
    if not isinstance(body, dict):
        raise fail("share", "expected a table { share = ..., strategy = ... }")
    if len(name) > NAME_CHARS:
        raise fail("share", f"a variant name of at most {NAME_CHARS} characters")
    for key in sorted(set(body) - VARIANT_KEYS):
        raise fail(key, f"unknown key (known: {', '.join(sorted(VARIANT_KEYS))})")
    generation = body.get("generation")
    if generation is not None and generation not in held:
        holds = ", ".join(held) if held else "none"
        raise fail(
            "generation",
            f"variant {name} is pinned to build generation {str(generation)[:40]!r}, which this data dir does not "
            f"hold (it holds: {holds})",
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
    """The experiments file as last read (none configured: empty), read again when its mtime changes;
    `held` lists the data dir's build generations (those a variant may pin), `open_generation` opens one for
    the variants pinned to a generation not served (once each, closed with the book)."""

    path: Path | None
    held: Callable[[], Collection[str]] = tuple
    open_generation: Callable[[str], Runtime] | None = None
    experiments: dict[str, Experiment] = field(default_factory=dict)
    _mtime: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pinned: dict[str, Runtime | None] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        path: Path | None,
        held: Callable[[], Collection[str]] = tuple,
        open_generation: Callable[[str], Runtime] | None = None,
    ) -> ExperimentBook:
        """The book of `path` (None: no experiments); ExperimentsError when the file is unusable."""
        book = cls(path, held, open_generation)
        if path is not None:
            book._mtime = _mtime(path)
            book.experiments = load_experiments(path, held())
        return book

    def runtime_for(self, rt: Runtime, variant: Variant) -> Runtime | None:
        """The runtime that answers a variant: `rt` (the served one), or the generation it is pinned to, opened
        at its first use; None when that cannot be opened (logged once: its viewers get the control)."""
        if not pinned_elsewhere(rt, variant) or variant.generation is None:
            return rt
        with self._lock:
            if variant.generation not in self._pinned:
                self._pinned[variant.generation] = self._open_pinned(variant.generation)
            return self._pinned[variant.generation]

    def _open_pinned(self, generation: str) -> Runtime | None:
        if self.open_generation is None:
            return None
        try:
            return self.open_generation(generation)
        except Exception as exc:  # any reason a build cannot be opened: the variant's viewers get the control
            log.error("build generation %s (pinned by an experiment) cannot be opened: %s", generation, exc)
            return None

    def close(self) -> None:
        """Close the pinned generations' runtimes."""
        with self._lock:
            for runtime in self._pinned.values():
                if runtime is not None:
                    runtime.close()
            self._pinned.clear()

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
                        self.experiments = load_experiments(self.path, self.held())
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


def missing_parts(rt: Runtime | None, variant: Variant) -> list[str]:
    """The parts a variant's strategy lacks on the runtime answering it (`ExperimentBook.runtime_for`): its
    answers are degraded, or (all of them) it cannot answer; "generation" when its pinned generation cannot be
    opened (None)."""
    if rt is None:
        return ["generation"]
    strategy = variant_strategy(rt, variant)
    if strategy is None:
        spec = REGISTRY.sources.get(variant.strategy)
        return [spec.part] if spec is not None and spec.part else list(rt.missing)
    absent = getattr(strategy, "absent", [])
    return list(dict.fromkeys(part_of_source().get(s, s) for s in absent))


def pinned_generations(path: Path | None) -> set[str]:
    """The build generations the experiments file at `path` pins (builds keep them); an unreadable file pins
    none (the server refuses it with its own message)."""
    if path is None:
        return set()
    try:
        with path.open("rb") as f:
            found = tomllib.load(f).get("experiments")
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    tables = [e.get("variants") for e in found.values() if isinstance(e, dict)] if isinstance(found, dict) else []
    variants = [v for t in tables if isinstance(t, dict) for v in t.values() if isinstance(v, dict)]
    return {v["generation"] for v in variants if isinstance(v.get("generation"), str)}
