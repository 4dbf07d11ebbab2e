// The start view: live title search and meaning search over overviews.
import { api, query } from "./api.js";
import { t } from "./i18n.js";
import { h, message, movieTile } from "./ui.js";

const state = { title: "", meaning: "" };

/** Calls `fn` after the user stops typing for `ms`. */
export function debounce(fn, ms = 200) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Live title search into `list`; only the latest answer is shown. */
export function titleSearch(input, list, render, limit = 12) {
  let latest = 0;
  const run = async () => {
    const q = input.value.trim();
    const ticket = ++latest;
    if (!q) return list.replaceChildren();
    try {
      const body = await api(`/movies?${query({ q, limit })}`);
      if (ticket !== latest) return;
      list.replaceChildren(...(body.items.length ? body.items.map(render) : [message(t("search.none"))]));
    } catch (error) {
      if (ticket === latest) list.replaceChildren(message(`${t("error")}: ${error.message}`, "error"));
    }
  };
  input.addEventListener("input", debounce(run));
  return run;
}

export function renderSearch(main) {
  const titleInput = h("input", { id: "title-q", type: "search", autocomplete: "off",
    placeholder: t("search.placeholder"), value: state.title });
  const titleResults = h("ul", { class: "grid", id: "title-results", "aria-live": "polite" });
  titleInput.addEventListener("input", () => { state.title = titleInput.value; });

  const meaningInput = h("input", { id: "meaning-q", type: "search", autocomplete: "off",
    placeholder: t("meaning.placeholder"), value: state.meaning, maxlength: "500" });
  const meaningResults = h("ul", { class: "grid", id: "meaning-results", "aria-live": "polite" });
  const meaningForm = h("form", { class: "searchbar", role: "search", onsubmit: async (event) => {
    event.preventDefault();
    state.meaning = meaningInput.value.trim();
    if (!state.meaning) return;
    meaningResults.replaceChildren(message(t("loading")));
    try {
      const body = await api(`/search?${query({ q: state.meaning, k: 12 })}`);
      meaningResults.replaceChildren(...body.items.map((item) =>
        movieTile({ movie_id: item.movie_id, movie_title: item.title },
          `${t("meaning.similarity")} ${item.score.toFixed(2)}`)));
    } catch (error) {
      meaningResults.replaceChildren(message(`${t("error")}: ${error.message}`, "error"));
    }
  } }, meaningInput, h("button", { type: "submit", class: "primary" }, t("meaning.go")));

  main.replaceChildren(
    h("section", { class: "hero-search" },
      h("h1", {}, t("search.title")), h("p", { class: "lead" }, t("search.lead")),
      h("label", { for: "title-q", class: "field-label" }, t("search.box")),
      h("div", { class: "searchbar" }, titleInput), titleResults),
    h("section", { class: "panel" },
      h("h2", {}, t("meaning.title")),
      h("label", { for: "meaning-q", class: "field-label" }, t("meaning.box")), meaningForm, meaningResults));
  const run = titleSearch(titleInput, titleResults, (m) => movieTile(m, m.original_title !== m.movie_title ? m.original_title : ""));
  if (state.title) run();
  titleInput.focus();
}
