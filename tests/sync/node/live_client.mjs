// npm `convex` ConvexClient (WebSocket sync) against a running Outpost.
// stdin: {"url", "batch"}; stdout: one JSON report of what the subscription saw.
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.CONVEX_NPM_PREFIX, "node_modules", "x.js"));
const { ConvexClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const logged = [];
const logger = {
  log: (...args) => logged.push(["log", ...args.map(String)]),
  warn: (...args) => logged.push(["warn", ...args.map(String)]),
  error: (...args) => logged.push(["error", ...args.map(String)]),
  logVerbose: () => {},
};
const count = makeFunctionReference("items:count");
const add = makeFunctionReference("items:add");
const client = new ConvexClient(input.url, { logger });

const seen = [];
let notify = null;
const unsubscribe = client.onUpdate(count, { batch: input.batch }, (value) => {
  seen.push(value);
  if (notify) notify();
}, (error) => seen.push({ error: String(error) }));

function waitFor(predicate, label, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), ms);
    const check = () => {
      if (predicate()) {
        clearTimeout(timer);
        notify = null;
        resolve();
      }
    };
    notify = check;
    check();
  });
}

const report = { initial: null, atResolve: [], seen };
try {
  await waitFor(() => seen.length >= 1, "the initial value");
  report.initial = seen[0];
  for (let n = 0; n < 3; n++) {
    const id = await client.mutation(add, { batch: input.batch, n });
    // The promise resolves only once a Transition at or past the commit arrived:
    // the subscription must show the write by now.
    report.atResolve.push({ id: typeof id, latest: seen[seen.length - 1] });
  }
} catch (error) {
  report.failure = String(error && error.stack || error);
}
unsubscribe();
await client.close();
report.logged = logged;
process.stdout.write(JSON.stringify(report));
