// npm `convex` ConvexHttpClient against a running Outpost.
// stdin: {"url", "adminKey", "run": "<tag>"}; stdout: one JSON object, a report per scenario.
// Values are described in JavaScript terms (typeof, BigInt text, bytes as hex, Object.is)
// so the Python side asserts what the client itself decoded.
import { convexRequire, readInput, recordingLogger } from "./harness.mjs";

const require = convexRequire;
const { ConvexHttpClient } = require("convex/browser");
const { ConvexError } = require("convex/values");

const input = await readInput();

const { logged, logger } = recordingLogger();
const client = new ConvexHttpClient(input.url, { logger });
const tag = input.run;

function hex(buffer) {
  return Buffer.from(buffer).toString("hex");
}

// A JSON description of a Convex value as this client holds it.
function describe(value) {
  if (value === null) return { type: "null" };
  if (typeof value === "bigint") return { type: "bigint", text: value.toString() };
  if (value instanceof ArrayBuffer) return { type: "bytes", hex: hex(value) };
  if (typeof value === "number") {
    if (Number.isNaN(value)) return { type: "number", special: "NaN" };
    if (Object.is(value, -0)) return { type: "number", special: "-0" };
    if (!Number.isFinite(value)) return { type: "number", special: String(value) };
    return { type: "number", value };
  }
  if (Array.isArray(value)) return { type: "array", items: value.map(describe) };
  if (typeof value === "object") {
    return {
      type: "object",
      fields: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)])),
    };
  }
  return { type: typeof value, value };
}

function failure(error) {
  return {
    ok: false,
    convexError: error instanceof ConvexError,
    name: error.name,
    message: String(error.message),
    data: error instanceof ConvexError ? describe(error.data) : undefined,
  };
}

async function attempt(call) {
  try {
    return { ok: true, value: describe(await call()) };
  } catch (error) {
    return failure(error);
  }
}

const report = {};

// query, mutation, action
{
  const id = await client.mutation("items:add", { batch: `${tag}-basic`, n: 7 });
  const doc = await client.query("items:get", { id });
  const action = await attempt(() => client.action("items:relabel", { batch: `${tag}-action` }));
  report.basic = { id, doc: describe(doc), action };
}

// ConvexError with data; its write rolled back
report.convexError = {
  mutation: await attempt(() => client.mutation("items:refuse", { code: `E_${tag}` })),
  refusedCount: await client.query("items:count", { batch: "refused" }),
};

// round trips
const bytes = new Uint8Array([0, 1, 127, 128, 254, 255]).buffer;
report.roundTrip = {
  echoed: await attempt(() =>
    client.query("echo:value", {
      value: {
        int64: 2n ** 62n + 1n,
        int64Neg: -(2n ** 63n),
        bytes,
        nan: NaN,
        negZero: -0,
        inf: Infinity,
        whole: 1,
        nested: { list: [1.5, "s", null, true, { deep: [3n] }], empty: {} },
      },
    }),
  ),
  inspected: await attempt(() =>
    client.query("echo:inspect", { i: 41n, b: bytes, nan: NaN, negzero: -0 }),
  ),
  made: await attempt(() => client.query("echo:made", {})),
};

// unknown function, internal function, bad args
const admin = new ConvexHttpClient(input.url, { logger });
admin.setAdminAuth(input.adminKey);
report.refused = {
  unknownFunction: await attempt(() => client.query("items:nope", {})),
  unknownModule: await attempt(() => client.mutation("nowhere:nope", {})),
  internal: await attempt(() => client.query("items:secret", {})),
  internalAsAdmin: await attempt(() => admin.query("items:secret", {})),
  wrongType: await attempt(() => client.mutation("items:add", { batch: 5, n: 1 })),
  extraField: await attempt(() =>
    client.mutation("items:add", { batch: `${tag}-bad`, n: 1, extra: true }),
  ),
  missingField: await attempt(() => client.mutation("items:add", { batch: `${tag}-bad` })),
  badCount: await client.query("items:count", { batch: `${tag}-bad` }),
};

// pagination to the end
{
  const batch = `${tag}-pages`;
  const inserted = await client.mutation("items:fill", { batch, count: 250 });
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 100; i++) {
    const result = await client.query("items:page", {
      batch,
      paginationOpts: { numItems: 40, cursor },
    });
    pages.push({
      ids: result.page.map((d) => d._id),
      ns: result.page.map((d) => d.n),
      isDone: result.isDone,
      cursorType: typeof result.continueCursor,
    });
    if (result.isDone) break;
    cursor = result.continueCursor;
  }
  report.pagination = { inserted, pages };
}

// log lines, as the client hands them to its logger
{
  logged.length = 0;
  const value = await client.query("items:chatty", { who: tag });
  const queryLines = logged.splice(0);
  await client.action("items:relabel", { batch: `${tag}-log` });
  const actionLines = logged.splice(0);
  report.logs = { value, queryLines, actionLines };
}

process.stdout.write(JSON.stringify(report));
