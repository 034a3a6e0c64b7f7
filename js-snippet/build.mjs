// Build the beacon into dist/dealbeacon.js (esbuild bundles, terser minifies: ~3 % smaller gzipped than
// esbuild's own minifier), print its size, and fail past the 3 KB gzip budget.
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { minify } from "terser";

const BUDGET = 3072;
const bundle = await build({ entryPoints: ["src/index.js"], bundle: true, format: "iife", target: "es2021",
  write: false, legalComments: "none" });
const min = await minify(bundle.outputFiles[0].text, { ecma: 2021, toplevel: true, compress: { passes: 3 },
  mangle: { toplevel: true }, format: { comments: false } });
writeFileSync("dist/dealbeacon.js", min.code);
const raw = readFileSync("dist/dealbeacon.js");
const gz = gzipSync(raw, { level: 9 }).length;
console.log(`dist/dealbeacon.js: ${raw.length} bytes raw, ${gz} bytes gzipped (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`over budget by ${gz - BUDGET} bytes`);
  process.exit(1);
}
