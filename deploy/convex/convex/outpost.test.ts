// outpost:push and outpost:changes under convex-test, driven by the golden batch
// fixtures (deploy/convex/fixtures/*.json) that the Python tests also check.
import { convexTest } from "convex-test";
import { ConvexError } from "convex/values";
import { describe, expect, test } from "vitest";
import { api, internal } from "./_generated/api";
import schema from "./schema";
import { sha256Hex } from "./outpost";

// Every module but the tests (vite 8 does not take the extglob convex-test shows).
const modules = import.meta.glob(["./**/*.ts", "!./**/*.test.ts"]);

type Step = { batch: Record<string, unknown>; expect?: { applied: number }; error?: Record<string, unknown> };
type Fixture = {
  description: string;
  gateway: string;
  key: string;
  steps: Step[];
  marks: { gateway: string; epoch: number; applied: number }[];
  tables: Record<string, Record<string, unknown>[]>;
};

const fixtures = import.meta.glob<Fixture>("../fixtures/*.json", { eager: true, import: "default" });

async function admitted(gateway: string, key: string) {
  const t = convexTest(schema, modules);
  await t.mutation(internal.outpost.addGateway, { gateway, keySha256: await sha256Hex(key) });
  return t;
}

async function errorData(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConvexError) return error.data;
    throw error;
  }
  throw new Error("expected a ConvexError, the call succeeded");
}

function userFields(doc: Record<string, unknown>) {
  return Object.fromEntries(Object.entries(doc).filter(([name]) => !name.startsWith("_")));
}

describe("golden fixtures", () => {
  for (const [path, fixture] of Object.entries(fixtures)) {
    test(`${path}: ${fixture.description}`, async () => {
      const t = await admitted(fixture.gateway, fixture.key);
      for (const [i, step] of fixture.steps.entries()) {
        const call = t.mutation(api.outpost.push, step.batch);
        if (step.error) expect(await errorData(call), `step ${i}`).toEqual(step.error);
        else expect(await call, `step ${i}`).toEqual(step.expect);
      }
      const { marks, tables } = await t.run(async (ctx) => {
        const marks = (await ctx.db.query("outpostMarks").collect()).map((m) => ({
          gateway: m.gateway,
          epoch: m.epoch,
          applied: m.applied,
        }));
        const tables: Record<string, Record<string, unknown>[]> = {};
        for (const table of Object.keys(fixture.tables)) {
          const docs = await ctx.db.query(table as "readings").collect();
          tables[table] = docs.map(userFields).sort((a, b) => String(a.edgeId).localeCompare(String(b.edgeId)));
        }
        return { marks, tables };
      });
      expect(marks.sort((a, b) => a.epoch - b.epoch)).toEqual(fixture.marks);
      expect(tables).toEqual(fixture.tables);
    });
  }
});

const keyed = { gateway: "gw", key: "k" };
const doc = (id: string, value: number) => ({ _id: id, _creationTime: 1000, sensor: "s", value });
const batch = (first: number, changes: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({
  gateway: "gw",
  key: "k",
  epoch: 1,
  first,
  last: first + changes.length - 1,
  clockTrusted: false,
  schema: "s1",
  changes: changes.map((c, i) => ({ seq: first + i, table: "readings", ts: String(100 + first + i), doc: null, ...c })),
  ...extra,
});

test("a mark starts at the first batch of a (gateway, epoch), whatever its first seq", async () => {
  const t = await admitted("gw", "k");
  expect(await t.mutation(api.outpost.push, batch(41, [{ op: "insert", id: "a", doc: doc("a", 1) }]))).toEqual({
    applied: 41,
  });
  expect(await errorData(t.mutation(api.outpost.push, batch(43, [{ op: "skip", id: "x" }])))).toEqual({
    code: "ReplicationGap",
    applied: 41,
  });
});

test("provenance records the gateway, epoch, seq and clock trust of the last write", async () => {
  const t = await admitted("gw", "k");
  await t.mutation(api.outpost.push, batch(1, [{ op: "insert", id: "a", doc: doc("a", 1) }, { op: "update", id: "a", doc: doc("a", 2) }]));
  const rows = await t.run(async (ctx) => await ctx.db.query("outpostProvenance").collect());
  expect(rows.map(({ table, edgeId, gateway, epoch, seq, ts, clockTrusted }) => ({ table, edgeId, gateway, epoch, seq, ts, clockTrusted }))).toEqual([
    { table: "readings", edgeId: "a", gateway: "gw", epoch: 1, seq: 2, ts: "102", clockTrusted: false },
  ]);
});

test("a batch whose changes are not exactly first..last is refused, nothing applied", async () => {
  const t = await admitted("gw", "k");
  const bad = { ...batch(1, [{ op: "insert", id: "a", doc: doc("a", 1) }]), last: 2 };
  await expect(t.mutation(api.outpost.push, bad)).rejects.toThrow(/exactly seqs 1..2/);
  expect(await t.run(async (ctx) => await ctx.db.query("outpostMarks").collect())).toEqual([]);
});

test("a revoked gateway is refused", async () => {
  const t = await admitted("gw", "k");
  await t.mutation(internal.outpost.removeGateway, { gateway: "gw" });
  expect(await errorData(t.mutation(api.outpost.push, batch(1, [{ op: "skip", id: "x" }])))).toEqual({
    code: "ReplicationUnauthorized",
  });
});

test("changes since a cursor: upserts and tombstones in commit order, resumable", async () => {
  const t = await admitted("gw", "k");
  await t.mutation(api.outpost.push, batch(1, [{ op: "insert", id: "a", doc: doc("a", 1) }, { op: "insert", id: "b", doc: doc("b", 2) }]));
  const first = await t.query(api.outpost.changes, { ...keyed, table: "readings", cursor: 0 });
  expect(first.changes.map((c: { doc: { edgeId: string } }) => c.doc.edgeId)).toEqual(["a", "b"]);
  await t.mutation(api.outpost.push, batch(3, [{ op: "delete", id: "a" }, { op: "update", id: "b", doc: doc("b", 3) }]));
  const next = await t.query(api.outpost.changes, { ...keyed, table: "readings", cursor: first.cursor });
  expect(next.changes.map((c: { deleted: boolean; doc: { value: number } | null }) => [c.deleted, c.doc?.value ?? null])).toEqual([
    [true, null],
    [false, 3],
  ]);
  expect(next.done).toBe(true);
  const none = await t.query(api.outpost.changes, { ...keyed, table: "readings", cursor: next.cursor });
  expect(none).toEqual({ changes: [], cursor: next.cursor, done: true });
});

test("changes are refused without the gateway's key, and to a revoked gateway", async () => {
  const t = await admitted("gw", "k");
  await t.mutation(api.outpost.push, batch(1, [{ op: "insert", id: "a", doc: doc("a", 1) }]));
  const asked = { table: "readings", cursor: 0 };
  expect(await errorData(t.query(api.outpost.changes, { ...asked, gateway: "gw", key: "wrong" }))).toEqual({
    code: "ReplicationUnauthorized",
  });
  expect(await errorData(t.query(api.outpost.changes, { ...asked, gateway: "other", key: "k" }))).toEqual({
    code: "ReplicationUnauthorized",
  });
  await t.mutation(internal.outpost.removeGateway, { gateway: "gw" });
  expect(await errorData(t.query(api.outpost.changes, { ...asked, ...keyed }))).toEqual({
    code: "ReplicationUnauthorized",
  });
});

test("an update keeps the document's Convex _id and its edgeCreationTime", async () => {
  const t = await admitted("gw", "k");
  await t.mutation(api.outpost.push, batch(1, [{ op: "insert", id: "a", doc: doc("a", 1) }]));
  const before = await t.run(async (ctx) => await ctx.db.query("readings").collect());
  await t.mutation(api.outpost.push, batch(2, [{ op: "update", id: "a", doc: doc("a", 2) }]));
  const after = await t.run(async (ctx) => await ctx.db.query("readings").collect());
  expect(after.map((d) => [d._id, d._creationTime, d.edgeCreationTime, d.value])).toEqual([
    [before[0]._id, before[0]._creationTime, 1000, 2],
  ]);
});

test("a change to one of Outpost's own tables is refused, nothing applied", async () => {
  const t = await admitted("gw", "k");
  const evil = batch(1, [{ op: "insert", id: "g", table: "outpostGateways", doc: { _id: "g", _creationTime: 1, gateway: "x", keySha256: "0".repeat(64) } }]);
  await expect(t.mutation(api.outpost.push, evil)).rejects.toThrow(/Outpost's own/);
  expect(await t.run(async (ctx) => (await ctx.db.query("outpostGateways").collect()).length)).toBe(1);
});
