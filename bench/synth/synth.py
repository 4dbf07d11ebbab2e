"""Synthetic MovieLens-32M-shaped data, for benchmarking every stage at full size without the download.

``synthesize("32m", out_dir)`` writes four files in the GroupLens ``ml-32m`` formats:

* ``ratings.csv`` - ``userId,movieId,rating,timestamp``, sorted by user, then time (then movieId); half
  stars ``0.5``..``5.0`` (whole stars only before February 2003, when MovieLens introduced half stars);
* ``movies.csv`` - ``movieId,title,genres`` with ``"Title (1999)"`` titles, trailing articles
  (``"Dark Forest 2, The (2003)"``), CSV quoting where needed and the real MovieLens genre names;
* ``links.csv`` - ``movieId,imdbId,tmdbId`` (imdbId zero-padded to 7 digits, a few tmdbIds missing);
* ``tmdb_metadata.csv`` - a Kaggle "TMDB movies"-style table with Korean-looking titles and overviews,
  ``belongs_to_collection`` (JSON) for series members and TMDB ``genres`` (JSON).

Exact sizes: the scale's number of rating rows, distinct users and distinct movies (every movie of
``movies.csv`` is rated; every user has >= 20 ratings).

How the ratings are generated (everything vectorised with numpy, per chunk of users):

1. *Catalogue.*  Movies get a release date (more movies per year in recent decades), a heavy-tailed
   popularity weight (log-normal), a taste cluster (their main genre) and a quality.  A few thousand
   series (2-8 members, released in order, ``"Base"``, ``"Base 2"``, ``"Base: Subtitle"``) get popular
   weights that decay along the series.  The internal movie index is the release order, so "movies
   released by time t" is an index prefix and a weighted draw among them is one ``searchsorted``.
2. *Users.*  Activity is log-normal (min 20, median ~90, a cap of a few thousand), scaled to the exact
   total.  Each user signs up at a time drawn from a yearly profile (1995-2023) - never so early that
   too few movies exist for their ratings - and rates in a few sessions (a big first one, then fewer),
   with seconds-apart ratings inside a session (about one in eight shares the previous second).
3. *Movies per rating.*  Each rating draws a movie released by its timestamp: mostly by popularity, 30%
   among the last two years' releases, ~35% within the user's one or two favourite clusters.
4. *Series.*  After a series member, the user's next rating becomes the next member with probability
   ``_P_FOLLOW`` (chains continue with ``_P_CHAIN``), when it is already released and the two ratings
   have distinct seconds - so the (timestamp, movieId) order keeps them adjacent.
5. *No repeats.*  A user rates a movie once: duplicate draws are redrawn (series follow-ups kept) until
   none is left.  Movies that nobody drew finally take over one rating of a popular movie (at a time
   after their release), so every catalogue movie is rated.

Randomness comes from ``numpy.random.SeedSequence(seed)`` with one child stream per stage and chunk, so
a seed always gives byte-identical files.  Memory at 32M: ~0.5 GB of rating arrays (user, movie,
timestamp) plus per-chunk temporaries.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm.auto import tqdm

from pipelines.tmdb.mapping import CSV_COLUMNS

__all__ = ["SCALES", "ScaleSpec", "synthesize"]


@dataclass(frozen=True)
class ScaleSpec:
    users: int
    movies: int
    ratings: int


SCALES: dict[str, ScaleSpec] = {
    "32m": ScaleSpec(users=200_948, movies=87_585, ratings=32_000_204),
    "1m": ScaleSpec(users=6_040, movies=3_706, ratings=1_000_209),
    "100k": ScaleSpec(users=610, movies=9_742, ratings=100_836),
    "tiny": ScaleSpec(users=50, movies=200, ratings=2_000),
}

# largest movieId of the real releases (ids are not contiguous); other scales: ~3.34 x movies
_MAX_MOVIE_ID = {"32m": 292_757, "1m": 3_952, "100k": 193_609}

DAY = 86_400
YEAR = 365 * DAY
T_START = 789_652_009  # 1995-01-09, first rating of ml-32m
T_END = 1_697_164_147  # 2023-10-13, last rating of ml-32m
T_HALF_STARS = 1_045_526_400  # 2003-02-18: MovieLens accepts half stars from here on
_FIRST_YEAR, _LAST_YEAR = 1902, 2023

_USER_CHUNK = 8_192  # users per generation chunk (fixed: part of the deterministic stream)
_WRITE_CHUNK = 2_000_000  # rating rows per CSV write
_MIN_USER_RATINGS = 20
_AVAIL_FACTOR = 2.5  # a user starts only once >= 2.5 x their ratings movies are released
_P_RECENT, _RECENT_WINDOW = 0.30, 2 * YEAR
_P_TASTE_1, _P_TASTE_2 = 0.25, 0.12
_P_FOLLOW, _P_CHAIN = 0.9, 0.7
_P_SAME_SECOND = 0.13  # a rating shares the previous one's second
_SIGMA_POP = 2.4  # log-normal spread of movie popularity

_RATING_TEXT = np.array(["0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"])

# ------------------------------------------------------------------------------------- vocabularies

ML_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRES = "(no genres listed)"
# approximate counts in ml-32m (relative frequencies for the sampler)
_GENRE_FREQ = np.array(
    [9.6, 5.4, 4.5, 4.3, 23.0, 6.9, 7.0, 34.0, 3.8, 0.35, 8.0, 0.2, 1.0, 3.5, 10.0, 4.4, 11.0, 1.9, 1.4]
)
# TMDB genre (id, Korean name) for each MovieLens genre (IMAX has none)
_TMDB_GENRE = {
    "Action": (28, "액션"),
    "Adventure": (12, "모험"),
    "Animation": (16, "애니메이션"),
    "Children": (10751, "가족"),
    "Comedy": (35, "코미디"),
    "Crime": (80, "범죄"),
    "Documentary": (99, "다큐멘터리"),
    "Drama": (18, "드라마"),
    "Fantasy": (14, "판타지"),
    "Film-Noir": (80, "범죄"),
    "Horror": (27, "공포"),
    "Musical": (10402, "음악"),
    "Mystery": (9648, "미스터리"),
    "Romance": (10749, "로맨스"),
    "Sci-Fi": (878, "SF"),
    "Thriller": (53, "스릴러"),
    "War": (10752, "전쟁"),
    "Western": (37, "서부"),
}

# word lists for titles, names and overviews: data, in words.json
_WORDS = json.loads(Path(__file__).with_name("words.json").read_text(encoding="utf-8"))
_EN_ADJ = list(_WORDS["en_adj"])
_EN_NOUN = list(_WORDS["en_noun"])
_EN_NAMES = list(_WORDS["en_names"])
_KO_ADJ = list(_WORDS["ko_adj"])
_KO_NOUN = list(_WORDS["ko_noun"])
_KO_TRANSLIT = list(_WORDS["ko_translit"])
_KO_SURNAMES = list(_WORDS["ko_surnames"])
_KO_GIVEN = list(_WORDS["ko_given"])
_JA_KANA = list(_WORDS["ja_kana"])
_KO_GENRE_WORDS = {k: list(v) for k, v in _WORDS["ko_genre_words"].items()}
_OVERVIEW_TEMPLATES = tuple(_WORDS["overview_templates"])
_SEQUEL_OPENERS = tuple(_WORDS["sequel_openers"])
_TAGLINE_TEMPLATES = tuple(_WORDS["tagline_templates"])
_SUBTITLE_PATTERNS_EN = tuple(_WORDS["subtitle_patterns_en"])

_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_LANGS = ("en", "fr", "ja", "es", "de", "it", "ko", "zh", "ru", "hi", "sv", "da", "pt", "cn", "nl")
_LANG_P = np.array([72, 6, 4.5, 3.5, 3, 3, 2.5, 1.5, 1.2, 1, 0.7, 0.5, 0.5, 0.3, 0.3])


# ------------------------------------------------------------------------------------------ helpers


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent, reproducible stream per (stage, chunk)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=tuple(key)))


def _has_batchim(word: str) -> bool:
    c = word[-1]
    return "가" <= c <= "힣" and (ord(c) - 0xAC00) % 28 != 0


def _josa(word: str, pair: str) -> str:
    """Attach the right Korean particle: pair "은/는" -> 은 after a final consonant, else 는."""
    with_final, without = pair.split("/")
    if pair == "으로/로":
        c = word[-1]
        final = (ord(c) - 0xAC00) % 28 if "가" <= c <= "힣" else 0
        return word + ("으로" if final not in (0, 8) else "로")  # final ㄹ takes 로
    return word + (with_final if _has_batchim(word) else without)


def _fill(template: str, slots: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            name = template[i + 1 : j]
            k = template.find("}", j + 1)
            if j + 1 < len(template) and template[j + 1] == "{" and "/" in template[j + 2 : k]:
                out.append(_josa(slots[name], template[j + 2 : k]))  # "{N1}{을/를}": noun + particle
                i = k + 1
            else:
                out.append(slots[name])
                i = j + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def _random_paths(rng: np.random.Generator, n: int, length: int = 27) -> list[str]:
    codes = _ALPHABET[rng.integers(0, len(_ALPHABET), size=(n, length))]
    raw = codes.tobytes()
    return ["/" + raw[i * length : (i + 1) * length].decode("ascii") + ".jpg" for i in range(n)]


def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """n distinct integers in [low, high), sorted."""
    if high - low < n:
        raise ValueError("range too small")
    if high - low <= 4 * n:
        return np.sort(rng.choice(np.arange(low, high), size=n, replace=False))
    out = np.unique(rng.integers(low, high, size=int(n * 1.2) + 16))
    while len(out) < n:
        out = np.unique(np.concatenate([out, rng.integers(low, high, size=n)]))
    return np.sort(rng.choice(out, size=n, replace=False))


def _year_cdf() -> tuple[np.ndarray, np.ndarray]:
    """Release-year distribution: exponential growth towards the 2010s, a dip after 2019."""
    years = np.arange(_FIRST_YEAR, _LAST_YEAR + 1)
    dens = np.where(years <= 2016, np.exp((years - 2016) / 22.0), 1.0 - 0.035 * (years - 2016))
    dens[years == _LAST_YEAR] *= 0.7
    cdf = np.cumsum(dens)
    return years, cdf / cdf[-1]


def _sample_years(rng: np.random.Generator, n: int, lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
    """Years from the release profile, truncated to [lo, hi] (per element)."""
    years, cdf = _year_cdf()
    cdf0 = np.concatenate([[0.0], cdf])
    lo = np.broadcast_to(np.asarray(lo), (n,))
    hi = np.broadcast_to(np.asarray(hi), (n,))
    f_lo = cdf0[lo - _FIRST_YEAR]
    f_hi = cdf0[hi - _FIRST_YEAR + 1]
    u = f_lo + rng.random(n) * (f_hi - f_lo)
    idx = np.searchsorted(cdf, u, side="right")
    return np.clip(years[np.minimum(idx, len(years) - 1)], lo, hi)


def _year_start_ts(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years) - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


# ------------------------------------------------------------------------------------------ catalogue


@dataclass
class _Catalog:
    """Movies in release order (internal index = position)."""

    release_ts: np.ndarray  # int64, ascending
    year: np.ndarray  # int64
    movie_id: np.ndarray  # int64 MovieLens id
    weight: np.ndarray  # float64 popularity
    cluster: np.ndarray  # int64 taste cluster (main genre; 19 = no genres)
    quality: np.ndarray  # float64 rating offset
    series: np.ndarray  # int64 series index or -1
    series_pos: np.ndarray  # int64 position in its series (0-based) or -1
    succ: np.ndarray  # int64 internal index of the next member or -1
    genres: list[list[str]]
    title_en: list[str]  # natural English title ("The Dark Forest 2")
    title_ko: list[str]
    series_members: list[list[int]]  # internal indices, in release order
    series_name_ko: list[str]
    series_collection_id: np.ndarray  # int64 TMDB collection id
    series_vocab: list[tuple[str, list[str]]]  # (protagonist, nouns)

    @property
    def n(self) -> int:
        return len(self.release_ts)


def _series_sizes(rng: np.random.Generator, n_movies: int) -> np.ndarray:
    n_series = max(1, int(round(n_movies * 0.04)))
    sizes = rng.choice(np.arange(2, 9), size=n_series, p=[0.45, 0.25, 0.12, 0.07, 0.05, 0.03, 0.03])
    while sizes.sum() > n_movies // 2:
        sizes = sizes[:-1]
    return sizes


def _english_title(r: random.Random) -> tuple[str, list[str]]:
    """A title without colon or trailing number, and its content words (for the Korean rendering)."""
    a, n1, n2, n3 = r.choice(_EN_ADJ), r.choice(_EN_NOUN), r.choice(_EN_NOUN), r.choice(_EN_NOUN)
    p = r.randrange(12)
    if p < 3:
        return f"The {a} {n1}", [a, n1]
    if p < 5:
        return f"{a} {n1}", [a, n1]
    if p == 5:
        return f"The {n1} of the {n2}", [n2, n1]
    if p == 6:
        name = r.choice(_EN_NAMES)
        return f"{name}'s {n1}", [name, n1]
    if p == 7:
        return f"{n1}", [n1]
    if p == 8:
        return f"{n1} and {n2}", [n1, n2]
    if p == 9:
        return f"{n1}, {n2} and the {a} {n3}", [n1, n2, a]
    if p == 10:
        return f"A {a} {n1} in {n3} Town", [a, n1]
    return f"{n1} {n2}", [n1, n2]


def _ml_title(title: str, year: int) -> str:
    """MovieLens spelling: leading article moved to the end ("Dark Forest 2: Rise, The (2003)")."""
    for art in ("The", "A", "An"):
        if title.startswith(art + " "):
            title = f"{title[len(art) + 1 :]}, {art}"
            break
    return f"{title} ({year})"


class _Korean:
    """A seeded English-word -> Korean rendering (translated or transliterated) and name generator."""

    def __init__(self, r: random.Random) -> None:
        self.r = r
        self.translated: dict[str, str] = {}
        self.translit: dict[str, str] = {}
        adj_perm = r.sample(range(len(_KO_ADJ)), len(_KO_ADJ))
        noun_perm = r.sample(range(len(_KO_NOUN)), len(_KO_NOUN))
        for i, w in enumerate(dict.fromkeys(_EN_ADJ)):
            self.translated[w] = _KO_ADJ[adj_perm[i % len(_KO_ADJ)]]
        for i, w in enumerate(dict.fromkeys(_EN_NOUN)):
            self.translated.setdefault(w, _KO_NOUN[noun_perm[i % len(_KO_NOUN)]])
        for w in dict.fromkeys(_EN_ADJ + _EN_NOUN + _EN_NAMES):
            self.translit[w] = "".join(r.choices(_KO_TRANSLIT, k=2 + r.randrange(3)))
        for w in _EN_NAMES:
            self.translated[w] = self.translit[w]

    def render(self, words: list[str], translit: bool) -> str:
        table = self.translit if translit else self.translated
        return " ".join(table[w] for w in words)

    def person(self) -> str:
        return self.r.choice(_KO_SURNAMES) + "".join(self.r.choices(_KO_GIVEN, k=2))


def _build_catalog(spec: ScaleSpec, name: str, seed: int) -> _Catalog:
    rng = _rng(seed, 1)
    n = spec.movies
    sizes = _series_sizes(rng, n)
    n_series = len(sizes)
    n_members = int(sizes.sum())
    n_single = n - n_members

    # ---- release years / dates
    gaps = np.minimum(1 + rng.poisson(1.5, size=n_members), 6)
    first_of = np.cumsum(sizes) - sizes
    series_of_member = np.repeat(np.arange(n_series), sizes)
    pos_of_member = np.arange(n_members) - first_of[series_of_member]
    gaps[first_of] = 0
    offs = np.cumsum(gaps)
    offs = offs - offs[first_of][series_of_member]
    total_gap = offs[first_of + sizes - 1]
    y0 = _sample_years(rng, n_series, 1960, _LAST_YEAR - total_gap)
    member_year = y0[series_of_member] + offs
    single_year = _sample_years(rng, n_single, _FIRST_YEAR, _LAST_YEAR)
    year = np.concatenate([member_year, single_year]).astype(np.int64)
    last_day = (T_END - 45 * DAY - _year_start_ts(np.array([_LAST_YEAR]))[0]) // DAY
    doy = rng.integers(0, 365, size=n)
    doy = np.where(year == _LAST_YEAR, np.minimum(doy, last_day), doy)
    release = _year_start_ts(year) + doy * DAY

    # ---- popularity: singles log-normal, series from the upper half and decaying along the series
    z = rng.standard_normal(n)
    z_series = 0.35 + 0.9 * np.abs(rng.standard_normal(n_series))
    z[:n_members] = z_series[series_of_member] - 0.3 * pos_of_member + 0.3 * rng.standard_normal(n_members)
    weight = np.exp(_SIGMA_POP * z)
    quality = 0.12 * z + 0.35 * rng.standard_normal(n)
    quality[:n_members] = (
        0.12 * z[:n_members] + 0.3 * rng.standard_normal(n_series)[series_of_member] - 0.08 * pos_of_member
    )

    # ---- genres (Gumbel top-k by frequency; members share their series' genres)
    n_gen = rng.choice(np.arange(1, 6), size=n, p=[0.40, 0.33, 0.19, 0.06, 0.02])
    keys = np.log(_GENRE_FREQ)[None, :] + rng.gumbel(size=(n, len(ML_GENRES)))
    keys[:n_members] = keys[first_of][series_of_member] + 0.1 * rng.gumbel(size=(n_members, len(ML_GENRES)))
    n_gen[:n_members] = n_gen[first_of][series_of_member]
    rank = np.argsort(-keys, axis=1)
    no_genre = np.zeros(n, dtype=bool)
    no_genre[n_members:] = rng.random(n_single) < 0.065
    genres: list[list[str]] = []
    for i in range(n):
        if no_genre[i]:
            genres.append([NO_GENRES])
        else:
            chosen = sorted(rank[i, : n_gen[i]].tolist())
            genres.append([ML_GENRES[g] for g in chosen])
    cluster = np.where(no_genre, len(ML_GENRES), rank[:, 0])

    # ---- titles (series bases unique and not shared by any other title's series key)
    r = random.Random(int(rng.integers(2**62)))
    ko = _Korean(r)
    titles_en: list[str] = [""] * n
    titles_ko: list[str] = [""] * n
    used_keys: set[str] = set()
    series_name_ko: list[str] = []
    series_vocab: list[tuple[str, list[str]]] = []

    def key_of(t: str) -> str:
        t = t.lower()
        for art in ("the ", "a ", "an "):
            if t.startswith(art):
                return t[len(art) :]
        return t

    single_titles = [_english_title(r) for _ in range(n_single)]
    used_keys.update(key_of(t) for t, _ in single_titles)
    for s in range(n_series):
        while True:
            base, words = _english_title(r)
            if "," not in base and key_of(base) not in used_keys:
                break
        used_keys.add(key_of(base))
        base_ko = ko.render(words, r.random() < 0.4)
        size = int(sizes[s])
        style = r.choices((0, 1, 2), weights=(0.6, 0.25, 0.15) if size > 2 else (0.85, 0.05, 0.10))[0]
        subs_seen: set[str] = set()
        for p in range(size):
            i = int(first_of[s] + p)
            if p == 0:
                titles_en[i], titles_ko[i] = base, base_ko
                continue
            while True:
                sa, sn, sn2 = r.choice(_EN_ADJ), r.choice(_EN_NOUN), r.choice(_EN_NOUN)
                sub = r.choice(_SUBTITLE_PATTERNS_EN).format(A=sa, N=sn, N2=sn2)
                if sub not in subs_seen:
                    subs_seen.add(sub)
                    break
            sub_ko = ko.render([w for w in (sa, sn) if w in sub.split()] or [sn], False)
            if style == 0:
                titles_en[i], titles_ko[i] = f"{base} {p + 1}", f"{base_ko} {p + 1}"
            elif style == 1:
                titles_en[i], titles_ko[i] = f"{base}: {sub}", f"{base_ko}: {sub_ko}"
            else:
                titles_en[i], titles_ko[i] = f"{base} {p + 1}: {sub}", f"{base_ko} {p + 1}: {sub_ko}"
        series_name_ko.append(f"{base_ko} 시리즈")
        series_vocab.append((ko.person(), r.choices(_KO_NOUN, k=6)))
    for j, (t, words) in enumerate(single_titles):
        titles_en[n_members + j] = t
        titles_ko[n_members + j] = ko.render(words, r.random() < 0.4)

    # ---- sort everything by release (internal index = release order)
    order = np.lexsort((np.arange(n), release))
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    series = np.full(n, -1, dtype=np.int64)
    series[:n_members] = series_of_member
    series_pos = np.full(n, -1, dtype=np.int64)
    series_pos[:n_members] = pos_of_member
    members = [inv[first_of[s] : first_of[s] + sizes[s]].tolist() for s in range(n_series)]
    succ = np.full(n, -1, dtype=np.int64)
    for m in members:
        succ[m[:-1]] = m[1:]

    # ---- MovieLens ids: by "added to MovieLens" time, dense low ids for the old catalogue
    rel_sorted = release[order]
    added = np.maximum(rel_sorted, T_START + (rng.random(n) ** 1.7 * (T_END - T_START)).astype(np.int64))
    added = added + rng.integers(0, 180 * DAY, size=n)
    max_id = _MAX_MOVIE_ID.get(name, max(n, int(round(n * 3.34))))
    n_dense = int(n * 0.6)
    split = max(n_dense, int(max_id * 0.45))
    dense = _unique_ints(rng, n_dense, 1, split + 1)
    sparse = _unique_ints(rng, n - n_dense - 1, split + 1, max_id)
    ids = np.concatenate([dense, sparse, [max_id]])
    movie_id = np.empty(n, dtype=np.int64)
    movie_id[np.lexsort((np.arange(n), added))] = ids
    for m in members:  # sequels get later ids, as MovieLens adds them later
        movie_id[m] = np.sort(movie_id[m])

    def pick(arr: np.ndarray) -> np.ndarray:
        return arr[order]

    return _Catalog(
        release_ts=rel_sorted,
        year=pick(year),
        movie_id=movie_id,
        weight=pick(weight),
        cluster=pick(cluster).astype(np.int64),
        quality=pick(quality),
        series=pick(series),
        series_pos=pick(series_pos),
        succ=succ,
        genres=[genres[i] for i in order],
        title_en=[titles_en[i] for i in order],
        title_ko=[titles_ko[i] for i in order],
        series_members=members,
        series_name_ko=series_name_ko,
        series_collection_id=_unique_ints(rng, n_series, 10, 1_300_000)[rng.permutation(n_series)],
        series_vocab=series_vocab,
    )


# ------------------------------------------------------------------------------------------- users


def _user_activity(rng: np.random.Generator, spec: ScaleSpec, n_movies: int) -> np.ndarray:
    """Ratings per user: log-normal excess over 20, capped, summing exactly to spec.ratings."""
    n, total = spec.users, spec.ratings
    cap = int(min(9_000, max(_MIN_USER_RATINGS + 5, n_movies // _AVAIL_FACTOR - 1)))
    if not (_MIN_USER_RATINGS * n <= total <= cap * n):
        raise ValueError(f"cannot give {n} users {total} ratings with 20 <= ratings <= {cap}")
    excess = np.exp(np.log(70.0) + 1.15 * rng.standard_normal(n))
    lo, hi = 0.0, 1.0
    while np.minimum(_MIN_USER_RATINGS + np.floor(hi * excess), cap).sum() < total:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.minimum(_MIN_USER_RATINGS + np.floor(mid * excess), cap).sum() < total:
            lo = mid
        else:
            hi = mid
    counts = np.minimum(_MIN_USER_RATINGS + np.floor(lo * excess), cap).astype(np.int64)
    while (resid := total - int(counts.sum())) != 0:
        room = np.flatnonzero(counts < cap) if resid > 0 else np.flatnonzero(counts > _MIN_USER_RATINGS)
        take = rng.choice(room, size=min(abs(resid), len(room)), replace=False)
        counts[take] += 1 if resid > 0 else -1
    return counts


def _signup_profile() -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-uniform density of users' first ratings over 1995-2023 (CDF knots)."""
    w = {
        1995: 0.3,
        1996: 3.5,
        1997: 1.5,
        1998: 0.8,
        1999: 2.0,
        2000: 4.5,
        2001: 2.0,
        2002: 1.5,
        2003: 1.8,
        2004: 2.0,
        2005: 2.5,
        2006: 2.0,
        2007: 1.8,
        2008: 2.0,
        2009: 1.7,
        2010: 1.5,
        2011: 1.7,
        2012: 1.5,
        2013: 1.5,
        2014: 1.6,
        2015: 4.0,
        2016: 4.5,
        2017: 4.0,
        2018: 3.5,
        2019: 3.2,
        2020: 3.8,
        2021: 2.8,
        2022: 2.2,
        2023: 1.6,
    }
    years = np.array(list(w))
    knots = np.concatenate([[T_START], _year_start_ts(years[1:]), [T_END - 2 * DAY]]).astype(np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(list(w.values()))])
    return knots, cdf / cdf[-1]


@dataclass
class _Users:
    n_ratings: np.ndarray  # int64
    start: np.ndarray  # int64 first-session timestamp
    sessions: np.ndarray  # int64
    gap_days: np.ndarray  # float64 mean days between sessions
    fav1: np.ndarray  # int64 favourite cluster
    fav2: np.ndarray
    bias: np.ndarray  # float64 rating bias
    half: np.ndarray  # bool: uses half stars (once allowed)


def _build_users(spec: ScaleSpec, cat: _Catalog, seed: int) -> _Users:
    rng = _rng(seed, 2)
    n = spec.users
    counts = _user_activity(rng, spec, cat.n)
    need = np.minimum(np.ceil(counts * _AVAIL_FACTOR).astype(np.int64), cat.n)
    t_min = np.maximum(cat.release_ts[need - 1], T_START)
    knots, cdf = _signup_profile()
    f_min = np.interp(t_min, knots, cdf)
    start = np.interp(f_min + rng.random(n) * (1 - f_min), cdf, knots).astype(np.int64)
    start = np.clip(np.maximum(start, t_min), T_START, T_END - 2 * DAY)
    lam = 0.25 + 0.7 * np.log(counts / _MIN_USER_RATINGS)
    sessions = np.minimum(1 + rng.poisson(lam), 12)
    gap_days = np.exp(np.log(30.0) + 1.2 * rng.standard_normal(n))
    mass = np.bincount(cat.cluster, weights=cat.weight, minlength=len(ML_GENRES) + 1) ** 0.7
    fav1 = rng.choice(len(mass), size=n, p=mass / mass.sum())
    fav2 = rng.choice(len(mass), size=n, p=mass / mass.sum())
    return _Users(
        n_ratings=counts,
        start=start,
        sessions=sessions.astype(np.int64),
        gap_days=gap_days,
        fav1=fav1,
        fav2=fav2,
        bias=0.4 * rng.standard_normal(n),
        half=rng.random(n) < 0.72,
    )


# ------------------------------------------------------------------------------------------ ratings


class _Sampler:
    """Weighted draws among movies released by a time, optionally within a window or a cluster."""

    def __init__(self, cat: _Catalog) -> None:
        self.rel = cat.release_ts
        self.n = cat.n
        self.cw = np.concatenate([[0.0], np.cumsum(cat.weight)])
        self.cw_flat = np.concatenate([[0.0], np.cumsum(np.sqrt(cat.weight))])
        # cluster-major order: key = cluster * BIG + (release - base)
        self.base = int(self.rel.min()) - 1
        self.big = np.int64(1) << 34
        corder = np.lexsort((np.arange(self.n), self.rel, cat.cluster))
        self.corder = corder
        self.ckey = cat.cluster[corder] * self.big + (self.rel[corder] - self.base)
        self.ccw = np.concatenate([[0.0], np.cumsum(cat.weight[corder])])
        n_clusters = int(cat.cluster.max()) + 1
        self.cstart = np.searchsorted(self.ckey, np.arange(n_clusters + 1) * self.big)

    @staticmethod
    def _between(rng: np.random.Generator, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        a, b = cw[lo], cw[hi]
        idx = np.searchsorted(cw, a + rng.random(len(lo)) * (b - a), side="right") - 1
        return np.clip(idx, lo, hi - 1)

    def draw(
        self, rng: np.random.Generator, ts: np.ndarray, fav1: np.ndarray, fav2: np.ndarray, mode: int = 0
    ) -> np.ndarray:
        """mode 0: popularity mix (recent / taste / overall); 1: overall; 2: flattened; 3: uniform."""
        hi = np.searchsorted(self.rel, ts, side="right")
        if mode == 3:
            return np.minimum((rng.random(len(ts)) * hi).astype(np.int64), hi - 1)
        if mode == 2:
            return self._between(rng, self.cw_flat, np.zeros_like(hi), hi)
        lo = np.zeros_like(hi)
        if mode == 1:
            return self._between(rng, self.cw, lo, hi)
        u = rng.random(len(ts))
        recent = u < _P_RECENT
        lo_rec = np.searchsorted(self.rel, ts - _RECENT_WINDOW, side="left")
        recent &= lo_rec < hi
        lo = np.where(recent, lo_rec, 0)
        out = self._between(rng, self.cw, lo, hi)
        taste = (u >= _P_RECENT) & (u < _P_RECENT + _P_TASTE_1 + _P_TASTE_2)
        if taste.any():
            t_idx = np.flatnonzero(taste)
            c = np.where(u[t_idx] < _P_RECENT + _P_TASTE_1, fav1[t_idx], fav2[t_idx])
            c_lo = self.cstart[c]
            c_hi = np.searchsorted(self.ckey, c * self.big + (ts[t_idx] - self.base), side="right")
            ok = c_hi > c_lo
            pos = self._between(rng, self.ccw, c_lo[ok], c_hi[ok])
            out[t_idx[ok]] = self.corder[pos]
        return out


def _timeline(rng: np.random.Generator, users: _Users, sl: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per-rating (local user, timestamp) for a chunk of users, sorted by user then time."""
    counts, start, k = users.n_ratings[sl], users.start[sl], users.sessions[sl]
    n_users = len(counts)
    sess_user = np.repeat(np.arange(n_users), k)
    sess_first = np.cumsum(k) - k
    gaps = rng.exponential(1.0, size=len(sess_user)) * users.gap_days[sl][sess_user] * DAY
    gaps[sess_first] = 0.0
    off = np.cumsum(gaps)
    off -= off[sess_first][sess_user]
    span = off[sess_first + k - 1]
    room = (T_END - DAY - start).astype(np.float64)
    off *= np.minimum(1.0, room / np.maximum(span, 1.0))[sess_user]
    sess_start = start[sess_user] + off.astype(np.int64)

    total = int(counts.sum())
    r_user = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    kk = k[r_user]
    s = np.minimum(kk - 1, (kk * rng.random(total) ** 2).astype(np.int64))
    key = np.sort(r_user * 16 + s)
    r_user, s = key >> 4, key & 15
    sess = sess_first[r_user] + s
    gap = np.rint(np.exp(np.log(20.0) + 1.1 * rng.standard_normal(total))).clip(0, 3600)
    gap[rng.random(total) < _P_SAME_SECOND] = 0
    first = np.empty(total, dtype=bool)
    first[0] = True
    first[1:] = sess[1:] != sess[:-1]
    gap[first] = 0
    cs = np.cumsum(gap).astype(np.int64)
    grp = np.maximum.accumulate(np.where(first, np.arange(total), 0))
    ts = np.minimum(sess_start[sess] + cs - cs[grp], T_END)
    key = np.sort((r_user << 32) | (ts - T_START))
    return key >> 32, (key & 0xFFFFFFFF) + T_START


def _dup_rows(user: np.ndarray, movie: np.ndarray, keep_first: np.ndarray, n_movies: int) -> np.ndarray:
    """Rows repeating an earlier (user, movie); rows flagged keep_first win, then the earliest row."""
    key = (user * n_movies + movie) * 2 + (~keep_first)
    order = np.argsort(key, kind="stable")
    k = key[order] >> 1
    dup_sorted = np.zeros(len(k), dtype=bool)
    dup_sorted[1:] = k[1:] == k[:-1]
    return order[dup_sorted]


def _chunk_ratings(
    seed: int, chunk: int, users: _Users, sl: slice, cat: _Catalog, sampler: _Sampler
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global user index, internal movie index, timestamp) of one chunk of users."""
    rng = _rng(seed, 3, chunk)
    user, ts = _timeline(rng, users, sl)
    fav1, fav2 = users.fav1[sl][user], users.fav2[sl][user]
    movie = sampler.draw(rng, ts, fav1, fav2)
    total = len(movie)

    # series follow-ups: the next rating becomes the next member of the series
    # (only where i-1 < i < i+1 < i+2 in time, so that the (timestamp, movieId) order keeps the pair)
    locked = np.zeros(total, dtype=bool)
    nxt_ok = np.zeros(total, dtype=bool)
    nxt_ok[:-1] = (user[1:] == user[:-1]) & (ts[1:] > ts[:-1])
    nxt_ok[:-2] &= (user[2:] != user[1:-1]) | (ts[2:] > ts[1:-1])
    src_ok = nxt_ok.copy()
    src_ok[1:] &= (user[1:] != user[:-1]) | (ts[1:] > ts[:-1])
    frontier = None
    for step in range(8):
        if step == 0:
            cand = np.flatnonzero(src_ok & (cat.succ[movie] >= 0))
            cand = cand[rng.random(len(cand)) < _P_FOLLOW]
            is_src = np.zeros(total, dtype=bool)
            is_src[cand] = True
            cand = cand[(cand == 0) | ~is_src[np.maximum(cand - 1, 0)]]
        else:
            cand = frontier[nxt_ok[frontier] & (cat.succ[movie[frontier]] >= 0)]
            cand = cand[rng.random(len(cand)) < _P_CHAIN]
            cand = cand[~locked[cand + 1]]
        nxt = cat.succ[movie[cand]]
        good = cat.release_ts[nxt] <= ts[cand + 1]
        cand, nxt = cand[good], nxt[good]
        if len(cand) == 0:
            break
        movie[cand + 1] = nxt
        locked[cand] = True
        locked[cand + 1] = True
        frontier = cand + 1

    # a movie once per user: redraw duplicates (series rows win), flattening the weights over rounds
    rows = np.arange(total)
    for round_ in range(200):
        dup = rows[_dup_rows(user[rows], movie[rows], locked[rows], cat.n)]
        if len(dup) == 0:
            break
        mode = 1 if round_ < 3 else 2 if round_ < 8 else 3
        movie[dup] = sampler.draw(rng, ts[dup], fav1[dup], fav2[dup], mode=mode)
        active = np.zeros(len(users.n_ratings[sl]), dtype=bool)
        active[user[dup]] = True
        rows = np.flatnonzero(active[user])
    else:
        raise RuntimeError("could not remove duplicate ratings")
    return user + sl.start, movie, ts


def _cover_all_movies(
    rng: np.random.Generator, user: np.ndarray, movie: np.ndarray, ts: np.ndarray, cat: _Catalog
) -> None:
    """Give every never-drawn movie one rating, taken over from a popular movie at a later time.

    The donor row keeps its user and timestamp (the user never rated the missing movie, so no repeat
    appears).  A movie released after every donor takes a user's last rating and moves it to after the
    release, which keeps that user's rows in time order.
    """
    last_of_user = np.ones(len(user), dtype=bool)
    last_of_user[:-1] = user[1:] != user[:-1]
    for _ in range(50):
        counts = np.bincount(movie, minlength=cat.n)
        missing = np.flatnonzero(counts == 0)
        if len(missing) == 0:
            return
        threshold = max(5, int(np.quantile(counts, 0.9)))
        pool = np.flatnonzero(counts[movie] >= threshold)
        pool = pool[np.argsort(ts[pool], kind="stable")]
        lo = np.searchsorted(ts[pool], cat.release_ts[missing], side="left")
        late = lo >= len(pool)
        rows = np.full(len(missing), -1, dtype=np.int64)
        ok = ~late
        rows[ok] = pool[lo[ok] + (rng.random(int(ok.sum())) * (len(pool) - lo[ok])).astype(np.int64)]
        if late.any():
            lasts = np.flatnonzero(last_of_user & (counts[movie] >= 2))
            rows[late] = rng.choice(lasts, size=int(late.sum()), replace=len(lasts) < late.sum())
            rel = cat.release_ts[missing[late]]
            moved = rel + (rng.random(len(rel)) * (T_END - rel)).astype(np.int64)
            ts[rows[late]] = np.maximum(ts[rows[late]], moved)
        _, first = np.unique(rows, return_index=True)
        movie[rows[first]] = missing[first]
    counts = np.bincount(movie, minlength=cat.n)
    if (counts == 0).any():
        raise RuntimeError(f"{int((counts == 0).sum())} movies could not be given a rating")


def _rating_values(
    rng: np.random.Generator, user: np.ndarray, movie: np.ndarray, ts: np.ndarray, users: _Users, cat: _Catalog
) -> np.ndarray:
    """Half-star code 1..10 (rating x 2): 3.36 + movie quality + user bias + skewed noise."""
    n = len(user)
    noise = 0.65 * rng.standard_normal(n) - 0.6 * (rng.standard_exponential(n) - 1.0)  # left-skewed
    score = 3.36 + cat.quality[movie] + users.bias[user] + noise
    halves = users.half[user] & (ts >= T_HALF_STARS) & (rng.random(n) < 0.85)
    code = np.where(halves, np.rint(score * 2), np.rint(score) * 2)
    return np.clip(code, np.where(halves, 1, 2), 10).astype(np.int8)


# -------------------------------------------------------------------------------------------- files


def _write_ratings(
    path: Path,
    user: np.ndarray,
    movie: np.ndarray,
    ts: np.ndarray,
    users: _Users,
    cat: _Catalog,
    seed: int,
    progress: bool,
    label: str,
) -> None:
    total = len(user)
    dictionary = pa.array(_RATING_TEXT)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        bar = tqdm(total=total, desc=f"synth {label}: ratings.csv", unit="row", unit_scale=True, disable=not progress)
        for c, lo in enumerate(range(0, total, _WRITE_CHUNK)):
            hi = min(total, lo + _WRITE_CHUNK)
            u, m, t = user[lo:hi], movie[lo:hi], ts[lo:hi]
            code = _rating_values(_rng(seed, 5, c), u, m, t, users, cat)
            table = pa.table(
                {
                    "userId": pa.array((u + 1).astype(np.int32)),
                    "movieId": pa.array(cat.movie_id[m].astype(np.int32)),
                    "rating": pa.DictionaryArray.from_arrays(pa.array(code - 1), dictionary),
                    "timestamp": pa.array(t.astype(np.int64)),
                }
            )
            pacsv.write_csv(table, fh, write_options=options)
            bar.update(hi - lo)
        bar.close()


def _write_movies(out_dir: Path, cat: _Catalog, seed: int) -> dict[str, Path]:
    rng = _rng(seed, 6)
    n = cat.n
    by_id = np.argsort(cat.movie_id, kind="stable")
    ml_titles = [_ml_title(cat.title_en[i], int(cat.year[i])) for i in range(n)]
    movies = pd.DataFrame(
        {
            "movieId": cat.movie_id[by_id],
            "title": [ml_titles[i] for i in by_id],
            "genres": ["|".join(cat.genres[i]) for i in by_id],
        }
    )
    paths = {
        "movies": out_dir / "movies.csv",
        "links": out_dir / "links.csv",
        "tmdb_metadata": out_dir / "tmdb_metadata.csv",
    }
    movies.to_csv(paths["movies"], index=False, lineterminator="\n")

    # imdb ids grow with the release year (tt0000001 .. tt2xxxxxxx); tmdb ids too, but noisier
    q = np.sort(rng.random(n))
    raw = (1 + 2.9e7 * q**5).astype(np.int64)
    steps = np.arange(n)
    imdb = np.empty(n, dtype=np.int64)
    imdb[np.lexsort((rng.random(n), cat.year))] = np.maximum.accumulate(raw - steps) + steps
    tmdb = np.empty(n, dtype=np.int64)
    noisy_year = cat.year + 12 * rng.standard_normal(n)
    tmdb[np.argsort(noisy_year, kind="stable")] = _unique_ints(rng, n, 2, 1_200_000)
    has_tmdb = rng.random(n) >= 0.0015
    has_tmdb[cat.series >= 0] = True
    links = pd.DataFrame(
        {
            "movieId": cat.movie_id[by_id],
            "imdbId": [f"{v:07d}" for v in imdb[by_id]],
            "tmdbId": [str(tmdb[i]) if has_tmdb[i] else "" for i in by_id],
        }
    )
    links.to_csv(paths["links"], index=False, lineterminator="\n")

    # TMDB metadata (Korean localisation)
    lang = np.array(_LANGS)[rng.choice(len(_LANGS), size=n, p=_LANG_P / _LANG_P.sum())]
    lang[cat.series >= 0] = np.where(rng.random(int((cat.series >= 0).sum())) < 0.9, "en", lang[cat.series >= 0])
    runtime = np.rint(105 + 18 * rng.standard_normal(n)).clip(45, 240).astype(np.int64)
    adult = rng.random(n) < 0.002
    posters = _random_paths(rng, n)
    coll_paths = _random_paths(rng, 2 * len(cat.series_members))
    collections = [
        json.dumps(
            {
                "id": int(cat.series_collection_id[s]),
                "name": cat.series_name_ko[s],
                "poster_path": coll_paths[2 * s],
                "backdrop_path": coll_paths[2 * s + 1],
            },
            ensure_ascii=False,
        )
        for s in range(len(cat.series_members))
    ]
    dates = np.datetime_as_string(cat.release_ts.astype("datetime64[s]").astype("datetime64[D]"))
    r = random.Random(int(rng.integers(2**62)))
    ko = _Korean(r)
    rows = []
    for i in by_id.tolist():
        g = cat.genres[i]
        words = [w for x in g for w in _KO_GENRE_WORDS[x]]
        s = int(cat.series[i])
        if s >= 0:
            person, vocab = cat.series_vocab[s]
            nouns = vocab * 2 + r.choices(_KO_NOUN, k=3)
        else:
            person, nouns = ko.person(), r.choices(_KO_NOUN, k=6)

        def slots(person: str = person, nouns: list[str] = nouns, words: list[str] = words) -> dict[str, str]:
            return {
                "P": person,
                "N1": r.choice(nouns),
                "N2": r.choice(nouns),
                "N3": r.choice(nouns),
                "G": r.choice(words),
                "A": r.choice(_KO_ADJ),
                "k": str(r.randint(1, 10)),
            }

        n_sent = r.randint(1, 3)
        sentences = []
        if s >= 0 and cat.series_pos[i] > 0 and r.random() < 0.6:
            sentences.append(_fill(r.choice(_SEQUEL_OPENERS), slots()))
        while len(sentences) < n_sent:
            sentences.append(_fill(r.choice(_OVERVIEW_TEMPLATES), slots()))
        tagline = "" if r.random() < 0.4 else _fill(r.choice(_TAGLINE_TEMPLATES), slots())
        if not has_tmdb[i]:
            continue
        if lang[i] == "en":
            original = cat.title_en[i]
        elif lang[i] == "ko":
            original = cat.title_ko[i]
        elif lang[i] == "ja":
            original = "".join(r.choices(_JA_KANA, k=r.randint(3, 7)))
        else:
            original = cat.title_en[i]
        anim = "Animation" in g or "Children" in g
        tmdb_genres = list(dict.fromkeys(_TMDB_GENRE[x] for x in g if x in _TMDB_GENRE))
        rows.append(
            (
                int(tmdb[i]),
                cat.title_ko[i],
                original,
                str(lang[i]),
                " ".join(sentences),
                tagline,
                str(dates[i]),
                int(runtime[i] - (20 if anim else 0)),
                "True" if adult[i] else "False",
                f"tt{imdb[i]:07d}",
                posters[i],
                collections[s] if s >= 0 else "",
                json.dumps([{"id": gid, "name": gname} for gid, gname in tmdb_genres], ensure_ascii=False),
            )
        )
    meta = pd.DataFrame(rows, columns=list(CSV_COLUMNS))  # the layout `nextwatch tmdb import` reads
    meta.to_csv(paths["tmdb_metadata"], index=False, lineterminator="\n")
    return paths


# ---------------------------------------------------------------------------------------------- API


def synthesize(scale: str, out_dir: Path, *, seed: int = 42, progress: bool = True) -> dict[str, Path]:
    """Write ratings.csv, movies.csv, links.csv and tmdb_metadata.csv into out_dir (MovieLens 32M format).

    Returns the paths."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
    spec = SCALES[scale]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    cat = _build_catalog(spec, scale, seed)
    users = _build_users(spec, cat, seed)
    sampler = _Sampler(cat)

    parts_u, parts_m, parts_t = [], [], []
    bar = tqdm(total=spec.users, desc=f"synth {scale}: users", unit="user", disable=not progress)
    for chunk, lo in enumerate(range(0, spec.users, _USER_CHUNK)):
        sl = slice(lo, min(spec.users, lo + _USER_CHUNK))
        u, m, t = _chunk_ratings(seed, chunk, users, sl, cat, sampler)
        parts_u.append(u.astype(np.int32))
        parts_m.append(m.astype(np.int32))
        parts_t.append(t)
        bar.update(sl.stop - sl.start)
    bar.close()
    user = np.concatenate(parts_u)
    del parts_u
    movie = np.concatenate(parts_m)
    del parts_m
    ts = np.concatenate(parts_t)
    del parts_t

    _cover_all_movies(_rng(seed, 4), user, movie, ts, cat)
    # final order: user, timestamp, movieId (the evaluator's tie-break) - only ties need re-sorting
    mid = cat.movie_id[movie]
    tie = np.zeros(len(user), dtype=bool)
    tie[1:] = (user[1:] == user[:-1]) & (ts[1:] == ts[:-1])
    if tie.any():
        # sort each run of equal (user, ts) by movieId
        run = np.cumsum(~tie) - 1
        order = np.lexsort((mid, run))
        movie = movie[order]
        del order
    del mid, tie

    paths = _write_movies(out_dir, cat, seed)
    ratings_path = out_dir / "ratings.csv"
    _write_ratings(ratings_path, user, movie, ts, users, cat, seed, progress, scale)
    return {"ratings": ratings_path, **paths}
