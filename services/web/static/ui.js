// Small DOM helpers shared by the views: elements, posters, movie cards, explanations.
import { t } from "./i18n.js";

/** An element with attributes (on* are listeners) and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value; // through the CSSOM: the page's CSP has no inline styles
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

function initials(title) {
  const words = (title || "?").replace(/\(.*?\)/g, "").trim().split(/\s+/).filter(Boolean);
  if (/^\p{Script=Hangul}/u.test(words[0] ?? "")) return [...words[0]].slice(0, 2).join("");
  return words.slice(0, 2).map((w) => [...w][0]).join("").toUpperCase() || "?";
}

/** A neat placeholder poster: a gradient whose hue comes from the id, with the title's initials. */
export function placeholder(movieId, title, size = "") {
  const hue = (Number(movieId) * 47) % 360;
  return h("div", { class: `poster placeholder ${size}`, style: `--hue:${hue}`, "aria-hidden": "true" },
    h("span", {}, initials(title)));
}

/** The poster image when known (falls back to the placeholder if it fails to load). */
export function poster(movie, size = "") {
  const title = movie.movie_title || movie.title;
  if (!movie.poster_url) return placeholder(movie.movie_id, title, size);
  const img = h("img", { class: `poster ${size}`, src: movie.poster_url, alt: "", loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(placeholder(movie.movie_id, title, size)));
  return img;
}

export function year(movie) {
  return movie.release_date ? String(movie.release_date).slice(0, 4) : "";
}

/** Why an item is recommended: contributions and viewers when the API explains, else its source. */
export function explanation(item) {
  const lines = [];
  if (item.contributions && Object.keys(item.contributions).length) {
    const parts = Object.entries(item.contributions).sort((a, b) => b[1] - a[1]);
    const total = parts.reduce((sum, [, value]) => sum + value, 0) || 1;  // each source's share of the score
    lines.push(h("ul", { class: "shares" }, parts.map(([source, value]) => {
      const share = Math.round((value / total) * 100);
      return h("li", {}, h("span", { class: "bar", style: `--share:${share}%` }), `${t(`source.${source}`)} ${share}%`);
    })));
  } else if (item.source) {
    lines.push(h("p", {}, `${t("why.source")}: ${item.source} — ${t(`source.${item.source}`)}`));
  }
  if (item.viewers !== undefined && item.viewers !== null) {
    lines.push(h("p", {}, `${t("why.viewers")}: ${item.viewers}`));
  }
  if (item.because && item.because.length) {
    lines.push(h("p", { class: "why-label" }, t("why.because")));
    lines.push(h("ul", { class: "because" }, item.because.map((b) =>
      h("li", {}, `${b.title} · ${Math.round(b.contribution * 100)}%`))));
  }
  if (typeof item.score === "number") lines.push(h("p", { class: "muted" }, `${t("why.score")} ${item.score.toFixed(3)}`));
  return lines;
}

let tipCount = 0;

/** A recommendation card linking to the movie; its explanation shows on hover and keyboard focus. */
export function recCard(item, rank) {
  const tipId = `why-${++tipCount}`;
  return h("li", { class: "rec", "data-movie-id": item.movie_id },
    h("a", { href: `#/movie/${item.movie_id}`, class: "rec-link", "aria-describedby": tipId },
      placeholder(item.movie_id, item.title, "small"),
      h("span", { class: "rec-text" },
        h("span", { class: "rec-title" }, `${rank}. ${item.title || item.movie_id}`),
        h("span", { class: `badge src-${item.source}` }, t(`source.${item.source}`)))),
    h("div", { class: "why", id: tipId, role: "tooltip" }, h("strong", {}, t("why.title")), explanation(item)));
}

/** A clickable movie tile (search results, series strip). */
export function movieTile(movie, extra) {
  return h("li", { class: "tile", "data-movie-id": movie.movie_id },
    h("a", { href: `#/movie/${movie.movie_id}` }, poster(movie),
      h("span", { class: "tile-title" }, movie.movie_title || movie.title),
      h("span", { class: "tile-meta" }, [year(movie), extra].filter(Boolean).join(" · "))));
}

/** A message box (errors, empty results). */
export function message(text, kind = "info") {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}
