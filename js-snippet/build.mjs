// Build the beacon into dist/dealbeacon.js, print its size, and fail past the 3 KB gzip budget.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 3072;
await build({ entryPoints: ["src/index.js"], bundle: true, minify: true, format: "iife", target: "es2019",
  outfile: "dist/dealbeacon.js", legalComments: "none" });
const raw = readFileSync("dist/dealbeacon.js");
const gz = gzipSync(raw, { level: 9 }).length;
console.log(`dist/dealbeacon.js: ${raw.length} bytes raw, ${gz} bytes gzipped (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`over budget by ${gz - BUDGET} bytes`);
  process.exit(1);
}
