// Devices and MQTT: devices with their last message and rate, credentials (add,
// remove), dead letters with their reasons (live), publish rules and what they last
// sent, and a readings chart per device.

import { FN } from "./backend.js";
import { drawChart } from "./chart.js";
import { cellText, fill, h, kv, say, when } from "./dom.js";
import { poll } from "./poll.js";

export function mount(view, { api, sync }) {
  const status = h("p", { class: "message", role: "status", id: "devices-message" });
  const devices = h("div", { id: "devices" });
  const bridge = h("div", { id: "bridge" });
  const secret = h("div", { id: "credentials" });
  const name = h("input", { placeholder: "device id", id: "device-name", "aria-label": "device id" });
  const letters = h("div", { id: "dead-letters" });
  const rules = h("div", { id: "publish-rules" });
  const charts = h("div", { class: "grid", id: "charts" });
  const chartFrom = h("select", { "aria-label": "readings table and index", id: "chart-source" });
  const subs = new Map(); // device -> {stop, canvas}
  let known = [];

  fill(view,
    h("h2", {}, "Devices"),
    h("form", { class: "toolbar", onsubmit: (e) => (e.preventDefault(), add()) }, name, h("button", { id: "device-add" }, "Add device")),
    status, secret,
    h("div", { class: "card" }, devices), bridge,
    h("h2", {}, "Readings"), h("div", { class: "toolbar" }, h("span", { class: "muted" }, "Chart"), chartFrom), charts,
    h("h2", {}, "Dead letters"), h("div", { class: "card" }, letters),
    h("h2", {}, "Publish rules"), h("div", { class: "card" }, rules));

  const stopPoll = poll(async () => {
    try {
      const [state, published] = await Promise.all([api.value("query", FN.devices, {}), api.value("query", FN.publishRules, {})]);
      showDevices(state);
      showRules(published);
    } catch (err) {
      say(status, err.message, "error");
    }
  }, 2000);
  const stopLetters = sync.subscribe(FN.deadLetters, { paginationOpts: { numItems: 50, cursor: null } },
    (r) => (r.error ? fill(letters, r.error) : showLetters(r.value.page)));
  const stopTables = sync.subscribe(FN.tables, {}, (r) => r.value && chartSources(r.value));
  chartFrom.addEventListener("change", () => redrawCharts(true));

  async function add() {
    const device = name.value.trim();
    if (!device) return say(status, "Enter a device id.", "error");
    try {
      const c = await api.value("action", FN.addDevice, { device });
      name.value = "";
      say(status, `Added ${device}.`, "ok");
      fill(secret, h("div", { class: "card" }, h("strong", {}, "Credentials, shown only this once"), kv(c, "device-credentials")));
    } catch (err) {
      say(status, err.message, "error");
    }
  }

  async function remove(device, button) {
    if (!button.dataset.armed) return (button.dataset.armed = "1"), (button.textContent = "Remove: sure?");
    try {
      await api.value("action", FN.removeDevice, { device });
      say(status, `Removed ${device}.`, "ok");
    } catch (err) {
      say(status, err.message, "error");
    }
  }

  function showDevices(state) {
    fill(bridge, state.bridge ? h("div", { class: "card" }, h("h3", {}, "Bridge"), kv(state.bridge, "bridge-kv")) : h("p", { class: "muted" }, "No MQTT bridge runs."));
    const list = state.devices || [];
    fill(devices, list.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["device", "registered", "messages", "per minute", "last message", "last topic", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, list.map((d) => h("tr", { dataset: { device: d.device } },
        h("td", {}, d.device), h("td", {}, d.registered ? "yes" : "no"), h("td", {}, cellText(d.messages)),
        h("td", {}, d.perMinute == null ? "" : d.perMinute.toFixed(1)), h("td", {}, when(d.lastMessageMs)), h("td", {}, d.lastTopic || ""),
        h("td", {}, d.registered && state.registry !== "none" ? h("button", { class: "danger", type: "button", onclick: (e) => remove(d.device, e.target) }, "Remove") : "")))))
      : h("p", { class: "muted" }, `No devices yet (registry: ${state.registry}).`));
    known = list.map((d) => d.device);
    redrawCharts(false);
  }

  function showLetters(page) {
    fill(letters, page.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["time", "device", "topic", "reason", "payload"].map((c) => h("th", {}, c)))),
      h("tbody", {}, page.map((l) => h("tr", { dataset: { id: l._id } },
        h("td", {}, when(l._creationTime)), h("td", {}, l.device || ""), h("td", {}, l.topic || ""),
        h("td", { class: "reason", title: l.reason }, l.reason), h("td", {}, l.payloadText ?? `<${l.size} bytes>`)))))
      : h("p", { class: "muted" }, "No dead letters."));
  }

  function showRules(list) {
    fill(rules, list.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["topic pattern", "query", "last sent", "last topic", "last payload"].map((c) => h("th", {}, c)))),
      h("tbody", {}, list.map((r) => h("tr", {}, h("td", {}, r.pattern), h("td", {}, r.query), h("td", {}, when(r.lastSentMs)),
        h("td", {}, r.lastTopic || ""), h("td", {}, r.lastPayload ?? "")))))
      : h("p", { class: "muted" }, "No publish rules."));
  }

  // Tables with an index whose first field could name a device: "table/index".
  function chartSources(tables) {
    const options = [];
    for (const t of tables) {
      if (t.system) continue;
      for (const ix of t.indexes || []) if (ix.fields.length > 2) options.push(`${t.name}/${ix.name}`);
    }
    const before = chartFrom.value;
    fill(chartFrom, h("option", { value: "" }, "(no chart)"), options.map((o) => h("option", { value: o }, o)));
    chartFrom.value = options.includes(before) ? before : options.find((o) => /device/i.test(o)) || "";
    if (chartFrom.value !== before) redrawCharts(true);
  }

  function redrawCharts(restart) {
    if (restart) for (const device of [...subs.keys()]) drop(device);
    const [table, index] = chartFrom.value.split("/");
    if (!table) return;
    for (const device of [...subs.keys()]) if (!known.includes(device)) drop(device);
    for (const device of known) {
      if (subs.has(device)) continue;
      const canvas = h("canvas", { dataset: { device } });
      const card = h("div", { class: "card chart" }, h("strong", {}, device), canvas);
      charts.append(card);
      const stop = sync.subscribe(FN.series, { table, index, value: device }, (r) => r.value && drawChart(canvas, r.value));
      subs.set(device, { stop, card });
    }
  }

  function drop(device) {
    const sub = subs.get(device);
    sub.stop();
    sub.card.remove();
    subs.delete(device);
  }

  return () => {
    stopPoll();
    stopLetters();
    stopTables();
    for (const device of [...subs.keys()]) drop(device);
  };
}
