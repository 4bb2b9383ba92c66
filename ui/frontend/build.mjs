// Builds the dashboard's front-end into ui/trainboard_ui/static/ (shipped in the
// wheel, so `pip install` users need no Node):
//   cards.js   uPlot's browser build, then src/smooth.js and src/cards.js, as one
//              ES module (what Streamlit's components v2 load)
//   cards.css  uPlot's stylesheet, then src/cards.css
// Run with `make frontend` (npm ci, then this). The first line of cards.js records
// a hash of every input; tests/test_frontend.py fails when it no longer matches
// the sources (a stale build).
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "trainboard_ui", "static");

// Must match trainboard_ui.frontend.source_hash().
export function sourceHash() {
  const files = ["build.mjs", "package-lock.json", ...readdirSync(join(here, "src")).sort().map((f) => `src/${f}`)];
  const hash = createHash("sha256");
  for (const file of files) {
    hash.update(file + "\0");
    hash.update(readFileSync(join(here, file)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

const read = (path) => readFileSync(join(here, path), "utf8");
const uplot = join("node_modules", "uplot", "dist");
// The sources import each other for editors and tests; in the bundle they are one module.
const local = (text) => text.replace(/^import .* from "\.\/.*";\n/gm, "");

mkdirSync(out, { recursive: true });
const js = [
  `// trainboard-frontend-source: ${sourceHash()}`,
  "// Built by ui/frontend/build.mjs (make frontend); do not edit. uPlot: MIT licence, see LICENSE-uplot.",
  read(join(uplot, "uPlot.iife.min.js")),
  local(read("src/smooth.js")),
  local(read("src/cards.js")),
].join("\n");
writeFileSync(join(out, "cards.js"), js);
writeFileSync(join(out, "cards.css"), [read(join(uplot, "uPlot.min.css")), read("src/cards.css")].join("\n"));
writeFileSync(join(out, "LICENSE-uplot"), read(join("node_modules", "uplot", "LICENSE")));
console.log(`wrote ${out}/cards.js (${js.length} bytes)`);
