// The experiments views: #/experiments lists every configured experiment; #/experiments/<name> shows one per
// variant (exposures, hits, online HR@10 and the offline one with their intervals, the difference to the
// control, stopped/degraded) and an SVG plot of each variant's cumulative online HR@10 over time.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, message } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const PLOT = { width: 640, height: 260, left: 48, right: 16, top: 12, bottom: 32 };
const COLOURS = 6; // .series-0 .. .series-5 in style.css; more variants reuse them

/** An SVG element with attributes and children (h() makes HTML elements only). */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

function fixed(value) {
  return typeof value === "number" ? value.toFixed(4) : "–";
}

function signed(value) {
  return typeof value === "number" ? `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(4)}` : "–";
}

function interval(ci, format = fixed) {
  return ci ? h("span", { class: "ci" }, ` [${format(ci[0])}, ${format(ci[1])}]`) : null;
}

/** The difference to the control with its interval and whether the interval excludes 0. */
function differenceCell(d) {
  if (!d) return h("td", { class: "muted" }, t("exp.control"));
  const [lo, hi] = d.ci ?? [0, 0];
  const verdict = !d.ci ? null : lo > 0 ? ["ok", "eval.above"] : hi < 0 ? ["bad", "eval.below"] : ["muted", "eval.same"];
  return h("td", { class: "difference" }, h("span", { class: "num" }, signed(d["hr@10"])), interval(d.ci, signed),
    verdict ? [" ", h("span", { class: `verdict ${verdict[0]}` }, t(verdict[1]))] : null);
}

function flags(v) {
  return [
    v.stopped ? h("span", { class: "badge warn flag-stopped" }, t("exp.stopped")) : null,
    v.degraded ? h("span", { class: "badge warn flag-degraded", title: v.missing.join(", ") },
      `${t("exp.degraded")}: ${v.missing.map((part) => t(`part.${part}`, part)).join(", ")}`) : null,
  ].filter(Boolean);
}

function variantTable(report) {
  const differences = new Map((report.differences ?? []).map((d) => [d.variant, d]));
  const heads = ["exp.variant", "eval.strategy", "exp.share", "exp.exposures", "exp.hits", "exp.online", "exp.offline",
    "exp.difference", "exp.flags"];
  return h("div", { class: "table-wrap" }, h("table", { id: "exp-table" },
    h("thead", {}, h("tr", {}, heads.map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, Object.entries(report.variants).map(([name, v], i) =>
      h("tr", { "data-variant": name },
        h("th", { scope: "row" }, h("span", { class: `swatch series-${i % COLOURS}`, "aria-hidden": "true" }), name),
        h("td", {}, v.strategy), h("td", { class: "num" }, `${Math.round(v.share * 100)}%`),
        h("td", { class: "num" }, String(v.exposures), v.pending ? h("span", { class: "ci" }, ` (${t("exp.pending")} ${v.pending})`) : null),
        h("td", { class: "num" }, String(v.hits)),
        h("td", { class: "online" }, h("span", { class: "num" }, fixed(v["hr@10"])), interval(v["hr@10_ci"])),
        h("td", { class: "offline" }, h("span", { class: "num" }, fixed(v["offline_hr@10"])), interval(v["offline_hr@10_ci"])),
        differenceCell(differences.get(name)), h("td", {}, flags(v)))))));
}

function timeLabel(date, seconds) {
  const iso = date.toISOString();
  return seconds >= 86400 ? iso.slice(0, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

/** Each variant's cumulative online HR@10 at the end of each bucket (a line with a dot per bucket), and its
 * offline HR@10 as a dashed line of the same colour. */
function plot(report) {
  const names = Object.keys(report.variants);
  const points = report.over_time ?? [];
  if (!points.length) return message(t("exp.noPoints"));
  const times = points.map((p) => Date.parse(p.at));
  const first = Math.min(...times);
  const last = Math.max(...times);
  const offline = names.map((n) => report.variants[n]["offline_hr@10"]).filter((v) => typeof v === "number");
  const top = Math.min(1, Math.ceil(Math.max(0.05, ...points.map((p) => p["hr@10"]), ...offline) * 10 + 0.5) / 10);
  const { width, height, left, right, top: pad, bottom } = PLOT;
  const x = (time) => left + (last === first ? (width - left - right) / 2 : ((time - first) / (last - first)) * (width - left - right));
  const y = (value) => height - bottom - (value / top) * (height - pad - bottom);
  const ticks = [0, top / 2, top];
  const seconds = report.over_time_bucket_seconds ?? 3600;
  const lines = names.map((name, i) => {
    const mine = points.filter((p) => p.variant === name);
    const colour = `series-${i % COLOURS}`;
    const off = report.variants[name]["offline_hr@10"];
    return svg("g", { class: colour, "data-variant": name },
      typeof off === "number" ? svg("line", { class: "offline", x1: left, x2: width - right, y1: y(off), y2: y(off) }) : null,
      mine.length ? svg("polyline", { "data-variant": name,
        points: mine.map((p) => `${x(Date.parse(p.at)).toFixed(1)},${y(p["hr@10"]).toFixed(1)}`).join(" ") }) : null,
      mine.map((p) => svg("circle", { cx: x(Date.parse(p.at)), cy: y(p["hr@10"]), r: 3 },
        svg("title", {}, `${name} · ${timeLabel(new Date(p.at), seconds)} · HR@10 ${fixed(p["hr@10"])} (${p.hits}/${p.exposures})`))));
  });
  return h("figure", {},
    svg("svg", { id: "exp-plot", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": t("exp.plot") },
      ticks.map((v) => svg("g", { class: "tick" },
        svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v) }),
        svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)))),
      svg("text", { class: "axis", x: left, y: height - 8, "text-anchor": "start" }, timeLabel(new Date(first), seconds)),
      last > first ? svg("text", { class: "axis", x: width - right, y: height - 8, "text-anchor": "end" }, timeLabel(new Date(last), seconds)) : null,
      lines),
    h("figcaption", {}, `${t("exp.plot")} · ${t("exp.bucket")} ${bucketText(seconds)} · UTC`),
    h("ul", { class: "legend" }, names.map((name, i) =>
      h("li", {}, h("span", { class: `swatch series-${i % COLOURS}`, "aria-hidden": "true" }), name))));
}

function bucketText(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} ${t("exp.days")}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} ${t("exp.hours")}`;
  return `${seconds / 60} ${t("exp.minutes")}`;
}

function facts(report) {
  return h("p", { class: "muted", id: "exp-facts" },
    [`${t("exp.controlIs")} ${report.control}`, `salt ${report.salt}`, `${t("exp.horizon")} ${report.horizon_hours} ${t("exp.hours")}`].join(" · "));
}

async function renderOne(main, name) {
  document.title = `${name} · ${t("exp.title")} · nextwatch`;
  const head = h("section", { class: "hero-search" }, h("p", {}, h("a", { href: "#/experiments" }, t("exp.back"))),
    h("h1", {}, name), h("p", { class: "lead" }, t("exp.lead")));
  let report;
  try {
    report = await api(`/experiments/${encodeURIComponent(name)}`);
  } catch (error) {
    main.replaceChildren(head, h("section", { class: "panel" }, message(`${t("error")}: ${error.message}`, "error")));
    return;
  }
  main.replaceChildren(head,
    h("section", { class: "panel", id: "exp-variants" }, h("h2", {}, t("exp.variants")), facts(report), variantTable(report)),
    h("section", { class: "panel", id: "exp-over-time" }, h("h2", {}, t("exp.overTime")), plot(report)));
}

async function renderList(main) {
  document.title = `${t("exp.title")} · nextwatch`;
  const head = h("section", { class: "hero-search" }, h("h1", {}, t("exp.title")), h("p", { class: "lead" }, t("exp.lead")));
  let found;
  try {
    found = await api("/experiments");
  } catch (error) {
    main.replaceChildren(head, h("section", { class: "panel" }, message(`${t("error")}: ${error.message}`, "error")));
    return;
  }
  if (!found.experiments.length) return void main.replaceChildren(head, h("section", { class: "panel" }, message(t("exp.none"))));
  main.replaceChildren(head, h("section", { class: "panel" }, h("ul", { class: "exp-list", id: "exp-list" },
    found.experiments.map((report) => h("li", { "data-experiment": report.name },
      h("a", { href: `#/experiments/${encodeURIComponent(report.name)}` }, report.name), " ",
      h("span", { class: "muted" }, Object.entries(report.variants).map(([name, v]) =>
        `${name} ${fixed(v["hr@10"])} (${v.exposures})`).join(" · ")),
      Object.values(report.variants).some((v) => v.degraded || v.stopped)
        ? h("span", { class: "badge warn" }, t("exp.attention")) : null)))));
}

export function renderExperiments(main, name) {
  main.replaceChildren(message(t("loading")));
  return name ? renderOne(main, name) : renderList(main);
}
