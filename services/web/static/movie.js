// The movie view: details, the series strip and every strategy's recommendations side by side.
import { api, ApiError, query } from "./api.js";
import { t } from "./i18n.js";
import { h, message, movieTile, poster, recCard, year } from "./ui.js";

const K = 10;
const filters = { genre: "", include_adult: false, exclude: "" };
let genres = null;
let strategies = null;

async function loadLists() {
  genres ??= api("/genres").then((b) => b.items).catch(() => []);
  strategies ??= api("/strategies").then((b) => b.items).catch(() => [{ name: "hybrid", available: true }]);
  return Promise.all([genres, strategies]);
}

function details(movie) {
  const facts = [year(movie), movie.runtime ? `${movie.runtime}′` : ""].filter(Boolean).join(" · ");
  return h("section", { class: "movie-hero" },
    poster(movie, "large"),
    h("div", { class: "movie-info" },
      h("a", { href: "#/", class: "back" }, t("movie.back")),
      h("h1", { id: "movie-title" }, movie.movie_title),
      movie.original_title && movie.original_title !== movie.movie_title
        ? h("p", { class: "original" }, movie.original_title) : null,
      h("p", { class: "facts" }, facts),
      h("ul", { class: "chips", "aria-label": t("filters.genre") }, movie.genres.map((g) => h("li", {}, g))),
      movie.tagline ? h("p", { class: "tagline" }, movie.tagline) : null,
      movie.overview ? h("p", { class: "overview" }, movie.overview) : null,
      h("p", { class: "facts" },
        movie.rating_avg ? `★ ${movie.rating_avg.toFixed(1)} · ${movie.rating_count} ${t("movie.ratings")}` : "",
        movie.imdb_url ? h("a", { href: movie.imdb_url, class: "ext", rel: "noopener", target: "_blank" }, t("movie.imdb")) : null),
      h("p", {}, h("a", { href: `#/next?add=${movie.movie_id}`, class: "cta", id: "continue" }, t("movie.continue")))));
}

async function seriesStrip(movie) {
  if (movie.series_id === null || movie.series_id === undefined) return null;
  try {
    const series = await api(`/series/${movie.series_id}`);
    if (series.movies.length < 2) return null;
    return h("section", { class: "panel", id: "series" },
      h("h2", {}, `${t("movie.series")} · ${series.series_title}`),
      h("ol", { class: "strip" }, series.movies.map((m) => {
        const tile = movieTile(m);
        if (m.movie_id === movie.movie_id) tile.querySelector("a").setAttribute("aria-current", "page");
        return tile;
      })));
  } catch {
    return null;
  }
}

function filterForm(genreNames, onApply) {
  const select = h("select", { id: "f-genre" }, h("option", { value: "" }, t("filters.anyGenre")),
    genreNames.map((g) => h("option", { value: g, selected: g === filters.genre }, g)));
  const adult = h("input", { id: "f-adult", type: "checkbox", checked: filters.include_adult });
  const exclude = h("input", { id: "f-exclude", type: "text", inputmode: "numeric", placeholder: "1,2",
    value: filters.exclude, pattern: "[0-9, ]*" });
  return h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(filters, { genre: select.value, include_adult: adult.checked, exclude: exclude.value.trim() });
    onApply();
  } },
    h("label", { for: "f-genre" }, t("filters.genre")), select,
    h("label", { class: "check", for: "f-adult" }, adult, t("filters.adult")),
    h("label", { for: "f-exclude" }, t("filters.exclude")), exclude,
    h("button", { type: "submit" }, t("filters.apply")));
}

function strategyColumn(info, answer, error) {
  const head = h("header", {}, h("h3", {}, t(`strategy.${info.name}`, info.label)),
    h("code", {}, info.name), info.name === "hybrid" ? h("span", { class: "badge default" }, t("strategy.default")) : null);
  let body;
  if (error) body = message(error instanceof ApiError && error.status === 503 ? t("strategy.unavailable") : `${t("error")}: ${error.message}`, "warn");
  else if (!info.available) body = message(t("strategy.unavailable"), "warn");
  else {
    body = [answer.degraded ? h("p", { class: "degraded", role: "status" },
      `${t("degraded")}: ${answer.missing.map((p) => t(`part.${p}`)).join(", ")}`) : null,
    h("ol", { class: "recs" }, answer.items.map((item, i) => recCard(item, i + 1)))];
  }
  return h("section", { class: `strategy${info.name === "hybrid" ? " main" : ""}`, "data-strategy": info.name }, head, body);
}

async function renderRecs(container, movieId, names) {
  container.replaceChildren(message(t("loading")));
  const params = query({ k: K, explain: "true", genre: filters.genre, include_adult: filters.include_adult || "",
    exclude: filters.exclude });
  const answers = await Promise.all(names.map(async (info) => {
    if (!info.available) return [info, null, null];
    try {
      return [info, await api(`/movies/${movieId}/recommendations?strategy=${encodeURIComponent(info.name)}&${params}`), null];
    } catch (error) {
      return [info, null, error];
    }
  }));
  container.replaceChildren(...answers.map(([info, answer, error]) => strategyColumn(info, answer, error)));
}

export async function renderMovie(main, movieId) {
  main.replaceChildren(message(t("loading")));
  let movie;
  try {
    movie = await api(`/movies/${movieId}`);
  } catch (error) {
    main.replaceChildren(message(error.status === 404 ? t("notFound") : `${t("error")}: ${error.message}`, "error"));
    return;
  }
  const [genreNames, names] = await loadLists();
  const recs = h("div", { class: "strategies", id: "strategies" });
  const series = await seriesStrip(movie);
  if (!main.isConnected) return;  // the page moved on meanwhile: no title to set, no lists to ask for
  main.replaceChildren(details(movie), series ?? "",
    h("section", { class: "panel" }, h("h2", {}, t("movie.recs")),
      filterForm(genreNames, () => renderRecs(recs, movie.movie_id, names)), recs));
  document.title = `${movie.movie_title} · nextwatch`;
  await renderRecs(recs, movie.movie_id, names);
}
