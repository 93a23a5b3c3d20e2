// Logs: function log lines and gateway records, newest at the bottom, polled live,
// filtered on the gateway (source, level, text).

import { FN } from "./backend.js";
import { fill, h, say } from "./dom.js";
import { poll } from "./poll.js";

const KEEP = 1000;

export function mount(view, { api }) {
  const source = h("select", { "aria-label": "source" }, ["", "function", "gateway"].map((s) => h("option", { value: s }, s || "all sources")));
  const level = h("select", { "aria-label": "level" }, ["", "DEBUG", "INFO", "WARN", "ERROR"].map((s) => h("option", { value: s }, s || "all levels")));
  const search = h("input", { placeholder: "search", "aria-label": "search logs" });
  const pause = h("input", { type: "checkbox", "aria-label": "pause" });
  const lines = h("div", { class: "card logs", id: "log-lines" });
  const status = h("p", { class: "message", role: "status" });
  let after = 0;

  const restart = () => {
    after = 0;
    fill(lines);
  };
  for (const el of [source, level]) el.addEventListener("change", restart);
  search.addEventListener("change", restart);
  fill(view, h("div", { class: "toolbar" }, h("h2", {}, "Logs"), source, level, search, h("label", {}, pause, " pause")), status, lines);

  return poll(async () => {
    if (pause.checked) return;
    const args = { after, limit: 200 };
    if (source.value) args.source = source.value;
    if (level.value) args.level = level.value;
    if (search.value) args.search = search.value;
    try {
      const answer = await api.value("query", FN.logs, args);
      say(status, "");
      after = answer.lastSeq;
      const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
      for (const e of answer.entries) lines.append(line(e));
      while (lines.childElementCount > KEEP) lines.firstChild.remove();
      if (atBottom) lines.scrollTop = lines.scrollHeight;
    } catch (err) {
      say(status, err.message, "error");
    }
  }, 1000);
}

function line(e) {
  const time = new Date(e.timeMs).toLocaleTimeString();
  return h("div", { class: `level-${e.level}`, dataset: { source: e.source } }, `${time} ${e.level} ${e.name}: ${e.message}`);
}
