// Test scaffolding only: a Convex project has its own `convex/_generated/` (written by
// `npx convex dev` or `npx convex codegen`). convex-test needs the directory to find the
// functions root; the module itself imports nothing from here.
import { anyApi } from "convex/server";

export const api = anyApi;
export const internal = anyApi;
