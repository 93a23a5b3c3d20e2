// Data: tables with their counts, a live page of documents, filters on an index, a
// document's JSON, and edit / insert / delete with the gateway's own error words.

import { FN } from "./backend.js";
import { cellText, fill, h, pretty, say } from "./dom.js";

const PAGE_SIZES = [25, 50, 100];

export function mount(view, { api, sync }) {
  const state = { table: null, order: "desc", size: 25, cursors: [null], filter: null };
  let stopPage = () => {};
  let stopTables = () => {};
  let seen = null; // ids shown last time: new ones flash

  const tables = h("ul", { class: "list", id: "tables" });
  const rows = h("div", { id: "rows" });
  const status = h("p", { class: "message", id: "data-message", role: "status" });
  const pager = h("span", { class: "muted", id: "pager" });
  const order = select(["desc", "asc"], state.order, (v) => restart({ order: v }));
  const size = select(PAGE_SIZES, state.size, (v) => restart({ size: Number(v) }));
  const filterBox = h("div", { id: "filter" });
  const prevButton = h("button", { class: "plain", type: "button", onclick: prev, disabled: true }, "Prev");
  const nextButton = h("button", { class: "plain", type: "button", onclick: next, disabled: true }, "Next");

  fill(
    view,
    h(
      "div",
      { class: "split" },
      h(
        "div",
        { class: "card" },
        h("h2", {}, "Tables"),
        tables,
      ),
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "toolbar" },
          h("strong", { id: "table-title" }, "Choose a table"),
          order,
          size,
          prevButton,
          nextButton,
          pager,
          h("button", { type: "button", id: "insert", onclick: () => edit(null) }, "Insert"),
        ),
        filterBox,
        status,
        rows,
      ),
    ),
  );

  stopTables = sync.subscribe(FN.tables, {}, (result) => {
    if (result.error) return say(status, result.error, "error");
    showTables(result.value);
  });

  function showTables(list) {
    fill(
      tables,
      list.map((t) =>
        h(
          "li",
          {
            "aria-selected": String(t.name === state.table),
            dataset: { table: t.name },
            onclick: () => choose(t.name),
          },
          h("span", {}, t.name),
          h("span", { class: "count" }, t.count ?? ""),
        ),
      ),
    );
    const first = !state.indexes;
    state.indexes = Object.fromEntries(list.map((t) => [t.name, t.indexes || []]));
    state.schemas = Object.fromEntries(list.map((t) => [t.name, t.schema]));
    if (!state.table && list.length) choose(list.find((t) => !t.system)?.name || list[0].name);
    else if (first) showFilter();
  }

  function choose(name) {
    if (!name) return;
    state.table = name;
    state.filter = null;
    for (const li of tables.children) li.setAttribute("aria-selected", li.dataset.table === name);
    fill(view.querySelector("#table-title"), name);
    showFilter();
    restart({ cursors: [null] });
  }

  function restart(changes) {
    Object.assign(state, changes);
    if (!("cursors" in changes)) state.cursors = [null];
    subscribePage();
  }

  function subscribePage() {
    stopPage();
    seen = null;
    if (!state.table) return;
    const cursor = state.cursors[state.cursors.length - 1];
    const paginationOpts = { numItems: state.size, cursor };
    const args = { table: state.table, order: state.order, paginationOpts, ...(state.filter || {}) };
    stopPage = sync.subscribe(FN.page, args, (result) => {
      if (result.error) {
        fill(rows);
        return say(status, result.error, "error");
      }
      say(status, "");
      state.page = result.value;
      showRows(result.value.page);
      fill(pager, `page ${state.cursors.length}${result.value.isDone ? " (last)" : ""}`);
      prevButton.disabled = state.cursors.length === 1;
      nextButton.disabled = result.value.isDone;
    });
  }

  function next() {
    if (state.page && !state.page.isDone) {
      state.cursors.push(state.page.continueCursor);
      subscribePage();
    }
  }

  function prev() {
    if (state.cursors.length > 1) {
      state.cursors.pop();
      subscribePage();
    }
  }

  function showRows(docs) {
    const columns = ["_id", "_creationTime"];
    for (const doc of docs) for (const k of Object.keys(doc)) if (!columns.includes(k)) columns.push(k);
    const before = seen;
    seen = new Set(docs.map((d) => d._id));
    const body = docs.map((doc) =>
      h(
        "tr",
        {
          class: before && !before.has(doc._id) ? "fresh" : null,
          dataset: { id: doc._id },
          onclick: () => edit(doc),
        },
        columns.map((c) =>
          h("td", { title: cellText(doc[c]) }, c === "_creationTime" ? time(doc[c]) : cellText(doc[c])),
        ),
      ),
    );
    fill(
      rows,
      docs.length
        ? h("table", {}, h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))), h("tbody", {}, body))
        : h("p", { class: "muted" }, "No documents."),
    );
  }

  // The index filter: an index of the table, then bounds on its fields in order
  // (equalities first, then one range), as with_index takes them.
  function showFilter() {
    const indexes = (state.indexes || {})[state.table] || [];
    if (!indexes.length) return fill(filterBox);
    const chosen = select(["(all)", ...indexes.map((i) => i.name)], state.filter?.index || "(all)", () => draw());
    const fields = h("span", { class: "toolbar" });
    const draw = () => {
      const index = indexes.find((i) => i.name === chosen.value);
      fill(fields, index ? index.fields.filter((f) => f !== "_id").map(boundInputs) : []);
    };
    const apply = (e) => {
      e.preventDefault();
      const index = indexes.find((i) => i.name === chosen.value);
      restart({ filter: index ? { index: index.name, range: rangeOf(fields) } : null });
    };
    draw();
    fill(filterBox, h("form", { class: "toolbar", id: "filter-form", onsubmit: apply },
      h("span", { class: "muted" }, "Index"), chosen, fields, h("button", { class: "plain" }, "Filter")));
  }

  // A document's JSON in a dialog: save (replace), delete, or insert a new one.
  function edit(doc) {
    if (!state.table) return;
    const text = h("textarea", { id: "doc-json", spellcheck: "false" });
    text.value = pretty(doc || template(state.schemas?.[state.table]));
    const message = h("p", { class: "message", id: "doc-message", role: "alert" });
    const dialog = h("dialog", { id: "doc-dialog" });
    const close = () => (dialog.close(), dialog.remove());
    const run = async (path, args, done) => {
      say(message, "Saving...");
      try {
        await api.value("mutation", path, args);
        close();
        say(status, done, "ok");
      } catch (err) {
        say(message, err.message, "error");
      }
    };
    const save = () => {
      let value;
      try {
        value = JSON.parse(text.value);
      } catch (err) {
        return say(message, `Not JSON: ${err.message}`, "error");
      }
      const fields = Object.fromEntries(Object.entries(value).filter(([k]) => !k.startsWith("_")));
      if (doc) run(FN.replace, { id: doc._id, document: fields }, `Saved ${doc._id}.`);
      else run(FN.insert, { table: state.table, document: fields }, "Inserted.");
    };
    fill(
      dialog,
      h("h2", {}, doc ? `${state.table} ${doc._id}` : `New document in ${state.table}`),
      text,
      message,
      h(
        "div",
        { class: "toolbar" },
        h("button", { type: "button", id: "doc-save", onclick: save }, doc ? "Save" : "Insert"),
        doc &&
          h(
            "button",
            {
              type: "button",
              class: "danger",
              id: "doc-delete",
              onclick: (e) => {
                // Two clicks: the first one asks.
                if (e.target.dataset.armed) return run(FN.delete, { ids: [doc._id] }, `Deleted ${doc._id}.`);
                e.target.dataset.armed = "1";
                e.target.textContent = "Delete: sure?";
              },
            },
            "Delete",
          ),
        h("button", { type: "button", class: "plain", onclick: close }, "Close"),
      ),
    );
    view.append(dialog);
    dialog.showModal();
  }

  return () => {
    stopPage();
    stopTables();
  };
}

// One field's bounds: [op value] [op value]; a value that is not JSON is a string.
function boundInputs(field) {
  const low = select(["", "eq", "gt", "gte"], "", () => {});
  const high = select(["", "lt", "lte"], "", () => {});
  low.dataset.field = field;
  high.dataset.field = field;
  return h("span", { class: "bound" }, h("span", {}, field), low,
    h("input", { size: 8, "aria-label": `${field} from`, dataset: { for: "low" } }), high,
    h("input", { size: 8, "aria-label": `${field} to`, dataset: { for: "high" } }));
}

function rangeOf(fields) {
  const range = [];
  for (const bound of fields.querySelectorAll(".bound")) {
    const [low, high] = bound.querySelectorAll("select");
    const [lowValue, highValue] = bound.querySelectorAll("input");
    if (low.value) range.push({ op: low.value, field: low.dataset.field, value: jsonOrText(lowValue.value) });
    if (high.value) range.push({ op: high.value, field: high.dataset.field, value: jsonOrText(highValue.value) });
  }
  return range;
}

// A new document's starting point from the table's validator: each required field
// with an empty value of its type.
function template(schema) {
  if (!schema || schema.type !== "object") return {};
  const empty = { string: "", number: 0, float64: 0, boolean: false, array: [], object: {}, bigint: { $integer: "AAAAAAAAAAA=" }, int64: { $integer: "AAAAAAAAAAA=" } };
  const doc = {};
  for (const [field, spec] of Object.entries(schema.value || {})) {
    if (spec.optional) continue;
    const type = spec.fieldType?.type;
    doc[field] = type in empty ? empty[type] : null;
  }
  return doc;
}

function jsonOrText(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function select(options, value, onchange) {
  const el = h("select", { onchange: () => onchange(el.value) }, options.map((o) => h("option", { value: o }, o)));
  el.value = String(value);
  return el;
}

function time(ms) {
  return typeof ms === "number" ? new Date(ms).toLocaleString() : cellText(ms);
}
