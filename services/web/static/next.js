// The "continue watching" view: a history picked in order (or a MovieLens user's real one) and what to watch
// next after it, each item with the history movies that led to it; the list follows every change of the history.
import { api, ApiError, query } from "./api.js";
import { t } from "./i18n.js";
import { debounce, titleSearch } from "./search.js";
import { h, message, placeholder, year } from "./ui.js";

const K = 10;
const STORE = "nextwatch.history";
const SHOWN = 12; // history rows shown before "show earlier"
const BECAUSE_SHOWN = 3; // history titles named on a because-line (all of them in its tooltip)

/** The viewer's own history, oldest first: {movie_id, title, year?, rating?, at?}; kept in localStorage. */
const state = { history: load(), from: null, strategy: "hybrid", expanded: false };
let strategies = null;
let ticket = 0;

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) ?? "null");
    if (Array.isArray(saved?.history)) return saved.history.filter((e) => Number.isInteger(e?.movie_id));
  } catch { /* a broken entry starts an empty history */ }
  return [];
}

function save() {
  localStorage.setItem(STORE, JSON.stringify({ history: state.history }));
}

/** Put a movie at the end of the history (moving it there when it is already in). */
function append(entry) {
  state.history = state.history.filter((e) => e.movie_id !== entry.movie_id);
  state.history.push(entry);
  save();
}

function move(movieId, by) {
  const i = state.history.findIndex((e) => e.movie_id === movieId);
  const j = i + by;
  if (i < 0 || j < 0 || j >= state.history.length) return;
  [state.history[i], state.history[j]] = [state.history[j], state.history[i]];
  save();
}

function remove(movieId) {
  state.history = state.history.filter((e) => e.movie_id !== movieId);
  save();
}

function sourceLabel(source) {
  return t(`source.${source}`, source);
}

function meta(entry) {
  return [entry.year, typeof entry.rating === "number" ? `★${entry.rating}` : "", entry.at ? String(entry.at).slice(0, 10) : ""]
    .filter(Boolean).join(" · ");
}

/** The history as an ordered list; `editable` adds reorder and remove buttons. */
function historyList(entries, { editable, ignored, onChange }) {
  const list = h("ol", { class: "history", id: "history" });
  const hidden = state.expanded ? 0 : Math.max(0, entries.length - SHOWN);
  const rows = entries.map((entry, i) => {
    if (i < hidden) return null;
    const last = i === entries.length - 1;
    const act = (name, label, text, disabled, run) => h("button", { type: "button", class: "ghost icon",
      "data-act": name, "data-id": entry.movie_id, "aria-label": `${label}: ${entry.title}`, title: label, disabled,
      onclick: () => { run(); onChange(name, entry.movie_id); } }, text);
    return h("li", { class: `watched${ignored.has(entry.movie_id) ? " unknown" : ""}`, "data-movie-id": entry.movie_id },
      h("span", { class: "pos", "aria-hidden": "true" }, String(i + 1)),
      h("span", { class: "w-text" },
        h("a", { href: `#/movie/${entry.movie_id}`, class: "w-title" }, entry.title || `#${entry.movie_id}`),
        h("span", { class: "w-meta" }, meta(entry),
          last ? h("span", { class: "badge latest" }, t("next.latest")) : null,
          ignored.has(entry.movie_id) ? h("span", { class: "badge warn" }, t("next.unknown")) : null)),
      editable ? h("span", { class: "w-acts" },
        act("up", t("next.up"), "↑", i === 0, () => move(entry.movie_id, -1)),
        act("down", t("next.down"), "↓", last, () => move(entry.movie_id, 1)),
        act("remove", t("next.remove"), "✕", false, () => remove(entry.movie_id))) : null);
  });
  list.replaceChildren(...rows.filter(Boolean));
  const more = hidden || (state.expanded && entries.length > SHOWN)
    ? h("button", { type: "button", class: "ghost more", id: "history-more", "aria-expanded": String(state.expanded),
      onclick: () => { state.expanded = !state.expanded; onChange("more"); } },
    state.expanded ? t("next.less") : t("next.more").replace("{n}", String(hidden)))
    : null;
  if (!entries.length) return message(t(editable ? "next.empty" : "next.userEmpty"));
  return [more, list];
}

/** One item of the next list: the movie, its source and the history movies that led to it (most recent first);
 * with `onWatched`, a "watched it" button (`hint`: its tooltip). */
export function nextCard(item, rank, titles, onWatched, hint = t("next.watchedHint")) {
  const because = item.because ?? [];
  const name = (id) => titles.get(id) || `#${id}`;
  const shown = because.slice(0, BECAUSE_SHOWN);
  return h("li", { class: "next-item", "data-movie-id": item.movie_id, "data-because": because.join(" ") },
    h("div", { class: "next-top" },
      h("a", { href: `#/movie/${item.movie_id}`, class: "rec-link" },
        placeholder(item.movie_id, item.title, "small"),
        h("span", { class: "rec-text" },
          h("span", { class: "rec-title" }, `${rank}. ${item.title || item.movie_id}`),
          h("span", { class: `badge src-${item.source}` }, sourceLabel(item.source)))),
      onWatched ? h("button", { type: "button", class: "ghost watched-it", "data-watched": item.movie_id,
        title: hint, "aria-label": `${t("next.watched")}: ${item.title}`, onclick: () => onWatched(item) },
      `+ ${t("next.watched")}`) : null),
    because.length
      ? h("p", { class: "because-line", title: because.map(name).join(" · ") },
        h("span", { class: "muted" }, `${t("next.because")} `),
        shown.map((id) => h("span", { class: "chip", "data-from": id }, name(id))),
        because.length > shown.length
          ? h("span", { class: "muted more-because" }, t("next.andMore").replace("{n}", String(because.length - shown.length))) : null)
      : h("p", { class: "because-line muted" }, t("next.noBecause")));
}

/** Hovering or focusing a next item lights the history movies that led to it, and the other way round. */
export function linkHighlights(historyBox, out) {
  const light = (on, ids, scope, attr) => {
    for (const node of scope.querySelectorAll("[data-movie-id]")) {
      const match = attr ? (node.dataset.because ?? "").split(" ").includes(ids) : ids.includes(node.dataset.movieId);
      node.classList.toggle("lit", on && match);
    }
  };
  const bind = (box, handler) => {
    for (const type of ["mouseover", "focusin"]) box.addEventListener(type, (e) => handler(e.target.closest("[data-movie-id]")));
    for (const type of ["mouseleave", "focusout"]) box.addEventListener(type, () => handler(null));
  };
  bind(out, (item) => light(Boolean(item), (item?.dataset.because ?? "").split(" ").filter(Boolean), historyBox, false));
  bind(historyBox, (row) => light(Boolean(row), row?.dataset.movieId ?? "", out, true));
}

async function strategyList() {
  strategies ??= api("/strategies").then((b) => b.items).catch(() => [{ name: "hybrid", available: true }]);
  return strategies;
}

function strategySelect(items, onChange) {
  const select = h("select", { id: "next-strategy", onchange: () => { state.strategy = select.value; onChange(); } },
    items.map((s) => h("option", { value: s.name, selected: s.name === state.strategy, disabled: !s.available },
      `${t(`strategy.${s.name}`, s.label)}${s.name === "hybrid" ? ` (${t("strategy.default")})` : ""}`)));
  return h("label", { class: "inline", for: "next-strategy" }, `${t("next.strategy")} `, select);
}

/** Ask for the next list and paint it into `box`; only the latest answer is shown. */
async function fetchNext(view) {
  const mine = ++ticket;
  const asked = view.entries.map((e) => e.movie_id).join(",");
  view.box.setAttribute("aria-busy", "true");
  view.box.classList.add("busy");
  try {
    const answer = view.user
      ? await api(`/users/${encodeURIComponent(view.user)}/next?${query({ k: K, strategy: state.strategy, explain: "true" })}`)
      : await api("/next", { method: "POST", body: { history: state.history.map(asQuery), k: K, strategy: state.strategy, explain: true } });
    if (mine !== ticket) return;
    view.paint(answer);
    view.box.dataset.history = asked;  // the history this list answers (tests wait for it)
  } catch (error) {
    if (mine !== ticket) return;
    view.box.replaceChildren(message(error instanceof ApiError && error.status === 503
      ? t("strategy.unavailable") : `${t("error")}: ${error.message}`, error.status === 503 ? "warn" : "error"));
  } finally {
    if (mine === ticket) { view.box.removeAttribute("aria-busy"); view.box.classList.remove("busy"); }
  }
}

function asQuery(entry) {
  if (typeof entry.rating !== "number" && !entry.at) return entry.movie_id;
  return { movie_id: entry.movie_id, ...(typeof entry.rating === "number" ? { rating: entry.rating } : {}),
    ...(entry.at ? { at: entry.at } : {}) };
}

function answerNotes(answer, view) {
  return [
    answer.degraded ? h("p", { class: "degraded", role: "status" },
      `${t("degraded")}: ${answer.missing.map((p) => t(`part.${p}`)).join(", ")}`) : null,
    answer.strategy !== state.strategy ? h("p", { class: "muted", id: "next-fallback" },
      `${t("next.fallback")} (${t(`strategy.${answer.strategy}`, answer.strategy)})`) : null,
    answer.ignored?.length ? h("p", { class: "muted", id: "next-ignored" },
      `${t("next.ignored")}: ${answer.ignored.map((id) => view.titles.get(id) || `#${id}`).join(", ")}`) : null,
  ];
}

async function addById(movieId) {
  try {
    const movie = await api(`/movies/${movieId}`);
    append({ movie_id: movie.movie_id, title: movie.movie_title, year: year(movie) });
  } catch { /* an unknown id is not added */ }
}

export async function renderNext(main, params) {
  const user = (params.get("user") ?? "").trim();
  const add = Number(params.get("add"));
  if (Number.isInteger(add) && add > 0) {
    await addById(add);
    state.from = null;
    history.replaceState(null, "", "#/next");
  }
  const names = await strategyList();
  if (!location.hash.startsWith("#/next")) return;  // the viewer went elsewhere meanwhile
  document.title = `${t("next.title")} · nextwatch`;
  const box = h("div", { class: "next-box", id: "next-out", "aria-live": "polite" }, message(t("loading")));
  const historyBox = h("div", { class: "history-box", id: "history-box" });
  const view = { user: user || null, box, titles: new Map(), entries: [], ignored: new Set() };
  const later = debounce(() => fetchNext(view), 120);

  const paintHistory = (action, movieId) => {
    view.titles = new Map(view.entries.map((e) => [e.movie_id, e.title]));
    historyBox.replaceChildren(...[historyList(view.entries, { editable: !view.user, ignored: view.ignored,
      onChange: (what, id) => {
        if (!view.user) view.entries = state.history;
        paintHistory(what, id);
        if (what !== "more") later();
      } })].flat().filter(Boolean));
    if (action) restoreFocus(historyBox, action, movieId);
  };
  view.paint = (answer) => {
    const ignored = new Set(answer.ignored ?? []);
    const changed = ignored.size !== view.ignored.size || [...ignored].some((id) => !view.ignored.has(id));
    view.ignored = ignored;
    if (changed) paintHistory();
    const watched = view.user ? null : (item) => {
      append({ movie_id: item.movie_id, title: item.title });
      view.entries = state.history;
      paintHistory();
      fetchNext(view);
    };
    box.replaceChildren(...answerNotes(answer, view).filter(Boolean),
      answer.items.length
        ? h("ol", { class: "next-list", id: "next-list" }, answer.items.map((item, i) => nextCard(item, i + 1, view.titles, watched)))
        : message(t("search.none")));
  };

  const head = h("section", { class: "hero-search" }, h("h1", {}, t("next.title")), h("p", { class: "lead" }, t("next.lead")));
  const results = h("section", { class: "panel next-results" },
    h("header", { class: "next-head" }, h("h2", {}, t("next.results")), strategySelect(names, () => fetchNext(view))), box);
  const side = h("section", { class: "panel history-panel", id: "history-panel" });

  if (view.user) {
    side.append(h("h2", {}, t("next.userHistory").replace("{id}", view.user)), h("p", { class: "muted" }, t("next.userLead")), historyBox);
    main.replaceChildren(head, h("div", { class: "next-layout" }, side, results));
    historyBox.replaceChildren(message(t("loading")));
    try {
      const found = await api(`/users/${encodeURIComponent(view.user)}/history`);
      view.entries = found.items.map((i) => ({ movie_id: i.movie_id, title: i.title, rating: i.rating, at: i.at }));
      if (!location.hash.startsWith("#/next")) return;
    } catch (error) {
      historyBox.replaceChildren(message(`${t("error")}: ${error.message}`, "error"));
      return;
    }
    paintHistory();
    side.append(h("div", { class: "actions" },
      view.entries.length ? h("button", { type: "button", id: "user-copy", onclick: () => {
        state.history = view.entries.slice(-500).map((e) => ({ ...e }));
        state.from = view.user;
        state.expanded = false;
        save();
        location.hash = "#/next";
      } }, t("next.copy")) : null,
      h("a", { href: `#/user/${encodeURIComponent(view.user)}`, class: "ext", id: "user-viewer" }, t("next.viewer")),
      h("a", { href: "#/next", class: "ext" }, t("next.mine"))));
  } else {
    view.entries = state.history;
    const input = h("input", { id: "next-q", type: "search", autocomplete: "off", placeholder: t("search.placeholder") });
    const found = h("ul", { class: "found", id: "next-results", "aria-live": "polite" });
    const row = (m) => h("li", {}, h("span", {}, `${m.movie_title} `, h("span", { class: "muted" }, year(m))),
      h("button", { type: "button", "data-add": m.movie_id, "aria-label": `${t("rate.add")}: ${m.movie_title}`,
        onclick: () => {
          append({ movie_id: m.movie_id, title: m.movie_title, year: year(m) });
          view.entries = state.history;
          paintHistory();
          later();
        } }, `+ ${t("rate.add")}`));
    titleSearch(input, found, row, 8);
    const userId = h("input", { id: "user-id", type: "text", inputmode: "numeric", autocomplete: "off",
      placeholder: t("next.userPlaceholder"), maxlength: "128", required: true });
    const clear = h("button", { type: "button", class: "ghost", id: "history-clear", onclick: () => {
      state.history = []; state.from = null; save(); view.entries = state.history; paintHistory(); later();
    } }, t("next.clear"));
    side.append(
      h("h2", {}, t("next.history")),
      state.from ? h("p", { class: "muted" }, t("next.edited").replace("{id}", state.from)) : "",
      h("label", { for: "next-q", class: "field-label" }, t("next.pick")), h("div", { class: "searchbar" }, input), found,
      historyBox, h("div", { class: "actions" }, clear),
      h("form", { class: "user-form", onsubmit: (event) => {
        event.preventDefault();
        const id = userId.value.trim();
        if (id) location.hash = `#/next?${query({ user: id })}`;
      } },
      h("label", { for: "user-id", class: "field-label" }, t("next.user")),
      h("div", { class: "searchbar" }, userId, h("button", { type: "submit", id: "user-open" }, t("next.userOpen")))));
    main.replaceChildren(head, h("div", { class: "next-layout" }, side, results));
    paintHistory();
  }
  linkHighlights(historyBox, box);
  await fetchNext(view);
}

/** After a reorder or removal, keep keyboard focus on the moved movie's button (or a neighbour). */
function restoreFocus(root, action, movieId) {
  if (action === "more") return void root.querySelector("#history-more")?.focus();
  const same = root.querySelector(`[data-act="${action}"][data-id="${movieId}"]`);
  if (same && !same.disabled) return void same.focus();
  const row = root.querySelector(`li[data-movie-id="${movieId}"]`);
  const other = row?.querySelector("button:not([disabled])") ?? root.querySelector("[data-act]:not([disabled])");
  if (other) other.focus();
}
