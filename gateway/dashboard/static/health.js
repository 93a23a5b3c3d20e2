// Health: store size, bytes written per hour (SD wear), clock trust, memory, disk.

import { FN } from "./backend.js";
import { fill, h, kv, say } from "./dom.js";
import { poll } from "./poll.js";

export function mount(view, { api }) {
  const body = h("div", { class: "card", id: "health" });
  const status = h("p", { class: "message", role: "status" });
  fill(view, h("h2", {}, "Health"), status, body);
  return poll(async () => {
    try {
      fill(body, kv(await api.value("query", FN.health, {}), "health-kv"));
      say(status, "");
    } catch (err) {
      say(status, err.message, "error");
    }
  }, 5000);
}
