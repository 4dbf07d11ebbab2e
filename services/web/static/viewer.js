// The viewer view (#/user/<id>): what the service knows of one viewer (their MovieLens ratings and their events,
// each with its type) and what they should watch next; "watched it" records a `completed` event (POST /events)
// and both lists follow it.
import { api, ApiError, query } from "./api.js";
import { t } from "./i18n.js";
import { linkHighlights, nextCard } from "./next.js";
import { h, message } from "./ui.js";

const K = 10;
const SHOWN = 20; // history rows shown, newest first, before "show all"

/** A fresh event id: a UUID where the browser offers one (secure contexts), else 128 random bits in hex. */
function eventId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function meta(item) {
  return [typeof item.rating === "number" ? `★${item.rating}` : "", item.at ? String(item.at).slice(0, 10) : ""]
    .filter(Boolean).join(" · ");
}

/** The viewer's history, newest first: each movie with its type (a MovieLens rating or an event). */
function historyRows(items, expanded, onMore) {
  if (!items.length) return [message(t("viewer.empty"))];
  const newest = [...items].reverse();
  const rows = (expanded ? newest : newest.slice(0, SHOWN)).map((item) =>
    h("li", { class: "watched", "data-movie-id": item.movie_id, "data-type": item.type },
      h("span", { class: "w-text" },
        h("a", { href: `#/movie/${item.movie_id}`, class: "w-title" }, item.title || `#${item.movie_id}`),
        h("span", { class: "w-meta" }, h("span", { class: `badge ev ev-${item.type}` }, t(`event.${item.type}`, item.type)),
          meta(item)))));
  return [
    h("ol", { class: "history viewer-history", id: "viewer-history" }, rows),
    newest.length > SHOWN ? h("button", { type: "button", class: "ghost more", id: "viewer-more",
      "aria-expanded": String(expanded), onclick: onMore },
    expanded ? t("viewer.fewer") : t("viewer.all").replace("{n}", String(newest.length))) : null,
  ].filter(Boolean);
}

/** One line for a refused write: the status and the API's message, with what to do about keys. */
function writeError(error) {
  if (!(error instanceof ApiError)) return `${t("viewer.notRecorded")}: ${error.message}`;
  const hint = error.status === 401 || error.status === 403 ? ` — ${t("viewer.keys")}` : "";
  return `${t("viewer.notRecorded")} (${error.status}): ${error.message}${hint}`;
}

function openForm() {
  const input = h("input", { id: "viewer-id", type: "text", autocomplete: "off", maxlength: "64", required: true,
    placeholder: t("next.userPlaceholder") });
  return h("form", { class: "user-form", onsubmit: (event) => {
    event.preventDefault();
    const id = input.value.trim();
    if (id) location.hash = `#/user/${encodeURIComponent(id)}`;
  } }, h("label", { for: "viewer-id", class: "field-label" }, t("viewer.open")),
  h("div", { class: "searchbar" }, input, h("button", { type: "submit", id: "viewer-open" }, t("next.userOpen"))));
}

export async function renderViewer(main, user) {
  const head = h("section", { class: "hero-search" }, h("h1", {}, user ? t("viewer.title").replace("{id}", user) : t("viewer.heading")),
    h("p", { class: "lead" }, t("viewer.lead")));
  document.title = `${t("viewer.heading")} · nextwatch`;
  if (!user) return void main.replaceChildren(head, h("section", { class: "panel" }, openForm()));
  const here = location.hash;
  const path = `/users/${encodeURIComponent(user)}`;
  const state = { items: [], expanded: false, titles: new Map() };
  const historyBox = h("div", { class: "history-box", id: "viewer-history-box" }, message(t("loading")));
  const box = h("div", { class: "next-box", id: "viewer-next", "aria-live": "polite" }, message(t("loading")));
  const status = h("p", { class: "message error", id: "viewer-error", role: "alert", hidden: true });

  const paintHistory = () => historyBox.replaceChildren(...historyRows(state.items, state.expanded, () => {
    state.expanded = !state.expanded;
    paintHistory();
  }));

  const watched = async (item) => {
    for (const button of box.querySelectorAll("button.watched-it")) button.disabled = true;
    status.hidden = true;
    try {
      await api("/events", { method: "POST", body: { events: [
        { event_id: eventId(), user_id: user, movie_id: item.movie_id, type: "completed" }] } });
    } catch (error) {
      status.textContent = writeError(error);
      status.hidden = false;
      for (const button of box.querySelectorAll("button.watched-it")) button.disabled = false;
      return;
    }
    await refresh();
  };

  /** Ask for the history and the next list together, and paint both (unless the viewer went elsewhere). */
  const refresh = async () => {
    box.setAttribute("aria-busy", "true");
    try {
      const [found, answer] = await Promise.all([api(`${path}/history`),
        api(`${path}/next?${query({ k: K, explain: "true" })}`)]);
      if (location.hash !== here) return;
      state.items = found.items;
      state.titles = new Map(found.items.map((i) => [i.movie_id, i.title]));
      paintHistory();
      box.replaceChildren(answer.items.length
        ? h("ol", { class: "next-list", id: "viewer-list" },
          answer.items.map((item, i) => nextCard(item, i + 1, state.titles, watched, t("viewer.watchedHint"))))
        : message(t("search.none")));
      box.dataset.known = String(found.items.length); // how many items this list answers (tests wait for it)
    } catch (error) {
      box.replaceChildren(message(`${t("error")}: ${error.message}`, "error"));
    } finally {
      box.removeAttribute("aria-busy");
    }
  };

  main.replaceChildren(head, status, h("div", { class: "next-layout" },
    h("section", { class: "panel history-panel", id: "viewer-panel" },
      h("h2", {}, t("viewer.history")), h("p", { class: "muted" }, t("viewer.historyLead")), historyBox, openForm()),
    h("section", { class: "panel next-results" }, h("header", { class: "next-head" }, h("h2", {}, t("next.results"))), box)));
  linkHighlights(historyBox, box);
  await refresh();
}
