"""Infer movie series from MovieLens titles (a stand-in until TMDB "collections" are loaded).

Works on our ingested titles (``"Toy Story 2"``, year in its own column) and on full MovieLens titles
(``"Toy Story 2 (1999)"``).  Every movie ends up in at most one series; inferred series get negative ids
so they never clash with TMDB collection ids.

Rules
-----
1. **Normalise** each title:

   * drop a trailing year ``"(1995)"`` (also ``"(2003-2005)"``), then every parenthesised alternate
     title (``"City of Lost Children, The (Cité des enfants perdus, La)"``); a title that *starts* with a
     parenthesis (``"(500) Days of Summer"``) keeps it;
   * move a trailing article back to the front: ``", The"``, ``", A"``, ``", An"`` and common foreign ones
     (``La Le Les L' Il Lo I Gli El Los Las Der Die Das Den Det De Het Un Une Una Ein Eine``), either at the
     very end (``"Godfather: Part II, The"`` -> ``"The Godfather: Part II"``) or right before the subtitle
     (``"Adventures of X, The: Y"`` -> ``"The Adventures of X: Y"``).

2. **Split** the normalised title into segments at the subtitle separators ``": "`` and ``" - "`` (a colon
   inside ``"3:10 to Yuma"`` is not a separator).  The first segment is the *base*, the others subtitles.

3. **Sequel markers.**  At the end of the base we recognise, and strip: arabic numbers 2-19 (``"Toy Story
   2"``), roman numerals II-XX (``"Rocky IV"``), number words two..nineteen (``"Ocean's Twelve"``),
   fractions (``"Naked Gun 2 1/2"``), ``"Part N"``/``"Part II"``, ``"Chapter N"``, ``"Episode N"``/
   ``"Episode IV"``, ``"Vol. N"``, ``"Book N"``, ``"3-D"``/``"3D"`` and a superscript ``"²"``/``"³"``
   (``"Alien³"``).  In a subtitle we only look for an unambiguous marker: a prefixed one at its start or
   end (``"Godfather: Part II"``, ``"Star Wars: Episode IV - A New Hope"``,
   ``"Rambo: First Blood Part II"``) or an arabic/roman/3-D marker at its end
   (``"Mission: Impossible II"``).  Years are never markers: the numbers must stand alone, be at most 19,
   and 4-digit numbers (``"Dracula 2000"``, ``"2001: A Space Odyssey"``, ``"1984"``) never match.  A base
   that would become empty (``"9"``, ``"8 1/2"``) is left alone.  Each marker is reduced to a number
   (``"Part II"`` == ``"2"``, ``"3-D"`` == 3) - the *tag* of the movie (no marker: no tag).

4. **Series key** = the stripped base, casefolded (NFKC), ``&`` -> ``and``, apostrophes removed, any
   other punctuation (``!``, ``.``, ``-``, ...) turned into spaces, spaces collapsed, one leading English
   article (``the``/``a``/``an``) dropped.  Movies with the same key form a candidate group.

5. **A candidate group (>= 2 movies) is a series only if it is not just remakes**, i.e. if either

   * *marker evidence*: its members carry at least two different tags (counting "no tag" as one),
     and the numbering is plausible: some member has no tag (the original), or the smallest number is
     1 or 2, or two numbers are consecutive.  ``"Toy Story"``/``"2"``/``"3"`` qualifies;
     ``"Apollo 13"`` next to ``"Apollo 13: To the Edge and Back"`` (same tag) and ``"District 9"`` next to
     ``"District 13: Ultimatum"`` (9 and 13, no original) do not; or
   * *subtitle evidence*: at least two different subtitled titles (``"Star Trek: Generations"``,
     ``"Star Trek: Nemesis"``, ...).

   So identical titles that differ only by year (``"Hamlet"`` x 6, ``"King Kong"`` 1933/1976/2005) are
   never a series, nor is one subtitled title next to a plain one (``"Dracula"`` and
   ``"Dracula: Dead and Loving It"``).  Every movie with the key joins the series (also remakes of the
   original, e.g. both ``"Ocean's Eleven"``).

6. **Output**: ``series_id = -min(movieId)``, ``movie_ids`` sorted, the list sorted by its smallest
   movieId; the result does not depend on row order.  The display title is the longest run of leading
   segments (markers stripped) that all members share, spelled as in the earliest member (smallest
   year, then movieId), e.g. ``"The Godfather"``, ``"Mission: Impossible"``, ``"Star Wars"``; a segment
   keeps its marker when every member has the same one (``"Men in Black"`` vs ``"Fantastic Four"``).

Known limits (by design, favouring precision): franchises without a shared base are missed
(``"Harry Potter and the ..."``, ``"Aliens"`` next to ``"Alien"``, ``"Star Trek Into Darkness"``), and an
unrelated later title with a number still joins a plain title (``"Hamlet 2"`` would join ``"Hamlet"``).
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

__all__ = ["InferredSeries", "infer_series"]


@dataclass(frozen=True)
class InferredSeries:
    series_id: int          # deterministic: -(smallest movieId in the group)  (negative = inferred)
    title: str              # display title of the series, e.g. "Toy Story" / "The Godfather"
    movie_ids: tuple[int, ...]  # sorted ascending


# --------------------------------------------------------------------------------------------- regexes

_YEAR_RE = re.compile(r"\s*\(\s*\d{4}\s*(?:[-–]\s*(?:\d{4})?\s*)?\)\s*$")
_PAREN_RE = re.compile(r"(?<=\S)\s*\([^()]*\)")
_ARTICLES = (r"The|A|An|La|Le|Les|L'|L’|Il|Lo|I|Gli|El|Los|Las|Der|Die|Das|Den|Det|De|Het|Un|Une|Una|"
             r"Ein|Eine")
_ART_END_RE = re.compile(rf"^(?P<body>.*\S),\s*(?P<art>{_ARTICLES})\s*$")
_ART_SEP_RE = re.compile(rf"^(?P<body>[^:]*?[^\s:]),\s*(?P<art>{_ARTICLES})(?P<rest>(?::\s|\s+[-–—]{{1,2}}\s).*)$")
_SEP_RE = re.compile(r"\s*:(?=\s|$)\s*|\s+[-–—]{1,2}\s+")
_SPACES_RE = re.compile(r"\s+")

_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50}
_ROMAN_2_20 = r"(?:xx|xix|xviii|xvii|xvi|xv|xiv|xiii|xii|xi|x|ix|viii|vii|vi|v|iv|iii|ii)"
_ROMAN_1_20 = rf"(?:{_ROMAN_2_20}|i)"
_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_WORD_VALUES = {w: i for i, w in enumerate(_WORDS, start=1)}
_WORDS_2_19 = "|".join(_WORDS[1:])
_WORDS_1_19 = "|".join(_WORDS)
_PREFIX = r"(?:part|pt\.?|chapter|ch\.|episode|ep\.|vol\.?|volume|book)"
_PREFIXED = rf"{_PREFIX}\s*(?:\d{{1,2}}|{_ROMAN_1_20}|{_WORDS_1_19})"
_FRACTION = r"\d{1,2}\s*(?:½|⅓|\s\d/\d)"
_ARABIC = r"(?:1\d|[2-9])"
_THREE_D = r"3-?d"
_TRAIL = r"\s*[.!?]*\s*$"

# base: marker as its own word at the end (or an attached superscript)
_BASE_MARKER_RE = re.compile(
    rf"(?:^|(?<=[\s,]))(?P<m>{_PREFIXED}|{_FRACTION}|{_THREE_D}|{_ARABIC}|{_ROMAN_2_20}|{_WORDS_2_19})"
    rf"{_TRAIL}|(?<=\w)(?P<sup>[²³]){_TRAIL}",
    re.IGNORECASE,
)
# "Samurai I: Musashi Miyamoto": a bare "I" only counts when a subtitle follows
_BASE_ONE_RE = re.compile(r"(?<=\s)(?P<m>I)\s*$")
# subtitle: prefixed marker at the start or end, or a numeric/roman/3-D one at the end
_SUB_START_RE = re.compile(rf"^(?P<m>{_PREFIXED})(?=$|[\s,.:!?])", re.IGNORECASE)
_SUB_END_RE = re.compile(
    rf"(?:^|(?<=[\s,]))(?P<m>{_PREFIXED}|{_THREE_D}|{_ARABIC}|{_ROMAN_2_20}){_TRAIL}", re.IGNORECASE
)
_NUM_IN_MARKER_RE = re.compile(rf"(\d{{1,2}})|\b({_ROMAN_1_20})\b|\b({_WORDS_1_19})\b", re.IGNORECASE)

_KEY_DROP_RE = re.compile(r"['’`´]")
_KEY_PUNCT_RE = re.compile(r"[\W_]+")
_KEY_ARTICLE_RE = re.compile(r"^(?:the|a|an) (?=\S)")


# ------------------------------------------------------------------------------------------- parsing

def _roman(s: str) -> int:
    total, prev = 0, 0
    for ch in reversed(s.lower()):
        v = _ROMAN_VALUES[ch]
        total, prev = (total - v, prev) if v < prev else (total + v, v)
    return total


def _tag(marker: str) -> float:
    """Numeric value of a sequel marker ("Part II" -> 2, "3-D" -> 3, "2 1/2" -> 2.5, "³" -> 3)."""
    m = marker.strip().lower()
    if m in ("²", "³"):
        return 2.0 if m == "²" else 3.0
    if "½" in m or "⅓" in m or "/" in m:
        whole = int(re.match(r"\d+", m).group())
        if "½" in m or "1/2" in m:
            return whole + 0.5
        return whole + 1 / 3
    found = _NUM_IN_MARKER_RE.search(m)
    if found is None:  # pragma: no cover - every marker pattern contains a number
        return 0.0
    digits, roman, word = found.groups()
    if digits:
        return float(int(digits))
    if roman:
        return float(_roman(roman))
    return float(_WORD_VALUES[word.lower()])


def _key(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).casefold().replace("&", " and ")
    s = _KEY_PUNCT_RE.sub(" ", _KEY_DROP_RE.sub("", s)).strip()
    return s


def _normalise_display(title: str) -> str:
    """Year and alternate titles dropped, trailing article moved to the front; original case."""
    t = _SPACES_RE.sub(" ", title).strip()
    t = _YEAR_RE.sub("", t)
    while True:
        stripped = _PAREN_RE.sub("", t)
        if stripped == t:
            break
        t = stripped
    t = t.strip()
    m = _ART_END_RE.match(t)
    if m:
        art = m["art"]
        t = art + ("" if art.endswith(("'", "’")) else " ") + m["body"]
    else:
        m = _ART_SEP_RE.match(t)
        if m:
            art = m["art"]
            t = art + ("" if art.endswith(("'", "’")) else " ") + m["body"] + m["rest"]
    return t


def _strip_base_marker(segment: str) -> tuple[str, float | None]:
    m = _BASE_MARKER_RE.search(segment)
    if m is None:
        return segment, None
    rest = segment[: m.start()].rstrip(" ,")
    if not _key(rest):
        return segment, None
    return rest, _tag(m["m"] or m["sup"])


def _strip_sub_marker(segment: str) -> tuple[str, float | None]:
    m = _SUB_START_RE.search(segment)
    if m is not None:
        return segment[m.end():].strip(" ,.:!?"), _tag(m["m"])
    m = _SUB_END_RE.search(segment)
    if m is not None:
        return segment[: m.start()].rstrip(" ,"), _tag(m["m"])
    return segment, None


@dataclass(frozen=True)
class _Parsed:
    key: str                          # series key ("" = no key)
    full_key: str                     # whole normalised title, for "different titles" checks
    tag: float | None                 # sequel marker value, None = no marker
    subtitled: bool
    seg_display: tuple[str, ...]      # segments (original case), markers stripped
    seg_keys: tuple[str, ...]         # keys of the stripped segments (empty ones dropped in parallel)
    seg_raw_keys: tuple[str, ...]     # keys of the unstripped segments
    seg_raw_display: tuple[str, ...]  # unstripped segments


@lru_cache(maxsize=262_144)
def _parse(title: str) -> _Parsed:
    disp = _normalise_display(title)
    segments = [s for s in _SEP_RE.split(disp) if s and s.strip()]
    if not segments:
        return _Parsed("", "", None, False, (), (), (), ())
    segments = [s.strip() for s in segments]
    base, tag = _strip_base_marker(segments[0])
    stripped = [base]
    for seg in segments[1:]:
        seg_stripped, seg_tag = _strip_sub_marker(seg)
        if tag is None and seg_tag is not None:
            tag = seg_tag
        stripped.append(seg_stripped)
    key = _KEY_ARTICLE_RE.sub("", _key(base))
    seg_display, seg_keys, seg_raw_keys, seg_raw_display = [], [], [], []
    for i, (raw, seg) in enumerate(zip(segments, stripped)):
        k = key if i == 0 else _key(seg)
        if not k:
            continue
        seg_display.append(seg)
        seg_keys.append(k)
        raw_key = _key(raw)
        seg_raw_keys.append(_KEY_ARTICLE_RE.sub("", raw_key) if i == 0 else raw_key)
        seg_raw_display.append(raw)
    full_key = " : ".join(_key(s) for s in segments)
    subtitled = any(_key(s) for s in segments[1:])
    return _Parsed(key, full_key, tag, subtitled, tuple(seg_display), tuple(seg_keys),
                   tuple(seg_raw_keys), tuple(seg_raw_display))


# ------------------------------------------------------------------------------------------ grouping

def _is_series(members: list[tuple[int, float, _Parsed]]) -> bool:
    tags = {p.tag for _, _, p in members}
    if len(tags) >= 2:
        numbers = sorted(t for t in tags if t is not None)
        if (None in tags or numbers[0] <= 2
                or any(b - a == 1 for a, b in zip(numbers, numbers[1:]))):
            return True
    subtitled = {p.full_key for _, _, p in members if p.subtitled}
    return len(subtitled) >= 2


def _display_title(members: list[tuple[int, float, _Parsed]]) -> str:
    ref = min(members, key=lambda m: (m[1], m[0]))[2]
    parsed = [p for _, _, p in members]
    common = min(len(p.seg_keys) for p in parsed)
    n = 1
    while n < common and all(p.seg_keys[n] == ref.seg_keys[n] for p in parsed):
        n += 1
    parts = []
    for i in range(n):
        same_raw = all(len(p.seg_raw_keys) > i and p.seg_raw_keys[i] == ref.seg_raw_keys[i] for p in parsed)
        parts.append(ref.seg_raw_display[i] if same_raw else ref.seg_display[i])
    return ": ".join(parts).strip()


def _year(value: Any) -> float:
    if value is None or value is pd.NA:
        return math.inf
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(v) else v


def infer_series(movies: pd.DataFrame) -> list[InferredSeries]:
    """Group movies into series from their titles. `movies` has columns movieId (int), title (str), year (nullable int).

    See the module docstring for the rules.  Rows without a title are ignored; a movieId that appears
    several times is used once (its first row after sorting by movieId and title).
    """
    if movies.empty:
        return []
    ids = movies["movieId"].to_numpy()
    titles = movies["title"].to_numpy()
    years = movies["year"].to_numpy() if "year" in movies.columns else [None] * len(movies)

    seen: dict[int, tuple[str, float]] = {}
    for movie_id, title, year in zip(ids, titles, years):
        if not isinstance(title, str) or not title.strip():
            continue
        mid = int(movie_id)
        entry = (title, _year(year))
        prev = seen.get(mid)
        if prev is None or entry < prev:
            seen[mid] = entry

    groups: dict[str, list[tuple[int, float, _Parsed]]] = {}
    for mid, (title, year) in seen.items():
        parsed = _parse(title)
        if parsed.key:
            groups.setdefault(parsed.key, []).append((mid, year, parsed))

    result = []
    for members in groups.values():
        if len(members) < 2 or not _is_series(members):
            continue
        movie_ids = tuple(sorted(m for m, _, _ in members))
        result.append(InferredSeries(series_id=-movie_ids[0], title=_display_title(members),
                                     movie_ids=movie_ids))
    result.sort(key=lambda s: s.movie_ids[0])
    return result
