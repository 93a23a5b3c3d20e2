// npm `convex` ConvexClient (WebSocket sync) against a running Outpost.
// stdin: {"url", "batch"}; stdout: one JSON report of what the subscription saw.
import { convexRequire, readInput, recordingLogger } from "../../compat/node/harness.mjs";

const require = convexRequire;
const { ConvexClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = await readInput();

const { logged, logger } = recordingLogger(String);
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
