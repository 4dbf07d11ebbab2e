// The rating view: pick movies, give 1-5 stars, get user-based recommendations with their reasons.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { titleSearch } from "./search.js";
import { h, message, recCard, year } from "./ui.js";

const picked = new Map(); // movie_id -> {title, stars}

function stars(movieId, entry) {
  const name = `stars-${movieId}`;
  const labels = [];
  const paint = () => labels.forEach((label, i) => label.classList.toggle("on", i < entry.stars));
  const group = h("fieldset", { class: "stars" }, h("legend", { class: "sr" }, `${entry.title} ${t("rate.stars")}`),
    [1, 2, 3, 4, 5].map((n) => {
      const input = h("input", { type: "radio", name, value: String(n), id: `${name}-${n}`, checked: entry.stars === n,
        onchange: () => { entry.stars = n; paint(); } });
      const label = h("label", { for: `${name}-${n}`, title: `${n}` }, "★", h("span", { class: "sr" }, ` ${n}`));
      labels.push(label);
      return [input, label];
    }));
  paint();
  return group;
}

function pickedList(list, refresh) {
  if (!picked.size) return list.replaceChildren(message(t("rate.empty")));
  list.replaceChildren(...[...picked].map(([movieId, entry]) => h("li", { class: "picked", "data-movie-id": movieId },
    h("span", { class: "picked-title" }, entry.title),
    stars(movieId, entry),
    h("button", { type: "button", class: "ghost", "aria-label": `${t("rate.remove")}: ${entry.title}`,
      onclick: () => { picked.delete(movieId); refresh(); } }, "✕"))));
}

async function recommend(out) {
  out.replaceChildren(message(t("loading")));
  const ratings = Object.fromEntries([...picked].map(([id, e]) => [String(id), e.stars]));
  try {
    const body = await api("/users/recommendations", { method: "POST", body: { ratings, k: 10, explain: true } });
    out.replaceChildren(h("h2", {}, t("rate.results")),
      body.degraded ? h("p", { class: "degraded", role: "status" },
        `${t("degraded")}: ${body.missing.map((p) => t(`part.${p}`)).join(", ")}`) : "",
      h("ol", { class: "recs wide", id: "user-recs" }, body.items.map((item, i) => recCard(item, i + 1))),
      body.ignored.length ? h("p", { class: "muted" }, `${t("rate.ignored")}: ${body.ignored.join(", ")}`) : "");
  } catch (error) {
    out.replaceChildren(message(`${t("error")}: ${error.message}`, "error"));
  }
}

export function renderRate(main) {
  const input = h("input", { id: "rate-q", type: "search", autocomplete: "off", placeholder: t("search.placeholder") });
  const found = h("ul", { class: "found", id: "rate-results", "aria-live": "polite" });
  const list = h("ul", { class: "picked-list", id: "picked" });
  const out = h("section", { class: "panel", id: "rate-out", "aria-live": "polite" });
  const go = h("button", { type: "button", class: "primary", id: "rate-go", onclick: () => recommend(out) }, t("rate.go"));
  const refresh = () => { pickedList(list, refresh); go.disabled = picked.size === 0; };
  const row = (m) => h("li", {}, h("span", {}, `${m.movie_title} `, h("span", { class: "muted" }, year(m))),
    h("button", { type: "button", "data-add": m.movie_id, "aria-label": `${t("rate.add")}: ${m.movie_title}`,
      onclick: () => { if (!picked.has(m.movie_id)) picked.set(m.movie_id, { title: m.movie_title, stars: 4 }); refresh(); } },
    `+ ${t("rate.add")}`));
  titleSearch(input, found, row, 8);
  main.replaceChildren(
    h("section", { class: "hero-search" }, h("h1", {}, t("rate.title")), h("p", { class: "lead" }, t("rate.lead")),
      h("label", { for: "rate-q", class: "field-label" }, t("search.box")), h("div", { class: "searchbar" }, input), found),
    h("section", { class: "panel" }, list, h("div", { class: "actions" }, go)), out);
  refresh();
  input.focus();
}
