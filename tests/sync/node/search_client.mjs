// npm `convex` ConvexClient: a live search query (withSearchIndex) while mutations insert,
// change and delete matching documents. stdin: {"url"}; stdout: one JSON report.
import { convexRequire, readInput, recordingLogger } from "../../compat/node/harness.mjs";

const require = convexRequire;
const { ConvexClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = await readInput();
const { logged, logger } = recordingLogger(String);
const find = makeFunctionReference("notes:find");
const add = makeFunctionReference("notes:add");
const patch = makeFunctionReference("notes:patch");
const remove = makeFunctionReference("notes:remove");
const client = new ConvexClient(input.url, { logger });

const seen = [];
const unsubscribe = client.onUpdate(find, { text: "pump fa", site: "north" }, (value) => {
  seen.push(value.map(([body]) => body).sort());
}, (error) => seen.push({ error: String(error) }));

const report = { atResolve: [], seen };
const latest = () => seen[seen.length - 1];
try {
  const deadline = Date.now() + 10000;
  while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  report.atResolve.push(latest());
  const id = await client.mutation(add, { body: "Pump failure", site: "north", level: 1 });
  report.atResolve.push(latest());
  await client.mutation(add, { body: "pump failure", site: "south", level: 1 });
  report.atResolve.push(latest());
  await client.mutation(patch, { id, fields: { body: "valve ok" } });
  report.atResolve.push(latest());
  await client.mutation(patch, { id, fields: { body: "fan stuck" } });
  report.atResolve.push(latest());
  await client.mutation(remove, { id });
  report.atResolve.push(latest());
} catch (error) {
  report.failure = String(error && error.stack || error);
}
unsubscribe();
await client.close();
report.logged = logged;
process.stdout.write(JSON.stringify(report));
