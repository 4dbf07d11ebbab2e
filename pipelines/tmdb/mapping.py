"""TMDB records -> catalog rows (seed 002's `movie`/`series` semantics), and the dump importers.

A *record* is what `GET /3/movie/{id}?language=ko-KR&append_to_response=translations` returns: the
top-level fields come from the Korean translation where TMDB has one, and ``translations.translations[]``
carries every translation (``iso_639_1`` + ``data.title/overview/tagline``), so one request gives both
the Korean text and the English fallback.  Rules:

* ``movie_title``: the Korean title, else ``original_title``;
* ``overview``/``tagline``: Korean, else English; ``overview_language`` says which ('ko' or 'en');
* ``belongs_to_collection`` -> a real ``series`` row (``series_id`` = TMDB collection id, title as TMDB
  gives it for ko-KR) and ``movie.series_id``.  Real series always win over inferred (negative) ones.

When a record carries a ``translations`` list, a language's text is taken from its own entry; TMDB
fills a missing Korean *title* with the English one at the top level, so there a top-level text counts
as Korean only when it is written in Hangul.  Records without translations (dumps) are trusted to be in
the language the dump was written in.  `pipelines.tmdb.apply` writes mapped records into the catalog.

Dumps: our own JSON Lines checkpoint (see `pipelines.tmdb.checkpoint`) or a Kaggle-style "TMDB movies" CSV.  A
pickle (the seed's ``tmdb_movie_info_kr.pkl``) is refused: unpickling runs arbitrary code.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

LANGUAGES = ("ko", "en")
# TMDB request language -> the language of a record's top-level text
REQUEST_LANGUAGES = {"ko-KR": "ko", "en-US": "en"}

# checkpoint record statuses (one JSON object per line: tmdb_id, status, fetched_at, data | error)
OK, NOT_FOUND, FAILED = "ok", "not_found", "failed"
STATUSES = (OK, NOT_FOUND, FAILED)

# catalog column widths (seed 002's VARCHAR2 sizes)
_WIDTHS = {
    "movie_title": 500,
    "original_title": 500,
    "original_language": 16,
    "poster_path": 200,
    "tagline": 1000,
    "imdb_id": 20,
    "series_title": 500,
}
# movie columns a TMDB record writes
MOVIE_FIELDS = (
    "movie_title",
    "original_title",
    "original_language",
    "overview",
    "overview_language",
    "tagline",
    "poster_path",
    "release_date",
    "runtime",
    "imdb_id",
    "adult",
)
_MAX_COLLECTION_TEXT = 10_000


class DumpError(ValueError):
    """A dump that cannot be imported (unknown or unsafe format, missing columns)."""


# ---- one record ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappedMovie:
    """The catalog view of one TMDB movie record (no movie_id yet: one tmdb id may be several movies)."""

    tmdb_id: int
    fields: dict[str, Any]  # MOVIE_FIELDS
    series_id: int | None
    series_title: str | None

    @property
    def overview_language(self) -> str | None:
        return self.fields["overview_language"]


def map_movie(record: Mapping[str, Any], language: str = "ko") -> MappedMovie:
    """Catalog fields of one TMDB movie record whose top-level text is in `language` ('ko' or 'en')."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
    tmdb_id = to_int(record.get("id"))
    if tmdb_id is None or tmdb_id <= 0:
        raise ValueError("a TMDB record needs a positive integer id")
    original_title = to_text(record.get("original_title"))
    title_ko = _localized(record, "title", "ko", language)
    title_en = _localized(record, "title", "en", language)
    overview, overview_language = _first(
        (_localized(record, "overview", "ko", language), "ko"), (_localized(record, "overview", "en", language), "en")
    )
    tagline, _ = _first(
        (_localized(record, "tagline", "ko", language), "ko"), (_localized(record, "tagline", "en", language), "en")
    )
    runtime = to_int(record.get("runtime"))
    series = _collection(record.get("belongs_to_collection"))
    fields = {
        "movie_title": clip("movie_title", title_ko or original_title or title_en or to_text(record.get("title"))),
        "original_title": clip("original_title", original_title),
        "original_language": clip("original_language", to_text(record.get("original_language"))),
        "overview": overview,
        "overview_language": overview_language,
        "tagline": clip("tagline", tagline),
        "poster_path": clip("poster_path", to_text(record.get("poster_path"))),
        "release_date": _date(record.get("release_date")),
        "runtime": runtime if runtime and runtime > 0 else None,
        "imdb_id": clip("imdb_id", to_text(record.get("imdb_id"))),
        "adult": "Y" if _bool(record.get("adult")) else "N",
    }
    return MappedMovie(
        tmdb_id=tmdb_id,
        fields=fields,
        series_id=series[0] if series else None,
        series_title=clip("series_title", series[1]) if series else None,
    )


def overview_language(record: Mapping[str, Any], language: str = "ko") -> str | None:
    """'ko', 'en' or None: which language the catalog overview of this record will be in."""
    try:
        return map_movie(record, language).overview_language
    except ValueError:
        return None


def _translation(record: Mapping[str, Any], lang: str) -> Mapping[str, Any] | None:
    """The `data` of the record's translation into `lang` (KR/US first), or None."""
    translations = record.get("translations")
    entries = translations.get("translations") if isinstance(translations, Mapping) else None
    if not isinstance(entries, list):
        return None
    preferred = {"ko": "KR", "en": "US"}.get(lang)
    found = [
        e
        for e in entries
        if isinstance(e, Mapping) and e.get("iso_639_1") == lang and isinstance(e.get("data"), Mapping)
    ]
    found.sort(key=lambda e: e.get("iso_3166_1") != preferred)
    # the first entry with any text wins per field, so merge in preference order
    merged: dict[str, Any] = {}
    for entry in found:
        for key, value in entry["data"].items():
            if not to_text(merged.get(key)):
                merged[key] = value
    return merged if found else None


def _has_translations(record: Mapping[str, Any]) -> bool:
    translations = record.get("translations")
    return isinstance(translations, Mapping) and isinstance(translations.get("translations"), list)


def _localized(record: Mapping[str, Any], key: str, lang: str, top_language: str) -> str | None:
    """`key` in `lang`: from the record's translation, else from the top level when it is in `lang`.

    With a translations list, a top-level text without a ko entry counts as Korean only if it is
    written in Hangul (TMDB fills an untranslated title with the English one).
    """
    translation = _translation(record, lang)
    if translation is not None and to_text(translation.get(key)):
        return to_text(translation.get(key))
    top = to_text(record.get(key)) if top_language == lang else None
    if top and (not _has_translations(record) or (lang == "ko" and _has_hangul(top))):
        return top
    return None


def _has_hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f" for ch in text)


def _collection(value: Any) -> tuple[int, str] | None:
    """(collection id, name) from a `belongs_to_collection` dict or its JSON-ish/Python-literal text."""
    if isinstance(value, str):
        value = parse_collection_text(value)
    if not isinstance(value, Mapping):
        return None
    collection_id = to_int(value.get("id"))
    if collection_id is None or collection_id <= 0:
        return None
    return collection_id, to_text(value.get("name")) or f"TMDB collection {collection_id}"


def parse_collection_text(text: str) -> Mapping[str, Any] | None:
    """A CSV cell like ``{"id": 10, "name": "..."}`` or ``{'id': 10, ...}``: json, then literal_eval."""
    text = (text or "").strip()
    if not text or text.lower() in ("nan", "none", "null") or len(text) > _MAX_COLLECTION_TEXT:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)  # literals only: never eval
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, Mapping) else None


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str | None]:
    for value, lang in candidates:
        if value:
            return value, lang
    return None, None


def to_text(value: Any) -> str | None:
    """`value` as stripped text; None for None, NaN or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def clip(column: str, value: str | None) -> str | None:
    """`value` cut to the width of its catalog `column`."""
    return value[: _WIDTHS[column]] if value else value


def to_int(value: Any) -> int | None:
    """`value` as an integer when it is one (1, "1", 1.0); None otherwise (booleans, fractions, non-numbers)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "y", "yes", "t")
    return bool(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else False


def _date(value: Any) -> date | None:
    text = to_text(value)
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


# ---- dumps ------------------------------------------------------------------------------------


def slim_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A movie payload without the translations the catalog never reads (TMDB sends dozens of languages)."""
    out = dict(payload)
    translations = out.get("translations")
    if isinstance(translations, Mapping) and isinstance(translations.get("translations"), list):
        kept = [t for t in translations["translations"] if isinstance(t, Mapping) and t.get("iso_639_1") in LANGUAGES]
        out["translations"] = {**translations, "translations": kept}
    return out


def checkpoint_record(obj: Any, default_language: str = "ko") -> dict[str, Any] | None:
    """A checkpoint-shaped record from one JSON Lines object (ours, or a bare TMDB payload); None if unusable."""
    if not isinstance(obj, Mapping):
        return None
    if "status" in obj:
        tmdb_id = to_int(obj.get("tmdb_id"))
        status = obj.get("status")
        if tmdb_id is None or status not in STATUSES:
            return None
        record = {k: obj[k] for k in ("tmdb_id", "status", "fetched_at", "language", "data", "error") if k in obj}
        record["tmdb_id"] = tmdb_id
        if status == OK and not isinstance(obj.get("data"), Mapping):
            return None
        return record
    tmdb_id = to_int(obj.get("id"))
    if tmdb_id is None or tmdb_id <= 0:
        return None
    return {"tmdb_id": tmdb_id, "status": OK, "language": _request_language(default_language), "data": dict(obj)}


def _request_language(language: str) -> str:
    return "en-US" if language == "en" else "ko-KR"


@dataclass
class Dump:
    """A dump, read lazily: iterating streams checkpoint-shaped records (a later record of an id wins).

    `records` and `skipped` count what the last full iteration saw.
    """

    path: Path
    format: str  # "jsonl" | "csv"
    language: str  # language of the records' top-level text ('ko' | 'en')
    records: int = 0
    skipped: int = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.records = self.skipped = 0
        source = self._jsonl() if self.format == "jsonl" else self._csv()
        for record in source:
            if record is None:
                self.skipped += 1
                continue
            self.records += 1
            yield record

    def ok_payloads(self) -> Iterator[dict[str, Any]]:
        return iter_ok_payloads(self)

    def _jsonl(self) -> Iterator[dict[str, Any] | None]:
        with _text(self.path, "utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = checkpoint_record(json.loads(line), self.language)
                except ValueError:
                    record = None
                if record is not None and record["status"] == OK:
                    language = REQUEST_LANGUAGES.get(record.get("language", ""), self.language)
                    if language != self.language:
                        raise DumpError(
                            f"{self.path.name} has {language!r} records in a {self.language!r} import; "
                            "import each language separately (--language)"
                        )
                yield record

    def _csv(self) -> Iterator[dict[str, Any] | None]:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with _text(self.path, "utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "id" not in reader.fieldnames:
                raise DumpError(f"{self.path.name} has no 'id' column (expected {', '.join(CSV_COLUMNS)})")
            for row in reader:
                tmdb_id = to_int((row.get("id") or "").strip())
                if tmdb_id is None or tmdb_id <= 0:
                    yield None  # the public dumps have a few shifted rows
                    continue
                payload: dict[str, Any] = {
                    "id": tmdb_id,
                    **{
                        c: to_text(row.get(c))
                        for c in (
                            "title",
                            "original_title",
                            "original_language",
                            "overview",
                            "tagline",
                            "release_date",
                            "imdb_id",
                            "poster_path",
                        )
                    },
                    "runtime": to_int(to_text(row.get("runtime"))),
                    "adult": _bool(row.get("adult")),
                    "belongs_to_collection": parse_collection_text(row.get("belongs_to_collection") or ""),
                }
                yield {"tmdb_id": tmdb_id, "status": OK, "language": _request_language(self.language), "data": payload}


# a Kaggle-style "TMDB movies" CSV: only `id` is required; genres are ignored (MovieLens genres stay)
CSV_COLUMNS = (
    "id",
    "title",
    "original_title",
    "original_language",
    "overview",
    "tagline",
    "release_date",
    "runtime",
    "adult",
    "imdb_id",
    "poster_path",
    "belongs_to_collection",
    "genres",
)


@contextmanager
def _text(path: Path, encoding: str, newline: str | None = None) -> Iterator[TextIO]:
    """A dump opened as text; DumpError naming it and what is expected when it is not UTF-8 text."""
    try:
        with path.open(encoding=encoding, newline=newline) as handle:
            yield handle
    except UnicodeDecodeError as exc:
        raise DumpError(
            f"{path} is not UTF-8 text ({exc.reason}: byte 0x{exc.object[exc.start]:02x}): expected a .jsonl "
            "checkpoint (one TMDB movie record per line) or a Kaggle-style TMDB movies .csv, in UTF-8"
        ) from None


def _first_language(path: Path) -> str | None:
    """The language of the first ok record of a JSON Lines dump that names one."""
    with _text(path, "utf-8") as handle:
        for line in handle:
            try:
                record = checkpoint_record(json.loads(line))
            except ValueError:
                continue
            if record is not None and record["status"] == OK and record.get("language") in REQUEST_LANGUAGES:
                return REQUEST_LANGUAGES[record["language"]]
    return None


def read_dump(path: Path, language: str | None = None) -> Dump:
    """Open a dump by its extension: .jsonl/.ndjson/.json (JSON Lines) or .csv; pickles are refused.

    `language` is what the dump's top-level title/overview/tagline are in; by default the language
    our checkpoint records name (ko-KR), 'ko' for other JSON Lines and 'en' for a CSV.
    """
    suffix = path.suffix.lower()
    if language is not None and language not in LANGUAGES:
        raise DumpError(f"language must be one of {LANGUAGES}, not {language!r}")
    if suffix in (".pkl", ".pickle"):
        raise DumpError(
            f"{path.name} is a pickle: loading one can run arbitrary code, so it is not imported. Convert it "
            "with a script you trust into JSON Lines (one TMDB movie record per line) or a CSV, then import that."
        )
    if suffix in (".jsonl", ".ndjson", ".json"):
        return Dump(path, "jsonl", language or _first_language(path) or "ko")
    if suffix == ".csv":
        return Dump(path, "csv", language or "en")
    raise DumpError(f"unknown dump format {suffix or '(no extension)'}: expected .jsonl or .csv")


def iter_ok_payloads(records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The TMDB payloads of the ok records of a checkpoint."""
    for record in records:
        if record.get("status") == OK and isinstance(record.get("data"), Mapping):
            yield dict(record["data"])
