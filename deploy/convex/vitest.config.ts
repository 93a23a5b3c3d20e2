import { defineConfig } from "vitest/config";

// convex-test runs functions in the edge runtime, as Convex's own V8 isolate would.
export default defineConfig({
  test: {
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
  },
});
