// The evaluation view: the latest report's table with intervals, the plot, protocol, cutoff and fingerprint.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, message } from "./ui.js";

function withInterval(scores, key) {
  const value = scores[key];
  const ci = scores[`${key}_ci`];
  return h("td", {}, h("span", { class: "num" }, value.toFixed(4)),
    ci ? h("span", { class: "ci" }, ` [${ci[0].toFixed(4)}, ${ci[1].toFixed(4)}]`) : null);
}

function table(report) {
  const k = report.protocol.k;
  const metrics = [`hr@${k}`, `ndcg@${k}`, `mrr@${k}`];
  const best = Math.max(...Object.values(report.strategies).map((s) => s[metrics[0]]));
  return h("div", { class: "table-wrap" }, h("table", { id: "eval-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("eval.strategy")),
      metrics.map((m) => h("th", { scope: "col" }, m.toUpperCase())),
      h("th", { scope: "col" }, t("eval.answered")), h("th", { scope: "col" }, t("eval.coverage")))),
    h("tbody", {}, Object.entries(report.strategies).map(([name, s]) =>
      h("tr", { class: s[metrics[0]] === best ? "best" : "" }, h("th", { scope: "row" }, name),
        metrics.map((m) => withInterval(s, m)),
        h("td", { class: "num" }, s.answered.toFixed(3)), h("td", { class: "num" }, s.coverage.toFixed(4)))))));
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
  main.replaceChildren(
    h("section", { class: "hero-search" }, h("h1", {}, t("eval.title")), h("p", { class: "lead" }, t("eval.lead"))),
    h("section", { class: "panel" }, table(report)),
    h("section", { class: "panel two" },
      h("figure", {}, h("img", { src: "/evaluation/hit_ratio.png", alt: t("eval.plot"), class: "plot", id: "eval-plot" }),
        h("figcaption", {}, t("eval.plot"))),
      h("div", {}, h("h2", {}, t("eval.protocol")), protocol(report),
        h("a", { href: "/evaluation/report.md", class: "ext", download: "report.md" }, t("eval.markdown")))));
}
