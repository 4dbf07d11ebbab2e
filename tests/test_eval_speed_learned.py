"""The learned source's one-movie lists come from a table the build computes (issue 23): the server answers
from it, so the evaluation's batch and the API's single requests read the same lists, and those are the
learned model's own."""

from __future__ import annotations

import numpy as np

from services.recommender.history import LearnedSource
from services.recommender.tabled import TabledSource
from services.serving.runtime import open_runtime
from services.settings import Settings


def test_the_learned_table_holds_the_models_one_movie_lists_and_is_what_is_served(built_settings: Settings) -> None:
    rt = open_runtime(built_settings, serving=True)
    try:
        source = rt.sources["learned"]
        assert isinstance(source, TabledSource)
        model = rt.models["learned"]
        movies = model.item_ids.tolist()
        live = LearnedSource(model).candidates(movies, 10)
        tabled = source.candidates(movies, 10)
        assert [[m for m, _ in row] for row in tabled] == [[m for m, _ in row] for row in live]
        # float32 scores: the table's were computed a block of movies at a time (BLAS's last bits differ)
        assert np.allclose([s for row in tabled for _, s in row], [s for row in live for _, s in row], 1e-5, 1e-6)
        strategy = rt.strategies["learned"]
        batch = strategy.similar_batch(movies, 10)
        assert batch == [strategy.similar(m, 10) for m in movies]  # the evaluation's batch is the API's answer
        assert source.candidates(movies[:3], source.table.n + 5) == LearnedSource(model).candidates(
            movies[:3], source.table.n + 5
        )  # beyond the table's depth: the live model
    finally:
        rt.close()
