// ajv's side of `make bench-data` (scripts/bench-data.py): the same measurement as
// tests/tools/schema_bench.c.
//
//   node schema_bench.mjs SCHEMA INSTANCES.jsonl MIN_MS [--assert-formats]
//
// Compiles SCHEMA once (Ajv2020, strict:false, allErrors like the CLI's error list,
// multipleOfPrecision 9; with --assert-formats, ajv-formats in "full" mode), parses every line
// once (not timed), then validates round after round until MIN_MS have passed. Prints
//   {"objects":N,"ms":T,"objects_per_s":R,"valid":V,"invalid":I}
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const ROUNDS_MAX = 100000000;

const [schemaPath, instancesPath, minMsText, flag] = process.argv.slice(2);
if (!schemaPath || !instancesPath || !minMsText || (flag && flag !== "--assert-formats")) {
    process.stderr.write("usage: node schema_bench.mjs SCHEMA INSTANCES.jsonl MIN_MS [--assert-formats]\n");
    process.exit(1);
}
const assertFormats = flag === "--assert-formats";
const ajv = new Ajv2020({ strict: false, allErrors: true, multipleOfPrecision: 9,
    validateFormats: assertFormats });
if (assertFormats) addFormats(ajv, { mode: "full" });
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
const instances = readFileSync(instancesPath, "utf8").split("\n").filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
const minMs = Number(minMsText);

let valid = 0;
let invalid = 0;
for (const inst of instances) {
    if (validate(inst)) valid++;
    else invalid++;
}
let objects = 0;
let rounds = 0;
let sink = 0;
const t0 = performance.now();
let elapsed = 0;
while (elapsed < minMs && rounds < ROUNDS_MAX) {
    for (const inst of instances) sink += validate(inst) ? 1 : 0;
    objects += instances.length;
    rounds++;
    elapsed = performance.now() - t0;
}
if (sink !== valid * rounds) {
    process.stderr.write("schema_bench.mjs: verdicts changed between rounds\n");
    process.exit(1);
}
process.stdout.write(JSON.stringify({ objects, ms: Number(elapsed.toFixed(1)),
    objects_per_s: Math.round((objects * 1000) / elapsed), valid, invalid }) + "\n");
