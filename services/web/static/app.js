// The page's router: /evaluation, #/movie/<id>, #/rate, #/next[?user=<id>], #/user[/<id>], #/experiments[/<name>],
// else the search view;
// plus language and readiness.
import { readiness } from "./api.js";
import { applyStatic, currentLang, setLang, t } from "./i18n.js";
import { renderEvaluation } from "./evaluation.js";
import { renderExperiments } from "./experiments.js";
import { renderMovie } from "./movie.js";
import { renderNext } from "./next.js";
import { renderRate } from "./rate.js";
import { renderSearch } from "./search.js";
import { renderViewer } from "./viewer.js";
import { h } from "./ui.js";

const main = document.getElementById("main");
let ready = null;

function route() {
  if (location.pathname === "/evaluation") return { view: "evaluation" };
  const movie = location.hash.match(/^#\/movie\/(\d+)/);
  if (movie) return { view: "movie", id: Number(movie[1]) };
  if (location.hash.startsWith("#/rate")) return { view: "rate" };
  const next = location.hash.match(/^#\/next(?:\?(.*))?$/);
  if (next) return { view: "next", params: new URLSearchParams(next[1] ?? "") };
  const user = location.hash.match(/^#\/user(?:\/(.*))?$/);
  if (user) return { view: "user", id: decoded(user[1] ?? "").trim() };
  const experiment = location.hash.match(/^#\/experiments(?:\/(.*))?$/);
  if (experiment) return { view: "experiments", id: decoded(experiment[1] ?? "") };
  return { view: "search" };
}

/** A hash part decoded (as typed when it is not valid percent-encoding). */
function decoded(part) {
  try { return decodeURIComponent(part); } catch { return part; }
}

function render() {
  const { view, id, params } = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.toggleAttribute("aria-current", link.dataset.nav === view || (view === "movie" && link.dataset.nav === "search"));
  }
  document.title = "nextwatch";
  // each render draws into a pane of its own: an answer that arrives after the page has moved on (to another view,
  // or to the same one drawn again) lands in a pane no longer on the page, never over the one showing
  const pane = h("div", { class: "view" });
  main.replaceChildren(pane);
  if (view === "evaluation") renderEvaluation(pane);
  else if (view === "movie") renderMovie(pane, id).then(() => { if (pane.isConnected) window.scrollTo(0, 0); });
  else if (view === "rate") renderRate(pane);
  else if (view === "next") renderNext(pane, params);
  else if (view === "user") renderViewer(pane, id);
  else if (view === "experiments") renderExperiments(pane, id);
  else renderSearch(pane);
  showNotice();
}

/** A banner naming the parts /ready reports as down (the page keeps working without them). */
function showNotice() {
  const notice = document.getElementById("notice");
  if (!ready || ready.status === "ready") return void (notice.hidden = true);
  const parts = Object.entries(ready.parts).filter(([, state]) => state !== "ok")
    .map(([part, state]) => `${t(`part.${part}`)} (${state})`);
  notice.replaceChildren(h("strong", {}, `${t("notice.ready")}: `), parts.join(", "), " — ", t("notice.hint"));
  notice.hidden = false;
}

function switchLanguage() {
  setLang(currentLang() === "ko" ? "en" : "ko");
  document.getElementById("lang").textContent = currentLang() === "ko" ? "EN" : "한국어";
  render();
}

document.getElementById("lang").addEventListener("click", switchLanguage);
document.getElementById("lang").textContent = currentLang() === "ko" ? "EN" : "한국어";
window.addEventListener("hashchange", () => {
  if (location.pathname === "/evaluation" && location.hash.startsWith("#/")) location.assign(`/${location.hash}`);
  else render();
});
applyStatic();
render();
readiness().then((answer) => { ready = answer; showNotice(); }).catch(() => {});
