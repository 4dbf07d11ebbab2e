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
   2"``), roman numerals II-XX in capitals (``"Rocky IV"``), number words two..nineteen
   (``"Ocean's Twelve"``), fractions (``"Naked Gun 2 1/2"``), ``"Part N"``/``"Part II"``, ``"Chapter N"``,
   ``"Episode N"``/``"Episode IV"``, ``"Vol. N"``, ``"Book N"``, ``"3-D"``/``"3D"``, a superscript
   ``"²"``/``"³"`` (``"Alien³"``) and, only when a subtitle follows, a bare ``"I"``
   (``"Samurai I: Musashi Miyamoto"``).  In a subtitle we only look for a prefixed marker at its start
   or end (``"Godfather: Part II"``, ``"Star Wars: Episode IV - A New Hope"``,
   ``"Rambo: First Blood Part II"``) or an arabic/roman/3-D one at its end (``"Mission: Impossible II"``).
   Years are never markers: numbers must stand alone and be at most 19, so ``"Dracula 2000"``,
   ``"2001: A Space Odyssey"`` and ``"1984"`` keep their numbers.  A base that would become empty
   (``"9"``, ``"8 1/2"``) is left alone.  A movie's first marker gives its *tag*, a number
   (``"Part II"`` = ``"2"`` = ``"II"``, ``"3-D"`` = 3); no marker, no tag.  Markers are *strong*
   (prefixed, superscript, 3-D, roman numerals of two letters or more, anything <= 3) or *weak* (arabic
   4-19, ``"V"``/``"X"``, number words from ``"four"``, ``"33 1/3"``), since weak ones are often part of a
   name: ``"Henry V"``, ``"Malcolm X"``, ``"Girl 6"``, ``"Apollo 13"``, ``"District 9"``.

4. **Series key** = the stripped base, NFKC + casefolded, ``&`` -> ``and``, every run of punctuation
   (``!``, ``.``, ``'``, ``-``, ...) turned into one space.  A leading article stays part of the key
   (``"The Mission"`` is not ``"Mission: Impossible"``), except that MovieLens often drops it on sequels
   (``"Terminator, The"`` / ``"Terminator 2: Judgment Day"``): the groups of ``"the x"`` and ``"x"``
   (also ``a``/``an``) are merged when one of them holds only titles with a marker.

5. **A candidate group (>= 2 movies with one key) is a series only if it is not just remakes**, i.e. if

   * *marker evidence*: its members carry at least two different tags ("no tag" counts as one) and
     there is a strong marker or two consecutive numbers: ``"Toy Story"``/``"2"``/``"3"``,
     ``"Ocean's Eleven"``/``"Twelve"``.  Not: ``"Apollo 13"`` next to ``"Apollo 13: To the Edge and
     Back"`` (same tag), ``"District 9"`` next to ``"District 13: Ultimatum"``, ``"Henry V"`` next to
     ``"Henry: Portrait of a Serial Killer"``, ``"Girl"`` next to ``"Girl 6"`` (weak markers only); or
   * *subtitle evidence*: at least two different subtitled titles (``"Star Trek: Generations"``,
     ``"Star Trek: Nemesis"``, ...).

   So identical titles that differ only by year (``"Hamlet"`` x 6, ``"King Kong"`` 1933/1976/2005) are
   never a series, nor is one subtitled title next to a plain one (``"Dracula"`` and
   ``"Dracula: Dead and Loving It"``).  Once a group is a series every movie with the key belongs to it,
   remakes of the original included (both ``"Ocean's Eleven"``, ``"RoboCop"`` 1987 and 2014).

6. **Output**: ``series_id = -min(movieId)``, ``movie_ids`` sorted ascending, the list sorted by the
   smallest movieId; the result does not depend on row order.  The display title is the longest run of
   leading segments (markers stripped) that all members share, spelled as in the earliest member
   (smallest year, then movieId): ``"The Godfather"``, ``"Mission: Impossible"``, ``"Star Wars"``; a
   segment keeps its marker when all members have the same one, or when it would end in a possessive
   (``"Ocean's Eleven"``, not ``"Ocean's"``).

Known limits (precision first): franchises without a shared base are missed (``"Harry Potter and the
..."``, ``"Aliens"`` next to ``"Alien"``, ``"Star Trek Into Darkness"``, ``"Rocky"`` next to only
``"Rocky V"``); a base that is a character's name groups unrelated films once two of them have subtitles
(``"Robin Hood: Prince of Thieves"`` / ``"Robin Hood: Men in Tights"``), comedians' specials
(``"George Carlin: ..."``) count as series, and an unrelated title with a strong marker still joins a plain
one (``"Hamlet 2"`` would join ``"Hamlet"``, ``"Journey 2: The Mysterious Island"`` joins
``"The Journey"``).

Speed: one pass over the rows with dicts, each distinct title parsed once; ~90,000 titles take about a
second (1.7 s CPU on a busy 2-core box).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import pandas as pd

__all__ = ["InferredSeries", "infer_series"]


@dataclass(frozen=True)
class InferredSeries:
    series_id: int  # deterministic: -(smallest movieId in the group)  (negative = inferred)
    title: str  # display title of the series, e.g. "Toy Story" / "The Godfather"
    movie_ids: tuple[int, ...]  # sorted ascending


# --------------------------------------------------------------------------------------------- regexes

_YEAR_RE = re.compile(r"\s*\(\s*(?P<year>\d{4})\s*(?:[-–]\s*(?:\d{4})?\s*)?\)\s*$")
_PAREN_RE = re.compile(r"(?<=\S)\s*\([^()]*\)")
_ARTICLES = (
    r"The|A|An|La|Le|Les|L'|L’|Il|Lo|I|Gli|El|Los|Las|Der|Die|Das|Den|Det|De|Het|Un|Une|Una|"
    r"Ein|Eine"
)
_ART_END_RE = re.compile(rf"^(?P<body>.*\S),\s*(?P<art>{_ARTICLES})\s*$")
_ART_SEP_RE = re.compile(  # "Librarian, The: The Curse of ..." -> "The Librarian: The Curse of ..."
    rf"^(?P<body>[^:]*?[^\s:]),\s*(?P<art>{_ARTICLES})(?P<rest>(?::\s|\s+[-–—]{{1,2}}\s).*)$"
)
_SEP_RE = re.compile(r"\s*:(?=\s|$)\s*|\s+[-–—]{1,2}\s+")
_ARTICLE_WORDS = frozenset({"the", "a", "an"})

_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50}
_ROMAN_2_20 = r"(?:xx|xix|xviii|xvii|xvi|xv|xiv|xiii|xii|xi|x|ix|viii|vii|vi|v|iv|iii|ii)"
_ROMAN_1_20 = rf"(?:{_ROMAN_2_20}|i)"
_ROMAN_UPPER = rf"(?-i:{_ROMAN_2_20.upper()})"  # a bare roman numeral must be written in capitals
_WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_WORD_VALUES = {w: i for i, w in enumerate(_WORDS, start=1)}
_WORDS_2_19 = "|".join(_WORDS[1:])
_WORDS_1_19 = "|".join(_WORDS)
_PREFIX = r"(?:part|pt\.?|chapter|ch\.|episode|ep\.|vol\.?|volume|book)"
_PREFIXED = rf"{_PREFIX}\s*(?:\d{{1,2}}|{_ROMAN_1_20}|{_WORDS_1_19})"
_FRACTION = r"\d{1,2}\s*(?:½|⅓|\s\d/\d)"
_ARABIC = r"(?:1\d|[2-9])"
_THREE_D = r"3-?d"
_TRAIL = r"\s*[.!?]*\s*$"
_MARKER_END_CHARS = frozenset("0123456789IVXivxDd²³½⅓")
_TAIL_CHARS = 32  # longest marker ("chapter seventeen") plus room for trailing punctuation

# base: marker as its own word at the end (or an attached superscript)
_BASE_MARKER_RE = re.compile(
    rf"(?:^|(?<=[\s,]))(?P<m>{_PREFIXED}|{_FRACTION}|{_THREE_D}|{_ARABIC}|{_ROMAN_UPPER}|{_WORDS_2_19})"
    rf"{_TRAIL}|(?<=\w)(?P<sup>[²³]){_TRAIL}",
    re.IGNORECASE,
)
# "Samurai I: Musashi Miyamoto": a bare "I" only counts when a subtitle follows
_BASE_ONE_RE = re.compile(r"(?<=\s)(?P<m>I)\s*$")
# subtitle: prefixed marker at the start or end, or a numeric/roman/3-D one at the end
_SUB_START_RE = re.compile(rf"^(?P<m>{_PREFIXED})(?=$|[\s,.:!?])", re.IGNORECASE)
_SUB_END_RE = re.compile(
    rf"(?:^|(?<=[\s,]))(?P<m>{_PREFIXED}|{_THREE_D}|{_ARABIC}|{_ROMAN_UPPER}){_TRAIL}", re.IGNORECASE
)
_NUM_IN_MARKER_RE = re.compile(rf"(\d{{1,2}})|\b({_ROMAN_1_20})\b|\b({_WORDS_1_19})\b", re.IGNORECASE)

_DIGITS_RE = re.compile(r"\d+")
_THREE_D_RE = re.compile(_THREE_D)
_PREFIX_RE = re.compile(_PREFIX)
_KEY_PUNCT_RE = re.compile(r"[\W_]+")
_WORD_CHAR_RE = re.compile(r"[^\W_]")
_POSSESSIVE_END_RE = re.compile(r"['’]s$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Marker:
    value: float  # "Part II" -> 2, "3-D" -> 3, "2 1/2" -> 2.5, "Alien³" -> 3
    strong: bool  # unambiguous sequel marker (see _marker)


def _roman(s: str) -> int:
    total, prev = 0, 0
    for ch in reversed(s.lower()):
        v = _ROMAN_VALUES[ch]
        if v < prev:
            total -= v
        else:
            total, prev = total + v, v
    return total


def _marker(text: str) -> _Marker:
    """Value and strength of a matched marker.

    Strong: prefixed ("Part 4", "Episode V"), superscript, 3-D, roman numerals of two or more letters
    ("II", "IV") and anything worth at most 3.  Weak: arabic 4-19, single-letter roman "V"/"X", number
    words from "four" and fractions from 4 on ("Girl 6", "Henry V", "Apollo 13", "Ocean's Eleven").
    """
    return _marker_of(text.strip().lower())


@lru_cache(maxsize=4096)
def _marker_of(m: str) -> _Marker:
    if m in ("²", "³"):
        return _Marker(2.0 if m == "²" else 3.0, True)
    if "½" in m or "⅓" in m or "/" in m:
        whole_part = _DIGITS_RE.match(m)
        assert whole_part is not None  # a fraction marker starts with its whole part
        whole = int(whole_part.group())
        value = whole + (0.5 if ("½" in m or "1/2" in m) else 1 / 3)
        return _Marker(value, value <= 3)
    if _THREE_D_RE.fullmatch(m):
        return _Marker(3.0, True)
    prefixed = _PREFIX_RE.match(m) is not None
    number = _NUM_IN_MARKER_RE.search(m)
    assert number is not None  # every other marker holds a number, a roman numeral or a number word
    digits, roman, word = number.groups()
    if digits:
        value = float(int(digits))
    elif roman:
        value = float(_roman(roman))
    else:
        value = float(_WORD_VALUES[word])
    strong = prefixed or value <= 3 or (roman is not None and len(roman) >= 2)
    return _Marker(value, strong)


def _key(text: str) -> str:
    s = text if text.isascii() else unicodedata.normalize("NFKC", text)
    s = s.casefold()
    if "&" in s:
        s = s.replace("&", " and ")
    return _KEY_PUNCT_RE.sub(" ", s).strip()


def _normalise_display(title: str) -> str:
    """Year and alternate titles dropped, trailing article moved to the front; original case."""
    t = " ".join(title.split())
    if t.endswith(")"):
        t = _YEAR_RE.sub("", t)
    while "(" in t:  # innermost groups first, so nested ones go too
        stripped = _PAREN_RE.sub("", t)
        if stripped == t:
            break
        t = stripped
    if "," in t:
        m = _ART_END_RE.match(t) or _ART_SEP_RE.match(t)
        if m:
            art = m["art"]
            rest = m["rest"] if "rest" in m.groupdict() else ""
            t = art + ("" if art.endswith(("'", "’")) else " ") + m["body"] + rest
    return t.strip()


def _may_end_in_marker(segment: str) -> bool:
    """Cheap pre-check before the (slower) marker regexes: can the last word be a marker at all?"""
    end = segment.rstrip(" .!?")
    if not end:
        return False
    return end[-1] in _MARKER_END_CHARS or end.rsplit(None, 1)[-1].lower() in _WORD_VALUES


def _strip_base_marker(segment: str, subtitled: bool) -> tuple[str, _Marker | None]:
    if not _may_end_in_marker(segment):
        return segment, None
    tail = max(0, len(segment) - _TAIL_CHARS)  # markers sit at the end: don't scan long titles
    m = _BASE_MARKER_RE.search(segment, tail)
    if m is None and subtitled:
        m = _BASE_ONE_RE.search(segment, tail)
    if m is None:
        return segment, None
    rest = segment[: m.start()].rstrip(" ,")
    if not _WORD_CHAR_RE.search(rest):
        return segment, None
    found = m["m"] if m["m"] is not None else m.groupdict().get("sup")
    assert found is not None  # a match has either the marker or the superscript group
    return rest, _marker(found)


def _strip_sub_marker(segment: str) -> tuple[str, _Marker | None]:
    m = _SUB_START_RE.match(segment)
    if m is not None:
        return segment[m.end() :].strip(" ,.:!?"), _marker(m["m"])
    if not _may_end_in_marker(segment):
        return segment, None
    m = _SUB_END_RE.search(segment, max(0, len(segment) - _TAIL_CHARS))
    if m is not None:
        return segment[: m.start()].rstrip(" ,"), _marker(m["m"])
    return segment, None


class _Parsed(NamedTuple):
    key: str  # series key ("" = no key)
    full_key: str  # key of the whole normalised title, to tell titles apart
    marker: _Marker | None  # the first sequel marker (base first, then subtitles)
    subtitled: bool
    segments: tuple[str, ...]  # normalised segments (original case)
    stripped: tuple[str, ...]  # the same with their sequel markers removed


_NO_TITLE = _Parsed("", "", None, False, (), ())


def _parse(title: str) -> _Parsed:
    disp = _normalise_display(title)
    if ":" in disp or " -" in disp or " –" in disp or " —" in disp:
        segments = tuple(s for s in (p.strip() for p in _SEP_RE.split(disp)) if _WORD_CHAR_RE.search(s))
    else:
        segments = (disp,) if _WORD_CHAR_RE.search(disp) else ()
    if not segments:
        return _NO_TITLE
    subtitled = len(segments) > 1
    base, marker = _strip_base_marker(segments[0], subtitled)
    stripped = [base]
    for seg in segments[1:]:
        seg_stripped, seg_marker = _strip_sub_marker(seg)
        if marker is None:
            marker = seg_marker
        stripped.append(seg_stripped)
    key = _key(base)
    if not key:
        return _NO_TITLE
    full_key = _key(disp) if subtitled else key  # only compared between subtitled titles
    return _Parsed(key, full_key, marker, subtitled, segments, tuple(stripped))


@dataclass(frozen=True)
class _Segments:
    """Display data of one series member (computed for series members only)."""

    display: tuple[str, ...]  # segments with markers stripped; empty ones dropped
    keys: tuple[str, ...]  # their keys
    raw_display: tuple[str, ...]  # the same segments with their markers
    raw_keys: tuple[str, ...]  # and their keys

    @classmethod
    def of(cls, parsed: _Parsed) -> _Segments:
        display, keys, raw_display, raw_keys = [], [], [], []
        for i, (raw, seg) in enumerate(zip(parsed.segments, parsed.stripped)):
            k = parsed.key if i == 0 else _key(seg)
            if not k:
                continue
            display.append(seg)
            keys.append(k)
            raw_display.append(raw)
            raw_keys.append(_key(raw))
        return cls(tuple(display), tuple(keys), tuple(raw_display), tuple(raw_keys))


# ------------------------------------------------------------------------------------------ grouping

_Member = tuple[int, tuple[Any, str], _Parsed]  # movieId, (year as given, title), parsed title


def _is_series(members: list[_Member]) -> bool:
    markers = [p.marker for _, _, p in members]
    values = {m.value if m is not None else None for m in markers}
    if len(values) >= 2:
        if any(m is not None and m.strong for m in markers):
            return True
        numbers = sorted(v for v in values if v is not None)
        if any(b - a == 1 for a, b in zip(numbers, numbers[1:])):
            return True
    subtitled = {p.full_key for _, _, p in members if p.subtitled}
    return len(subtitled) >= 2


def _display_title(members: list[_Member]) -> str:
    ref_member = min(members, key=lambda m: (_year(*m[1]), m[0]))
    segs = {mid: _Segments.of(p) for mid, _, p in members}
    ref = segs[ref_member[0]]
    shared = min(len(s.keys) for s in segs.values())
    n = 1
    while n < shared and all(s.keys[n] == ref.keys[n] for s in segs.values()):
        n += 1
    parts = []
    for i in range(n):
        same_raw = all(s.raw_keys[i] == ref.raw_keys[i] for s in segs.values())
        part = ref.raw_display[i] if same_raw else ref.display[i]
        if _POSSESSIVE_END_RE.search(part):  # "Ocean's Eleven" rather than "Ocean's"
            part = ref.raw_display[i]
        parts.append(part)
    return ": ".join(parts).strip()


def _year(value: Any, title: str) -> float:
    """The release year, else the one in a full MovieLens title, else +inf (sorts last)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if math.isnan(v):
        m = _YEAR_RE.search(title)
        v = float(m["year"]) if m else math.inf
    return v


def _merge_article_twins(groups: dict[str, list[_Member]]) -> None:
    """Join "the x" and "x" when one side is sequels only (MovieLens: "Terminator, The" + "Terminator 2")."""
    for key in sorted(groups):
        article, _, bare = key.partition(" ")
        if article not in _ARTICLE_WORDS or not bare or bare not in groups or key not in groups:
            continue
        with_article, without = groups[key], groups[bare]
        if all(p.marker is not None for _, _, p in without) or all(p.marker is not None for _, _, p in with_article):
            groups[key] = with_article + without
            del groups[bare]


def infer_series(movies: pd.DataFrame) -> list[InferredSeries]:
    """Group movies into series from their titles. `movies` has columns movieId (int), title (str), year (nullable int).

    See the module docstring for the rules.  Rows without a title are ignored; a movieId that appears
    several times is read once (from its row with the smallest (title, year)), so the result does not
    depend on row order.
    """
    if movies.empty:
        return []
    ids = movies["movieId"].tolist()
    titles = movies["title"].tolist()
    years = movies["year"].tolist() if "year" in movies.columns else [None] * len(ids)
    if len(set(ids)) != len(ids):
        # one row per movie, chosen independently of row order: the smallest (title, year)
        frame = pd.DataFrame({"movieId": ids, "title": titles, "year": years}, dtype=object)
        frame = frame[frame["title"].map(lambda t: isinstance(t, str))]
        frame["_y"] = pd.to_numeric(frame["year"], errors="coerce").fillna(math.inf)
        frame = frame.sort_values(["movieId", "title", "_y"], kind="stable").drop_duplicates("movieId")
        ids, titles, years = frame["movieId"].tolist(), frame["title"].tolist(), frame["year"].tolist()

    groups: dict[str, list[_Member]] = {}
    parsed_titles: dict[str, _Parsed] = {}  # remakes share a title: parse each title once
    for mid, title, year in zip(ids, titles, years):
        if not isinstance(title, str):
            continue
        parsed = parsed_titles.get(title)
        if parsed is None:
            parsed = parsed_titles[title] = _parse(title)
        if parsed.key:
            groups.setdefault(parsed.key, []).append((int(mid), (year, title), parsed))
    _merge_article_twins(groups)

    result = []
    for members in groups.values():
        if len(members) < 2 or not _is_series(members):
            continue
        movie_ids = tuple(sorted(m for m, _, _ in members))
        result.append(InferredSeries(series_id=-movie_ids[0], title=_display_title(members), movie_ids=movie_ids))
    result.sort(key=lambda s: s.movie_ids[0])
    return result
