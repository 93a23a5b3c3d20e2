// npm `convex` ConvexClient: a paginated subscription (onPaginatedUpdate_experimental)
// loaded page by page while another client inserts into the range concurrently.
//
// stdin: {"url", "batch", "order" ("asc" | "desc"), "initial", "inserts", "pageSize",
//         "seed", "deadlineMs"}
// stdout: one JSON report; `final` holds the client's concatenated results as [id, n].
//
// The batch starts with `initial` items n = 10, 20, ..., 10 * initial (one ConvexHttpClient
// fills it). A ConvexClient subscribes with `initialNumItems: pageSize` and calls
// `loadMore(pageSize)` until the status is "Exhausted". Inserts go through the HTTP client
// in rounds, interleaved with the page loads: round j is issued just before page j + 1 is
// requested, so its mutations are in flight while that page subscribes, and the next page
// is requested only once round j is acknowledged. Each insert is, in the query's order,
// "loaded" (inside the pages loaded so far), "ahead" (inside the data, not loaded yet) or
// "beyond" (past the last item: the last page takes it). Rounds left when the pages ran
// out are issued after, against the live subscription. Then it waits until the client's
// results equal every item this script wrote, in order.
import { convexRequire, readInput, recordingLogger } from "../../compat/node/harness.mjs";

const require = convexRequire;
const { ConvexClient, ConvexHttpClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = await readInput();
const { batch, order, initial, inserts, pageSize } = input;
const deadlineMs = input.deadlineMs ?? 20000;
const asc = order === "asc";

const page = makeFunctionReference("feed:page");
const putMany = makeFunctionReference("feed:put_many");
const add = makeFunctionReference("items:add");

// A small seeded generator (mulberry32), so a failing run can be replayed.
let seed = input.seed >>> 0;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const before = (a, b) => (asc ? a < b : a > b); // a comes first in the query's order

let wake = null;
function poke() {
  if (wake) wake();
}
// Resolves once predicate() holds; checked on every update and every acknowledgement.
function waitFor(predicate, label, ms = deadlineMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      wake = null;
      reject(new Error(`timed out after ${ms} ms waiting for ${label}`));
    }, ms);
    const check = () => {
      if (predicate()) {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
    };
    wake = check;
    check();
  });
}

const { logged, logger } = recordingLogger(String);
const http = new ConvexHttpClient(input.url, { logger });
const client = new ConvexClient(input.url, { logger });

const report = { callbacks: 0, pagesRequested: 1, violations: [], inserted: {}, timings: {} };
const expected = new Map(); // id -> n, everything written
const used = new Set(); // n values taken
let latest = null; // the last PaginatedQueryResult the callback saw
let unsubscribe = null;
const started = Date.now();

// The callback's invariant at every update: strictly in order, every id once.
function check(result) {
  report.callbacks += 1;
  const seen = new Set();
  const rows = result.results;
  for (let i = 0; i < rows.length; i++) {
    const problem = seen.has(rows[i]._id)
      ? "duplicate id"
      : i > 0 && !before(rows[i - 1].n, rows[i].n)
        ? "out of order"
        : null;
    if (problem && report.violations.length < 10) {
      report.violations.push({
        problem, at: i, n: rows[i].n, previous: i > 0 ? rows[i - 1].n : null,
        status: result.status, length: rows.length,
      });
    }
    seen.add(rows[i]._id);
  }
}

// --- the inserter -----------------------------------------------------------------
const span = { lo: 1, hi: 10 * initial + 9 }; // free slots 10k + d inside the initial data
let beyond = 0;
function pick(kind) {
  const boundary = latest && latest.results.length
    ? latest.results[latest.results.length - 1].n
    : null;
  if (kind !== "beyond") {
    for (let tries = 0; tries < 200; tries++) {
      const k = Math.floor(random() * (initial + 1));
      const n = 10 * k + 1 + Math.floor(random() * 9);
      if (used.has(n) || boundary === null) continue;
      const loaded = !before(boundary, n); // at or before the boundary in the query order
      if ((kind === "loaded") === loaded && n !== boundary) return n;
    }
    // No room of that kind (e.g. everything is loaded): past the end instead.
  }
  beyond += 1;
  return asc ? span.hi + beyond : span.lo - 1 - beyond; // desc: -1, -2, ... come last
}
const kinds = ["loaded", "ahead", "beyond"];
let issued = 0;
let acked = 0;
let ackedWhileLoading = 0;
let exhausted = false;
async function insertRound(count) {
  const calls = [];
  for (let i = 0; i < count && issued < inserts; i++) {
    const wanted = kinds[issued % 3];
    const n = pick(wanted);
    const kind = wanted !== "beyond" && (asc ? n > span.hi : n < span.lo) ? "beyond" : wanted;
    used.add(n);
    issued += 1;
    report.inserted[kind] = (report.inserted[kind] ?? 0) + 1;
    calls.push(
      http.mutation(add, { batch, n }, { skipQueue: true }).then((id) => {
        expected.set(id, n);
        acked += 1;
        if (!exhausted) ackedWhileLoading += 1;
        poke();
      }),
    );
  }
  await Promise.all(calls);
}

try {
  // 1. The initial items, in chunks (one mutation each).
  const ns = Array.from({ length: initial }, (_, i) => 10 * (i + 1));
  for (let i = 0; i < ns.length; i += 500) {
    const chunk = ns.slice(i, i + 500);
    const ids = await http.mutation(putMany, { batch, ns: chunk });
    ids.forEach((id, j) => expected.set(id, chunk[j]));
  }
  ns.forEach((n) => used.add(n));
  report.timings.fillMs = Date.now() - started;

  // 2. Subscribe, then load page after page with insert rounds in between.
  const loadStarted = Date.now();
  unsubscribe = client.onPaginatedUpdate_experimental(
    page, { batch, order }, { initialNumItems: pageSize },
    (result) => {
      latest = result;
      check(result);
      poke();
    },
    (error) => {
      report.failure = `query error: ${error}`;
      poke();
    },
  );
  const settled = () =>
    report.failure !== undefined ||
    (latest !== null && (latest.status === "CanLoadMore" || latest.status === "Exhausted"));
  const perRound = Math.max(1, Math.ceil(inserts / Math.ceil(initial / pageSize)));
  await waitFor(settled, "the first page");
  while (report.failure === undefined && latest.status === "CanLoadMore") {
    const round = insertRound(perRound); // in flight while the next page subscribes
    if (!latest.loadMore(pageSize)) throw new Error("loadMore refused while CanLoadMore");
    report.pagesRequested += 1;
    await round;
    await waitFor(settled, `page ${report.pagesRequested}`);
  }
  if (report.failure !== undefined) throw new Error(report.failure);
  exhausted = true;
  report.timings.loadMs = Date.now() - loadStarted;
  report.loadedWhenExhausted = latest.results.length;

  // 3. Whatever is left to insert, against the live (fully loaded) subscription.
  const afterStarted = Date.now();
  while (issued < inserts) await insertRound(perRound);
  report.ackedWhileLoading = ackedWhileLoading;
  report.acked = acked;

  // 4. Converge: the concatenated pages are exactly everything written, in order.
  const want = [...expected.entries()].sort((a, b) => (before(a[1], b[1]) ? -1 : 1));
  const wantIds = want.map(([id]) => id);
  const matches = () =>
    latest.results.length === wantIds.length &&
    latest.results.every((row, i) => row._id === wantIds[i]);
  try {
    await waitFor(() => report.failure !== undefined || matches(), "the pages to converge");
  } catch (error) {
    report.failure = String(error);
    // Name what differs: written but not shown, shown but not written (or twice).
    const shown = new Map();
    for (const row of latest.results) shown.set(row._id, (shown.get(row._id) ?? 0) + 1);
    report.missing = want.filter(([id]) => !shown.has(id)).slice(0, 20);
    report.unexpected = latest.results
      .filter((row) => !expected.has(row._id) || shown.get(row._id) > 1)
      .slice(0, 20)
      .map((row) => [row._id, row.n]);
  }
  report.timings.convergeMs = Date.now() - afterStarted;
  report.status = latest.status;
  report.expectedCount = wantIds.length;
} catch (error) {
  report.failure = String((error && error.stack) || error);
}
report.timings.totalMs = Date.now() - started;
report.final = latest ? latest.results.map((row) => [row._id, row.n]) : null;
if (unsubscribe) unsubscribe();
await client.close();
report.logged = logged;
// A pipe takes a large write asynchronously: exit only once it is flushed.
process.stdout.write(JSON.stringify(report), () => process.exit(0));
