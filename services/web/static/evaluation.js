// The evaluation view: the latest report's three protocols (one movie, history, last item), each a table with
// intervals and its paired comparisons, plus the plot, protocol, cutoff and fingerprint.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, message } from "./ui.js";

// report.json keys of the protocols, in the order shown; the two history protocols may be absent (older reports)
const PROTOCOLS = [
  { key: "strategies", id: "eval-table", title: "eval.oneMovie", lead: "eval.oneMovieLead" },
  { key: "history", id: "eval-history", title: "eval.history", lead: "eval.historyLead" },
  { key: "last_item", id: "eval-last-item", title: "eval.lastItem", lead: "eval.lastItemLead" },
];

function fixed(value, digits = 4) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

function signed(value) {
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(4)}`;
}

function withInterval(scores, key) {
  const ci = scores[`${key}_ci`];
  return h("td", {}, h("span", { class: "num" }, fixed(scores[key])),
    ci ? h("span", { class: "ci" }, ` [${ci[0].toFixed(4)}, ${ci[1].toFixed(4)}]`) : null);
}

function table(strategies, k, id) {
  const metrics = [`hr@${k}`, `ndcg@${k}`, `mrr@${k}`];
  const best = Math.max(...Object.values(strategies).map((s) => s[metrics[0]] ?? -1));
  return h("div", { class: "table-wrap" }, h("table", { id },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("eval.strategy")),
      metrics.map((m) => h("th", { scope: "col" }, m.toUpperCase())),
      h("th", { scope: "col" }, t("eval.answered")), h("th", { scope: "col" }, t("eval.coverage")))),
    h("tbody", {}, Object.entries(strategies).map(([name, s]) =>
      h("tr", { class: s[metrics[0]] === best ? "best" : "" }, h("th", { scope: "row" }, name),
        metrics.map((m) => withInterval(s, m)),
        h("td", { class: "num" }, fixed(s.answered, 3)), h("td", { class: "num" }, fixed(s.coverage)))))));
}

/** One paired comparison: the HR difference, its interval and whether it excludes 0. */
function comparison(c, against) {
  if (!c || typeof c.difference !== "number") return null;
  const [lo, hi] = c.ci ?? [0, 0];
  const verdict = lo > 0 ? ["ok", "eval.above"] : hi < 0 ? ["bad", "eval.below"] : ["muted", "eval.same"];
  return h("li", { "data-against": c.against },
    h("span", {}, `${c.strategy} − ${against ?? c.against}`), " ",
    h("span", { class: "num" }, `${String(c.metric ?? "hr").toUpperCase()} ${signed(c.difference)}`),
    h("span", { class: "ci" }, ` [${signed(lo)}, ${signed(hi)}]`), " ",
    h("span", { class: `verdict ${verdict[0]}` }, t(verdict[1])));
}

function pairedList(paired) {
  if (!paired) return null;
  const main = [
    comparison(paired.best_other, paired.best_other ? `${paired.best_other.against} (${t("eval.vsBest")})` : ""),
    comparison(paired.one_movie_hybrid, t("eval.vsOneMovie")),
  ].filter(Boolean);
  const parts = Object.values(paired.parts ?? {}).map((c) => comparison(c)).filter(Boolean);
  const below = paired.hybrid_below ?? [];
  return h("div", { class: "paired" },
    main.length ? h("ul", {}, main) : null,
    parts.length ? [h("p", { class: "field-label" }, t("eval.parts")), h("ul", { class: "parts" }, parts),
      h("p", { class: below.length ? "message warn" : "message" },
        below.length ? `${t("eval.hybridBelow")}: ${below.join(", ")}` : t("eval.hybridNotBelow"))] : null);
}

function facts(section, key) {
  const items = [];
  if (section.rows !== undefined) items.push(`${section.rows.toLocaleString()} ${t("eval.rows")}`);
  if (section.users !== undefined) items.push(`${t("eval.users")} ${section.users.toLocaleString()}`);
  if (section.history_length?.median !== undefined) items.push(`${t("eval.historyLength")} ${section.history_length.median}`);
  if (section.targets?.first) items.push(`${t("eval.targets")} ${section.targets.first} .. ${section.targets.last}`);
  const leak = section.leakage;
  return [
    items.length ? h("p", { class: "muted" }, items.join(" · ")) : null,
    key === "last_item" && leak ? h("p", { class: "message warn leak" },
      t("eval.leakage").replace("{share}", `${fixed((leak.later_training_share ?? 0) * 100, 1)}%`)) : null,
    typeof section.protocol === "string"
      ? h("details", { class: "how" }, h("summary", {}, t("eval.how")), h("p", { lang: "en" }, section.protocol)) : null,
  ];
}

function protocolSection(report, spec) {
  const k = report.protocol.k;
  if (spec.key === "strategies") {
    return h("section", { class: "panel", id: `${spec.id}-section` }, h("h2", {}, t(spec.title)),
      h("p", { class: "muted" }, t(spec.lead)), table(report.strategies, k, spec.id),
      report.comparison ? h("div", { class: "paired" }, h("ul", {},
        comparison(report.comparison, `${report.comparison.against} (${t("eval.vsBest")})`))) : null);
  }
  const section = report[spec.key];
  if (!section?.strategies) return null;
  return h("section", { class: "panel", id: `${spec.id}-section` }, h("h2", {}, t(spec.title)),
    h("p", { class: "muted" }, t(spec.lead)), facts(section, spec.key),
    table(section.strategies, k, spec.id), pairedList(section.paired));
}

function protocol(report) {
  const p = report.protocol;
  const rows = [
    [t("eval.minRatings"), p.min_ratings], ["k", p.k],
    [t("eval.pairs"), `${report.pairs.toLocaleString()} · ${t("eval.users")} ${report.users}`],
    [t("eval.window"), `${report.test_window.first} .. ${report.test_window.last}`],
    [t("eval.cutoff"), report.cutoff],
    [t("eval.ci"), `${p.resamples} · seed ${p.seed}`],
    [t("eval.fingerprint"), h("code", { class: "hash" }, report.data.sha256)],
  ];
  return h("dl", { class: "protocol", id: "eval-protocol" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

export async function renderEvaluation(main) {
  main.replaceChildren(message(t("loading")));
  let report;
  try {
    report = await api("/evaluation/report.json");
  } catch (error) {
    main.replaceChildren(h("section", { class: "panel" }, h("h1", {}, t("eval.title")),
      message(`${t("eval.missing")}: ${error.message}`, "warn")));
    return;
  }
  document.title = `${t("eval.title")} · nextwatch`;
  const shown = PROTOCOLS.filter((spec) => spec.key === "strategies" || report[spec.key]?.strategies);
  main.replaceChildren(
    h("section", { class: "hero-search" }, h("h1", {}, t("eval.title")), h("p", { class: "lead" }, t("eval.lead")),
      shown.length > 1 ? h("nav", { class: "jump", "aria-label": t("eval.protocols") },
        shown.map((spec) => h("a", { href: `#${spec.id}-section`, onclick: (event) => {
          event.preventDefault();  // the hash routes views: scroll instead of navigating
          document.getElementById(`${spec.id}-section`)?.scrollIntoView({ behavior: "smooth" });
        } }, t(spec.title)))) : null),
    ...shown.map((spec) => protocolSection(report, spec)),
    h("section", { class: "panel two" },
      h("figure", {}, h("img", { src: "/evaluation/hit_ratio.png", alt: t("eval.plot"), class: "plot", id: "eval-plot" }),
        h("figcaption", {}, t("eval.plot"))),
      h("div", {}, h("h2", {}, t("eval.protocol")), protocol(report),
        h("a", { href: "/evaluation/report.md", class: "ext", download: "report.md" }, t("eval.markdown")))));
}
