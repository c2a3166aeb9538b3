// Builds js/src/index.ts into the single ES module that ships in the Python package.
// Deterministic output (no timestamps, no absolute paths) so a test can check that the
// committed module matches the source.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
// `node build.mjs --outfile PATH` builds elsewhere (the test comparing it with the shipped file).
const flag = process.argv.indexOf("--outfile");
const outfile = flag > 0 ? process.argv[flag + 1] : `${here}../halo_nb/widgets/static/widget.js`;

await build({
  entryPoints: [`${here}src/index.ts`],
  outfile,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  loader: { ".css": "text" },
  logLevel: "warning",
});
