// npm `convex` ConvexHttpClient.setAuth and ConvexClient.setAuth against an Outpost
// whose app trusts the tests' issuer. stdin: {"url", "good", "bad"}; stdout: one JSON
// report of what each client saw.
import { convexRequire, readInput, recordingLogger } from "../../compat/node/harness.mjs";

const require = convexRequire;
const { ConvexHttpClient, ConvexClient } = require("convex/browser");
const { makeFunctionReference } = require("convex/server");

const input = await readInput();
const subject = makeFunctionReference("who:subject");
const whoami = makeFunctionReference("who:whoami");
const report = {};

function waitFor(predicate, label, ms = 10000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${label}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

async function httpClient() {
  const client = new ConvexHttpClient(input.url);
  client.setAuth(input.good);
  const out = { subject: await client.query(subject, {}), mutation: await client.mutation(whoami, {}) };
  client.setAuth(input.bad);
  try {
    await client.query(subject, {});
    out.bad = "accepted";
  } catch (error) {
    out.bad = String(error.message);
  }
  client.clearAuth();
  out.cleared = await client.query(subject, {});
  return out;
}

async function socketClient(token) {
  const { logged, logger } = recordingLogger(String);
  const client = new ConvexClient(input.url, { logger });
  const out = { fetches: 0, changes: [], seen: [] };
  client.setAuth(
    async () => {
      out.fetches += 1;
      return token;
    },
    (authenticated) => out.changes.push(authenticated),
  );
  const unsubscribe = client.onUpdate(subject, {}, (value) => out.seen.push(value));
  try {
    await waitFor(() => out.changes.length >= 1 && out.seen.length >= 1, "auth and a result");
    if (out.changes[0]) out.mutation = await client.mutation(whoami, {});
    // Let a refusal settle: the client must not loop fetching and reconnecting.
    await new Promise((resolve) => setTimeout(resolve, 2000));
  } catch (error) {
    out.failure = String(error && error.stack || error);
  }
  out.fetchesAfterSettling = out.fetches;
  unsubscribe();
  await client.close();
  out.logged = logged;
  return out;
}

// Tokens that live 12 s: the client confirms the first, fetches a fresh one at once
// (forceRefreshToken), and again 10 s before expiry (refreshTokenLeewaySeconds): each
// is a new Authenticate on the same socket, which must keep the session authenticated.
async function refreshingClient(tokens) {
  const { logged, logger } = recordingLogger(String);
  const client = new ConvexClient(input.url, { logger });
  const out = { fetches: 0, changes: [], seen: [] };
  client.setAuth(
    async () => tokens[Math.min(out.fetches++, tokens.length - 1)],
    (authenticated) => out.changes.push(authenticated),
  );
  const unsubscribe = client.onUpdate(subject, {}, (value) => out.seen.push(value));
  try {
    await waitFor(() => out.fetches >= 3, "the scheduled refresh", 15000);
    out.mutation = await client.mutation(whoami, {});
  } catch (error) {
    out.failure = String(error && error.stack || error);
  }
  unsubscribe();
  await client.close();
  out.logged = logged;
  return out;
}

try {
  report.http = await httpClient();
  report.good = await socketClient(input.good);
  report.bad = await socketClient(input.bad);
  report.refresh = await refreshingClient(input.refreshing);
} catch (error) {
  report.failure = String(error && error.stack || error);
}
process.stdout.write(JSON.stringify(report));
