// npm `convex` ConvexClient: query errors, many concurrent mutations, a socket lost
// mid-mutation. stdin: {"url", "batch"}; stdout: one JSON report.
//
// The lost socket goes through a TCP proxy in this script: armed, it drops both sides
// of the connection when the server's MutationResponse passes (so the mutation has
// committed, its answer never arrives); the client reconnects through the proxy and
// resends the Mutation with the same sessionId/requestId.
import net from "node:net";
import { convexRequire, readInput, recordingLogger } from "../../compat/node/harness.mjs";

const require = convexRequire;
const { ConvexClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = await readInput();

const { logged, logger } = recordingLogger(String);
const count = makeFunctionReference("items:count");
const strict = makeFunctionReference("items:strict");
const add = makeFunctionReference("items:add");

function waitFor(predicate, label, ms = 10000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${label}`));
      setTimeout(check, 5);
    };
    check();
  });
}

// --- the proxy ----------------------------------------------------------------------
const target = new URL(input.url);
const proxyState = { armed: false, kills: 0, connections: 0 };
const proxy = net.createServer((downstream) => {
  proxyState.connections += 1;
  const upstream = net.connect(Number(target.port), target.hostname);
  const drop = () => {
    downstream.destroy();
    upstream.destroy();
  };
  downstream.on("data", (chunk) => upstream.write(chunk));
  upstream.on("data", (chunk) => {
    if (proxyState.armed && chunk.includes("MutationResponse")) {
      proxyState.armed = false;
      proxyState.kills += 1;
      drop();
      return;
    }
    downstream.write(chunk);
  });
  for (const socket of [downstream, upstream]) {
    socket.on("error", drop);
    socket.on("close", drop);
  }
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const proxyUrl = `http://127.0.0.1:${proxy.address().port}`;

const report = {};
const client = new ConvexClient(input.url, { logger });
try {
  // 1. A ConvexError thrown by a subscribed query reaches the error callback with data;
  //    the subscription keeps going once the query succeeds.
  const strictBatch = `${input.batch}-strict`;
  const values = [];
  const errors = [];
  const unsubscribe = client.onUpdate(strict, { batch: strictBatch }, (value) => values.push(value),
    (error) => errors.push({ name: error.name, data: error.data, message: String(error.message) }));
  await waitFor(() => errors.length >= 1, "the query's ConvexError");
  await client.mutation(add, { batch: strictBatch, n: 0 });
  await waitFor(() => values.length >= 1, "the value after the error");
  report.queryError = { errors, values };
  unsubscribe();

  // 2. 200 concurrent mutations on one client: each applied once.
  const manyBatch = `${input.batch}-many`;
  const ids = await Promise.all(
    Array.from({ length: 200 }, (_, n) => client.mutation(add, { batch: manyBatch, n })),
  );
  report.concurrent = {
    resolved: ids.length,
    distinctIds: new Set(ids).size,
    count: await client.query(count, { batch: manyBatch }),
  };

  // 3. The socket dies after the mutation committed, before its answer arrived.
  const lostBatch = `${input.batch}-lost`;
  const viaProxy = new ConvexClient(proxyUrl, { logger });
  const seen = [];
  const unsubscribeLost = viaProxy.onUpdate(count, { batch: lostBatch }, (value) => seen.push(value));
  await waitFor(() => seen.length >= 1, "the initial count through the proxy");
  proxyState.armed = true;
  const lostId = await viaProxy.mutation(add, { batch: lostBatch, n: 1 });
  const afterReconnect = await viaProxy.mutation(add, { batch: lostBatch, n: 2 });
  await waitFor(() => seen[seen.length - 1] === 2, "the count after the reconnect");
  report.lost = {
    kills: proxyState.kills,
    connections: proxyState.connections,
    ids: [typeof lostId, typeof afterReconnect],
    seen,
    count: await client.query(count, { batch: lostBatch }),
  };
  unsubscribeLost();
  await viaProxy.close();
} catch (error) {
  report.failure = String((error && error.stack) || error);
}
await client.close();
proxy.close();
report.logged = logged;
process.stdout.write(JSON.stringify(report));
process.exit(0);
