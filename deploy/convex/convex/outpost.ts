// Outpost replication on a Convex deployment (deploy/convex/README.md).
//
// `push` is the mutation an Outpost edge gateway calls as `outpost:push` (this file must
// be `convex/outpost.ts`). It builds to the batch contract of
// gateway/replication/batch.py, in one transaction per batch:
//   - last <= applied: seen before; answered, nothing applied again;
//   - no mark yet for (gateway, epoch): `first` starts it;
//   - first == applied + 1: applied, the mark becomes `last`;
//   - first > applied + 1: a gap, ConvexError {code: "ReplicationGap", applied};
//   - first <= applied < last: only the changes above `applied` are applied;
//   - a wrong gateway or key: ConvexError {code: "ReplicationUnauthorized"}.
// Documents are upserted by the indexed `edgeId` (the edge's `_id`); Convex assigns its
// own `_id` and `_creationTime`, the edge's creation time is kept as `edgeCreationTime`.
//
// Imports come from "convex/server" (the generic builders) rather than
// "./_generated/server", so the file drops into any project without codegen changes.
import {
  defineSchema,
  internalMutationGeneric,
  mutationGeneric,
  queryGeneric,
  type DataModelFromSchemaDefinition,
  type GenericDatabaseReader,
  type GenericDatabaseWriter,
  type GenericDataModel,
} from "convex/server";
import { ConvexError, v, type Infer, type Value } from "convex/values";
import { outpostTables } from "./outpostTables";

// The Outpost tables are typed; the user's replicated tables are known only by name.
const outpostSchema = defineSchema(outpostTables);
type OutpostModel = DataModelFromSchemaDefinition<typeof outpostSchema>;
type Reader = GenericDatabaseReader<OutpostModel>;
type Writer = GenericDatabaseWriter<OutpostModel>;
type AnyWriter = GenericDatabaseWriter<GenericDataModel>;
type Fields = Record<string, Value>;
const anyDb = (db: Reader | Writer) => db as unknown as AnyWriter;

export const GAP_CODE = "ReplicationGap";
export const UNAUTHORIZED_CODE = "ReplicationUnauthorized";
const CHANGES_COUNTER = "changes";
const MAX_CHANGES_PAGE = 1000;

const change = v.object({
  seq: v.number(),
  op: v.union(v.literal("insert"), v.literal("update"), v.literal("delete"), v.literal("skip")),
  table: v.string(),
  id: v.string(),
  ts: v.string(),
  doc: v.union(v.null(), v.any()),
});

const batch = {
  gateway: v.string(),
  key: v.string(),
  epoch: v.number(),
  first: v.number(),
  last: v.number(),
  clockTrusted: v.boolean(),
  schema: v.string(),
  // The edge's newest outbox seq when it cut the batch (optional; batch.py).
  newest: v.optional(v.number()),
  changes: v.array(change),
};

type Change = Infer<typeof change>;

/** Lower-case hex SHA-256 of `text` (how `outpostGateways` stores keys). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function sameText(a: string, b: string): boolean {
  // Length-independent comparison of two hex digests (equal lengths by construction).
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

async function authorize(db: Reader, gateway: string, key: string): Promise<void> {
  const row = await db
    .query("outpostGateways")
    .withIndex("by_gateway", (q) => q.eq("gateway", gateway))
    .unique();
  if (row === null || !sameText(row.keySha256, await sha256Hex(key))) {
    throw new ConvexError({ code: UNAUTHORIZED_CODE });
  }
}

function checkShape(args: { first: number; last: number; changes: Change[] }): void {
  const { first, last, changes } = args;
  const whole =
    Number.isInteger(first) &&
    last >= first &&
    changes.length === last - first + 1 &&
    changes.every((c, i) => c.seq === first + i);
  if (!whole) {
    throw new Error(`outpost:push: changes must be exactly seqs ${first}..${last}, in order`);
  }
}

/** Strip the edge's system fields; keep its identity as edgeId / edgeCreationTime. */
function edgeValue(c: Change): Fields {
  const doc = (c.doc ?? {}) as Fields;
  const value: Fields = {};
  for (const [name, field] of Object.entries(doc)) {
    if (!name.startsWith("_")) value[name] = field;
  }
  value.edgeId = c.id;
  if (typeof doc._creationTime === "number") value.edgeCreationTime = doc._creationTime;
  return value;
}

async function findByEdgeId(db: Reader, table: string, edgeId: string) {
  // The index every replicated table declares (outpostTables.ts `replicated`).
  return await anyDb(db)
    .query(table)
    .withIndex("by_edgeId", (q) => (q as unknown as { eq(f: string, v: string): never }).eq("edgeId", edgeId))
    .unique();
}

async function applyChange(
  db: Writer,
  c: Change,
  meta: { gateway: string; epoch: number; clockTrusted: boolean },
): Promise<void> {
  if (c.op === "skip") return;
  if (Object.hasOwn(outpostTables, c.table)) {
    // An edge writes only its own tables, never the keys, marks or logs kept here.
    throw new Error(`outpost:push: table ${JSON.stringify(c.table)} is Outpost's own`);
  }
  const existing = await findByEdgeId(db, c.table, c.id);
  if (c.op === "delete") {
    if (existing !== null) await deleteTracked(db, c.table, existing._id as string);
  } else if (existing === null) {
    await insertTracked(db, c.table, edgeValue(c));
  } else {
    await replaceTracked(db, c.table, existing._id as string, edgeValue(c));
  }
  await recordProvenance(db, c, meta);
}

async function recordProvenance(
  db: Writer,
  c: Change,
  meta: { gateway: string; epoch: number; clockTrusted: boolean },
): Promise<void> {
  const row = { table: c.table, edgeId: c.id, ...meta, seq: c.seq, ts: c.ts };
  const existing = await db
    .query("outpostProvenance")
    .withIndex("by_table_edgeId", (q) => q.eq("table", c.table).eq("edgeId", c.id))
    .unique();
  if (existing === null) await db.insert("outpostProvenance", row);
  else await db.replace(existing._id, row);
}

/** Apply one batch from an edge gateway; answers {applied} (gateway/replication/batch.py). */
export const push = mutationGeneric({
  args: batch,
  handler: async (genericCtx, args) => {
    const ctx = { db: genericCtx.db as unknown as Writer };
    await authorize(ctx.db, args.gateway, args.key);
    checkShape(args);
    const mark = await ctx.db
      .query("outpostMarks")
      .withIndex("by_gateway_epoch", (q) => q.eq("gateway", args.gateway).eq("epoch", args.epoch))
      .unique();
    const applied = mark === null ? args.first - 1 : mark.applied;
    if (args.last <= applied) return { applied };
    if (args.first > applied + 1) {
      throw new ConvexError({ code: GAP_CODE, applied });
    }
    const meta = { gateway: args.gateway, epoch: args.epoch, clockTrusted: args.clockTrusted };
    for (const c of args.changes) {
      if (c.seq > applied) await applyChange(ctx.db, c, meta);
    }
    const row = { ...meta, applied: args.last, schema: args.schema };
    if (mark === null) await ctx.db.insert("outpostMarks", row);
    else await ctx.db.replace(mark._id, row);
    return { applied: args.last };
  },
});

/** Admit a gateway (or change its key): `npx convex run outpost:addGateway`. */
export const addGateway = internalMutationGeneric({
  args: { gateway: v.string(), keySha256: v.string() },
  handler: async (genericCtx, { gateway, keySha256 }) => {
    const ctx = { db: genericCtx.db as unknown as Writer };
    if (!/^[0-9a-f]{64}$/.test(keySha256)) {
      throw new Error("keySha256 must be the lower-case hex SHA-256 of the gateway's key");
    }
    const row = await ctx.db
      .query("outpostGateways")
      .withIndex("by_gateway", (q) => q.eq("gateway", gateway))
      .unique();
    if (row === null) await ctx.db.insert("outpostGateways", { gateway, keySha256 });
    else await ctx.db.patch(row._id, { keySha256 });
  },
});

/** Revoke a gateway: its next batch is refused with ReplicationUnauthorized. */
export const removeGateway = internalMutationGeneric({
  args: { gateway: v.string() },
  handler: async (genericCtx, { gateway }) => {
    const ctx = { db: genericCtx.db as unknown as Writer };
    const row = await ctx.db
      .query("outpostGateways")
      .withIndex("by_gateway", (q) => q.eq("gateway", gateway))
      .unique();
    if (row !== null) await ctx.db.delete(row._id);
  },
});

// --- The downlink's change log ------------------------------------------------------
//
// Convex has no per-document commit-time column that moves on updates, and a read of
// `_creationTime` cannot tell a delete. So writes to tables the edge pulls go through
// these wrappers, which number each write from one counter (the transactions that bump
// it are serialised, so cursor order is commit order) and keep a tombstone per delete.

async function nextCursor(db: Writer): Promise<number> {
  const row = await db
    .query("outpostCounters")
    .withIndex("by_name", (q) => q.eq("name", CHANGES_COUNTER))
    .unique();
  const value = row === null ? 1 : row.value + 1;
  if (row === null) await db.insert("outpostCounters", { name: CHANGES_COUNTER, value });
  else await db.patch(row._id, { value });
  return value;
}

async function logChange(db: Writer, table: string, docId: string, deleted: boolean) {
  const cursor = await nextCursor(db);
  const row = await db
    .query("outpostChanges")
    .withIndex("by_table_docId", (q) => q.eq("table", table).eq("docId", docId))
    .unique();
  if (row === null) await db.insert("outpostChanges", { table, docId, cursor, deleted });
  else await db.patch(row._id, { cursor, deleted });
}

/** `db.insert`, logged for the downlink. */
export async function insertTracked(db: Writer, table: string, value: Fields) {
  const id = await anyDb(db).insert(table, value);
  await logChange(db, table, id, false);
  return id;
}

/** `db.patch`, logged for the downlink. */
export async function patchTracked(db: Writer, table: string, id: string, value: Fields) {
  await anyDb(db).patch(id as never, value);
  await logChange(db, table, id, false);
}

/** `db.replace`, logged for the downlink. */
export async function replaceTracked(db: Writer, table: string, id: string, value: Fields) {
  await anyDb(db).replace(id as never, value);
  await logChange(db, table, id, false);
}

/** `db.delete`, logged for the downlink as a tombstone. */
export async function deleteTracked(db: Writer, table: string, id: string) {
  await anyDb(db).delete(id as never);
  await logChange(db, table, id, true);
}

/**
 * Changes to `table` after `cursor` (0 from the start), in commit order: each the
 * document now (null for a tombstone). Answer's `cursor` is where the next call resumes.
 * The Outpost edge's downlink subscribes to it (gateway/replication/downlink_contract.py)
 * with its gateway name and key, checked as for `push`: the query is public, and the log
 * must not be read by anyone else.
 */
export const changes = queryGeneric({
  args: {
    gateway: v.string(),
    key: v.string(),
    table: v.string(),
    cursor: v.number(),
    limit: v.optional(v.number()),
  },
  handler: async (genericCtx, args) => {
    const db = genericCtx.db as unknown as Reader;
    await authorize(db, args.gateway, args.key);
    const limit = Math.min(args.limit ?? MAX_CHANGES_PAGE, MAX_CHANGES_PAGE);
    const rows = await db
      .query("outpostChanges")
      .withIndex("by_table_cursor", (q) => q.eq("table", args.table).gt("cursor", args.cursor))
      .take(limit);
    const out = [];
    for (const row of rows) {
      const doc = row.deleted ? null : await anyDb(db).get(row.docId as never);
      out.push({ id: row.docId, cursor: row.cursor, deleted: row.deleted, doc });
    }
    const cursor = rows.length === 0 ? args.cursor : rows[rows.length - 1].cursor;
    return { changes: out, cursor, done: rows.length < limit };
  },
});
