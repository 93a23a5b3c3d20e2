// Functions: the app's functions (internal ones too) with their argument validators,
// and a runner: args as JSON, the result, the log lines, the error.

import { FN } from "./backend.js";
import { fill, h, pretty, say } from "./dom.js";

export function mount(view, { api, sync }) {
  const list = h("ul", { class: "list", id: "fn-list" });
  const search = h("input", { placeholder: "filter", "aria-label": "filter functions" });
  const panel = h("div", { class: "card", id: "fn-panel" }, h("p", { class: "muted" }, "Choose a function."));
  let rows = [];

  const draw = () => {
    const needle = search.value.toLowerCase();
    const shown = rows.filter((r) => r.path.toLowerCase().includes(needle));
    fill(list, shown.map((r) =>
      h("li", { dataset: { path: r.path }, onclick: () => open(r) },
        h("span", {}, r.path), h("span", { class: "count" }, `${r.kind}${r.visibility === "internal" ? " (internal)" : ""}`))));
  };
  search.addEventListener("input", draw);
  fill(view, h("div", { class: "split" }, h("div", { class: "card" }, h("h2", {}, "Functions"), search, list), panel));
  const stop = sync.subscribe(FN.functions, {}, (result) => {
    if (result.error) return fill(list, h("li", { class: "message error" }, result.error));
    rows = result.value;
    draw();
  });

  function open(fn) {
    for (const li of list.children) li.setAttribute("aria-selected", li.dataset.path === fn.path);
    const args = h("textarea", { id: "fn-args", spellcheck: "false" });
    args.value = "{}";
    const result = h("pre", { id: "fn-result" });
    const logs = h("pre", { id: "fn-logs", class: "muted" });
    const error = h("p", { id: "fn-error", class: "message", role: "alert" });
    const run = async () => {
      let value;
      try {
        value = JSON.parse(args.value || "{}");
      } catch (err) {
        return say(error, `The arguments are not JSON: ${err.message}`, "error");
      }
      say(error, "Running...");
      fill(result);
      fill(logs);
      try {
        const outcome = await api.call("function", fn.path, value);
        fill(logs, (outcome.logLines || []).join("\n"));
        if (outcome.status === "success") {
          say(error, "Done.", "ok");
          fill(result, pretty(outcome.value));
        } else {
          const data = outcome.errorData === undefined ? "" : `\nerror data: ${JSON.stringify(outcome.errorData)}`;
          say(error, outcome.errorMessage + data, "error");
        }
      } catch (err) {
        say(error, err.message, "error");
      }
    };
    fill(panel,
      h("h2", {}, fn.path),
      h("p", { class: "muted" }, `${fn.kind}, ${fn.visibility}${fn.route ? `, ${fn.method} ${fn.route}` : ""}`),
      fn.args ? h("details", {}, h("summary", {}, "Argument validator"), h("pre", {}, pretty(fn.args))) : null,
      fn.returns ? h("details", {}, h("summary", {}, "Return validator"), h("pre", {}, pretty(fn.returns))) : null,
      fn.kind === "httpAction"
        ? h("p", { class: "muted" }, "An HTTP action: call it on the HTTP actions port.")
        : [h("h3", {}, "Arguments (JSON)"), args, h("div", { class: "toolbar" }, h("button", { id: "fn-run", type: "button", onclick: run }, "Run")),
            error, h("h3", {}, "Result"), result, h("h3", {}, "Log lines"), logs]);
  }

  return stop;
}
