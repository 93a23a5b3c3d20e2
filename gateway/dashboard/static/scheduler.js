// Scheduler and crons: scheduled jobs (live) with their states, cancel a pending one;
// cron jobs with their last runs.

import { FN } from "./backend.js";
import { cellText, fill, h, say, when } from "./dom.js";

const STATES = ["", "pending", "inProgress", "success", "failed", "canceled"];

export function mount(view, { api, sync }) {
  const state = h("select", { "aria-label": "state", id: "job-state" }, STATES.map((s) => h("option", { value: s }, s || "all states")));
  const jobs = h("div", { id: "jobs" });
  const crons = h("div", { id: "crons" });
  const status = h("p", { class: "message", role: "status", id: "jobs-message" });
  let stopJobs = () => {};

  const watchJobs = () => {
    stopJobs();
    const args = { paginationOpts: { numItems: 50, cursor: null } };
    if (state.value) args.state = state.value;
    stopJobs = sync.subscribe(FN.jobs, args, (r) => (r.error ? say(status, r.error, "error") : showJobs(r.value.page)));
  };
  state.addEventListener("change", watchJobs);
  fill(view, h("div", { class: "toolbar" }, h("h2", {}, "Scheduled jobs"), state), status, h("div", { class: "card" }, jobs),
    h("h2", {}, "Cron jobs"), h("div", { class: "card" }, crons));
  watchJobs();
  const stopCrons = sync.subscribe(FN.crons, {}, (r) => (r.error ? fill(crons, r.error) : showCrons(r.value)));

  function showJobs(page) {
    if (!page.length) return fill(jobs, h("p", { class: "muted" }, "No jobs."));
    fill(jobs, h("table", {},
      h("thead", {}, h("tr", {}, ["function", "state", "scheduled", "args", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, page.map((job) => h("tr", { dataset: { id: job._id, state: job.state?.kind } },
        h("td", {}, job.name || job.udfPath || ""),
        h("td", { class: "state", title: job.state?.error || "" }, job.state?.kind || "", job.state?.error ? `: ${job.state.error}` : ""),
        h("td", {}, when(job.scheduledTime)),
        h("td", {}, cellText(job.args)),
        h("td", {}, job.state?.kind === "pending" ? h("button", { class: "danger cancel", type: "button", onclick: () => cancel(job) }, "Cancel") : ""))))));
  }

  async function cancel(job) {
    try {
      await api.value("mutation", FN.cancel, { id: job._id });
      say(status, `Canceled ${job.name || job._id}.`, "ok");
    } catch (err) {
      say(status, err.message, "error");
    }
  }

  function showCrons(list) {
    if (!list.length) return fill(crons, h("p", { class: "muted" }, "No cron jobs."));
    fill(crons, h("table", {},
      h("thead", {}, h("tr", {}, ["name", "schedule", "function", "next", "last runs"].map((c) => h("th", {}, c)))),
      h("tbody", {}, list.map((c) => h("tr", {},
        h("td", {}, c.name), h("td", {}, cellText(c.schedule)), h("td", {}, c.udfPath),
        h("td", {}, when(tsMs(c.nextTs))),
        h("td", {}, c.runs.map((r) => r.state?.kind || cellText(r.state)).join(", ")))))));
  }

  return () => {
    stopJobs();
    stopCrons();
  };
}

function tsMs(ts) {
  return typeof ts === "number" && ts > 1e15 ? ts / 1e6 : ts;
}
