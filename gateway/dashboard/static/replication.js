// Replication: the uplink's state, backlog and its age, drain rate, downlink lag; on a
// hub, each edge gateway too.

import { FN } from "./backend.js";
import { fill, h, kv, say } from "./dom.js";
import { poll } from "./poll.js";

export function mount(view, { api }) {
  const link = h("div", { class: "card", id: "replication" });
  const edges = h("div", { id: "edges" });
  const status = h("p", { class: "message", role: "status" });
  fill(view, h("h2", {}, "Replication"), status, link, edges);
  return poll(async () => {
    const [own, hub] = await Promise.allSettled([
      api.value("query", FN.replication, {}),
      api.value("query", FN.gateways, {}),
    ]);
    say(status, "");
    if (own.status === "fulfilled") fill(link, h("h3", {}, "This gateway's uplink"), kv(own.value, "replication-kv"));
    else fill(link, h("p", { class: "muted" }, missing(own.reason) ? "No upstream: this gateway does not replicate." : own.reason.message));
    if (hub.status === "fulfilled") fill(edges, h("h3", {}, "Edge gateways"), gatewayCards(hub.value));
    else fill(edges);
  }, 2000);
}

function missing(err) {
  return /Could not find/.test(err.message);
}

function gatewayCards(value) {
  const list = Array.isArray(value) ? value : value.gateways || [];
  if (!list.length) return h("p", { class: "muted" }, "No edge gateway has pushed yet.");
  return h("div", { class: "grid" }, list.map((g) => h("div", { class: "card" }, h("strong", {}, g.gateway || g.name || g.id || ""), kv(g))));
}
