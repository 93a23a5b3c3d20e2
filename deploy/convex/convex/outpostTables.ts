// Schema pieces for Outpost replication (deploy/convex/README.md).
//
// In your convex/schema.ts:
//
//   import { defineSchema } from "convex/server";
//   import { v } from "convex/values";
//   import { outpostTables, replicated } from "./outpostTables";
//
//   export default defineSchema({
//     ...outpostTables,
//     readings: replicated({ sensor: v.string(), value: v.number() }),
//   });
import { defineTable } from "convex/server";
import { v, type PropertyValidators } from "convex/values";

/** The fields each table written by `outpost:push` needs besides its own. */
export const edgeFields = {
  // The document's `_id` on the edge gateway (Convex assigns its own `_id`).
  edgeId: v.optional(v.string()),
  // The document's `_creationTime` on the edge gateway, in ms since the epoch.
  edgeCreationTime: v.optional(v.number()),
};

/** A replicated table: `fields` plus `edgeFields`, indexed by `edgeId` ("by_edgeId"). */
export function replicated<F extends PropertyValidators>(fields: F) {
  // The cast: TypeScript cannot see "edgeId" among a generic F's field paths.
  return defineTable({ ...fields, ...edgeFields }).index("by_edgeId", ["edgeId"] as never);
}

/** The tables `outpost.ts` keeps: spread them into your `defineSchema({...})`. */
export const outpostTables = {
  // One key per edge gateway: the SHA-256 (lower-case hex) of the key the edge holds.
  outpostGateways: defineTable({
    gateway: v.string(),
    keySha256: v.string(),
  }).index("by_gateway", ["gateway"]),
  // The high-water mark per (gateway, epoch): the highest seq durably applied.
  outpostMarks: defineTable({
    gateway: v.string(),
    epoch: v.number(),
    applied: v.number(),
    clockTrusted: v.boolean(),
    schema: v.string(),
  }).index("by_gateway_epoch", ["gateway", "epoch"]),
  // Provenance: which gateway (epoch, seq, HLC ts) last wrote each replicated document.
  outpostProvenance: defineTable({
    table: v.string(),
    edgeId: v.string(),
    gateway: v.string(),
    epoch: v.number(),
    seq: v.number(),
    ts: v.string(),
    clockTrusted: v.boolean(),
  }).index("by_table_edgeId", ["table", "edgeId"]),
  // The downlink's change log: one row per write made through the tracked wrappers,
  // numbered by a counter (commit order), kept for deletes as tombstones.
  outpostChanges: defineTable({
    table: v.string(),
    docId: v.string(),
    cursor: v.number(),
    deleted: v.boolean(),
  })
    .index("by_table_cursor", ["table", "cursor"])
    .index("by_table_docId", ["table", "docId"]),
  outpostCounters: defineTable({ name: v.string(), value: v.number() }).index("by_name", [
    "name",
  ]),
};
