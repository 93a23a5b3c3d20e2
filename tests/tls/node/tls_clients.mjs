// npm `convex` clients against an Outpost serving HTTPS with its local CA, which Node
// trusts through NODE_EXTRA_CA_CERTS (set by the test, or not).
// stdin: {"url", "batch", "live"}; stdout: one JSON report.
import { convexRequire, readInput, recordingLogger } from "../../compat/node/harness.mjs";

const require = convexRequire;
const { ConvexClient, ConvexHttpClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = await readInput();
const count = makeFunctionReference("items:count");
const add = makeFunctionReference("items:add");
const report = { http: {}, live: null };

try {
  const http = new ConvexHttpClient(input.url, { logger: recordingLogger().logger });
  report.http.before = await http.query(count, { batch: input.batch });
  report.http.id = typeof (await http.mutation(add, { batch: input.batch, n: 1 }));
  report.http.after = await http.query(count, { batch: input.batch });
} catch (error) {
  report.http.failure = String((error && error.cause) || error);
}

if (input.live) {
  const { logged, logger } = recordingLogger(String);
  const client = new ConvexClient(input.url, { logger });
  const seen = [];
  let notify = () => {};
  const unsubscribe = client.onUpdate(count, { batch: input.batch }, (value) => {
    seen.push(value);
    notify();
  });
  const waitFor = (predicate, label) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), 10000);
      notify = () => {
        if (predicate()) {
          clearTimeout(timer);
          resolve();
        }
      };
      notify();
    });
  report.live = { seen, logged };
  try {
    await waitFor(() => seen.length >= 1, "the first value over wss");
    await client.mutation(add, { batch: input.batch, n: 2 });
    await waitFor(() => seen.includes(seen[0] + 1), "the update over wss");
  } catch (error) {
    report.live.failure = String((error && error.stack) || error);
  }
  unsubscribe();
  await client.close();
}
process.stdout.write(JSON.stringify(report));
