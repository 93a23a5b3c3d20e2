// The schema the vitest suite runs against: a user's schema, as deploy/convex/README.md
// tells them to write it (the Outpost tables plus one replicated table).
import { defineSchema } from "convex/server";
import { v } from "convex/values";
import { outpostTables, replicated } from "./outpostTables";

export default defineSchema({
  ...outpostTables,
  readings: replicated({ sensor: v.string(), value: v.number() }),
});
