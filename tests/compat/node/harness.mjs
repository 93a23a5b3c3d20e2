// What every Node script driving the official npm `convex` client needs: the package
// from the test setup's npm cache, the JSON input on stdin, a logger that records lines.
import { createRequire } from "node:module";
import { join } from "node:path";

export const convexRequire = createRequire(
  join(process.env.CONVEX_NPM_PREFIX, "node_modules", "x.js"),
);

export async function readInput() {
  const text = await new Promise((resolve) => {
    let data = "";
    process.stdin.on("data", (chunk) => (data += chunk));
    process.stdin.on("end", () => resolve(data));
  });
  return JSON.parse(text);
}

// `convert` turns each logged argument into what the report keeps (default: as is).
export function recordingLogger(convert = (x) => x) {
  const logged = [];
  const record = (level) => (...args) => logged.push([level, ...args.map(convert)]);
  return {
    logged,
    logger: { log: record("log"), warn: record("warn"), error: record("error"), logVerbose: () => {} },
  };
}
