// Logs: function log lines and gateway records, newest at the bottom, live (a
// subscription: the gateway reruns it when its log ring has new entries), filtered on
// the gateway (source, level, text).

import { FN } from "./backend.js";
import { fill, h, say } from "./dom.js";

const KEEP = 1000;

export function mount(view, { sync }) {
  const source = h("select", { "aria-label": "source" }, ["", "function", "gateway"].map((s) => h("option", { value: s }, s || "all sources")));
  const level = h("select", { "aria-label": "level" }, ["", "DEBUG", "INFO", "WARN", "ERROR"].map((s) => h("option", { value: s }, s || "all levels")));
  const search = h("input", { placeholder: "search", "aria-label": "search logs" });
  const pause = h("input", { type: "checkbox", "aria-label": "pause" });
  const lines = h("div", { class: "card logs", id: "log-lines" });
  const status = h("p", { class: "message", role: "status" });
  let shown = 0; // the last seq on the page
  let latest = null; // the newest result, kept while paused
  let stop = () => {};

  const show = (answer) => {
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
    for (const e of answer.entries) if (e.seq > shown) lines.append(line(e));
    shown = Math.max(shown, answer.lastSeq);
    while (lines.childElementCount > KEEP) lines.firstChild.remove();
    if (atBottom) lines.scrollTop = lines.scrollHeight;
  };
  const subscribe = () => {
    stop();
    shown = 0;
    latest = null;
    fill(lines);
    const args = { limit: 200 };
    if (source.value) args.source = source.value;
    if (level.value) args.level = level.value;
    if (search.value) args.search = search.value;
    stop = sync.subscribe(FN.logs, args, (result) => {
      if (result.error) return say(status, result.error, "error");
      say(status, "");
      latest = result.value;
      if (!pause.checked) show(latest);
    });
  };
  for (const el of [source, level]) el.addEventListener("change", subscribe);
  search.addEventListener("change", subscribe);
  pause.addEventListener("change", () => !pause.checked && latest && show(latest));
  fill(view, h("div", { class: "toolbar" }, h("h2", {}, "Logs"), source, level, search, h("label", {}, pause, " pause")), status, lines);
  subscribe();
  return () => stop();
}

function line(e) {
  const time = new Date(e.timeMs).toLocaleTimeString();
  return h("div", { class: `level-${e.level}`, dataset: { source: e.source } }, `${time} ${e.level} ${e.name}: ${e.message}`);
}
