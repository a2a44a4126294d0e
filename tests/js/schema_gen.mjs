// Random JSON Schema 2020-12 schemas and instances with ajv's verdict, for the differential test
// tests/integration/test_schema_ajv.py (LedgerMQ's validator against ajv).
//
// Usage: node schema_gen.mjs --seed N [--schemas 40] [--instances 12] [--depth 3]
//
// Deterministic from the seed (a xorshift PRNG, no Math.random). Prints one JSON line per schema:
//   {"seed":N,"index":I,"schema":"<schema JSON text>","instances":[{"text":"<JSON>","valid":b}],
//    "ajv_errors":[{"text":"<JSON>","error":"..."}]}   (instances on which ajv threw; at most 3)
// Schema and instances are carried as JSON *text*, so numbers can be written the way the C side
// must see them ("1.0", "1E2", "2.50", "-0.0": jansson reads these as reals, ajv as the same JS
// number; the spec says 1.0 == 1, so ajv's verdict on the parsed value is the reference).
//
// Instances: candidates are drawn from the schema (values near every bound, members named by
// properties/patternProperties, items for prefixItems/items/contains) and then mutated (a type
// swapped, a member dropped or added, an item appended, a number nudged past a bound, a string
// grown or shrunk); ajv (Ajv2020, strict:false, allErrors) gives each a verdict and the
// candidates are picked so that about half the instances of a schema are invalid.
//
// ajv options that deviate from its defaults, and why:
//   multipleOfPrecision: 9  - ajv's default tests `x / m` for an integer in binary floating point,
//                             so it says 0.3 is not a multiple of 0.1; JSON numbers are decimals
//                             and 0.3 = 3 * 0.1 (the brief's contract and the spec's intent). The
//                             generator keeps instance numbers to a few decimals, where a 1e-9
//                             tolerance gives exactly the decimal answer.
//   validateFormats: false  - `format` is an annotation by default in 2020-12 (format-annotation
//                             vocabulary); the CLI asserts formats only with --assert-formats.
import Ajv2020 from "ajv/dist/2020.js";

// Schema nesting below the root (--depth; 3 by default, which the test's seeds were tuned on).
let MAX_DEPTH = 3;
const CANDIDATES_PER_SCHEMA = 120;
const MAX_ATTEMPTS = 6;

// ---- deterministic PRNG (xorshift128+ on BigInt-free 32-bit halves: mulberry32) ----
function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

class Rng {
    constructor(seed) {
        this.next = mulberry32(seed * 2654435761 + 12345);
    }
    float() {
        return this.next();
    }
    int(lo, hi) {
        return lo + Math.floor(this.next() * (hi - lo + 1));
    }
    chance(p) {
        return this.next() < p;
    }
    pick(arr) {
        return arr[Math.floor(this.next() * arr.length)];
    }
    sample(arr, n) {
        const copy = arr.slice();
        const out = [];
        while (out.length < n && copy.length > 0) {
            out.push(copy.splice(Math.floor(this.next() * copy.length), 1)[0]);
        }
        return out;
    }
}

// ---- numbers written with a chosen text: Num(1, "1.0") ----
class Num {
    constructor(value, text) {
        this.value = value;
        this.text = text;
    }
}

function plain(v) {
    if (v instanceof Num) return v.value;
    if (Array.isArray(v)) return v.map(plain);
    if (v !== null && typeof v === "object") {
        const out = {};
        for (const k of Object.keys(v)) out[k] = plain(v[k]);
        return out;
    }
    return v;
}

function text(v) {
    if (v instanceof Num) return v.text;
    if (Array.isArray(v)) return "[" + v.map(text).join(",") + "]";
    if (v !== null && typeof v === "object") {
        return "{" + Object.keys(v).map((k) => JSON.stringify(k) + ":" + text(v[k])).join(",") + "}";
    }
    if (typeof v === "number" && Object.is(v, -0)) return "-0.0";
    return JSON.stringify(v);
}

// Alternative spellings of an integer-valued or short decimal number (same value in JSON).
function respell(rng, n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return n;
    if (Number.isInteger(n) && Math.abs(n) < 1e6) {
        return rng.pick([
            new Num(n, n + ".0"),
            new Num(n, n + ".00"),
            n !== 0 && n % 100 === 0 ? new Num(n, n / 100 + "E2") : new Num(n, n + ".0"),
            n === 0 ? new Num(0, "-0.0") : new Num(n, n + "e0"),
        ]);
    }
    return n;
}

// ---- values ----
// "a/b" and "m~n" need ~1 and ~0 in the error pointers.
const NAMES = ["a", "b", "c", "id", "name", "x-1", "x-2", "foo", "bar", "n", "é", "😀", "k9", "a/b",
    "m~n"];
const STRINGS = ["", "a", "ab", "abc", "abcd", "hello", "x-", "x-y", "12", "123", "1234", "A1",
    "😀", "😀😀", "é", "ée", "a\u0301", "٣", "٣4", "foo bar", "\u2028", "a\nb", "ABC", "_", "-"];

function randomScalar(rng) {
    switch (rng.int(0, 6)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.int(-5, 20);
    case 3: return rng.pick([0.5, 1.5, -2.25, 0.1, 0.3, 2.5, 1e-3, 1e10]);
    case 4: return respell(rng, rng.int(-3, 10));
    default: return rng.pick(STRINGS);
    }
}

function randomValue(rng, depth) {
    if (depth <= 0 || rng.chance(0.6)) return randomScalar(rng);
    if (rng.chance(0.5)) {
        const n = rng.int(0, 3);
        const a = [];
        for (let i = 0; i < n; i++) a.push(randomValue(rng, depth - 1));
        return a;
    }
    const o = {};
    for (const k of rng.sample(NAMES, rng.int(0, 3))) o[k] = randomValue(rng, depth - 1);
    return o;
}

// ---- schemas ----
const PATTERNS = ["^a", "b$", "^[a-z]+$", "\\d", "^x-", "^[0-9]{2,3}$", "\\w+", "^\\w+$",
    "^(ab|cd)*$", "[A-Z]", "^.{2}$", "\\p{L}", "^$", "é"];
const TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"];
const MULTIPLES = [1, 2, 3, 5, 0.5, 0.1, 0.25, 0.01, 1.5];

function numberSchema(rng, s) {
    if (rng.chance(0.5)) s.minimum = rng.pick([rng.int(-3, 5), 0.5, -1.5]);
    if (rng.chance(0.5)) s.maximum = rng.pick([rng.int(3, 15), 10.5]);
    if (rng.chance(0.25)) s.exclusiveMinimum = rng.int(-2, 3);
    if (rng.chance(0.25)) s.exclusiveMaximum = rng.int(5, 12);
    if (rng.chance(0.35)) s.multipleOf = rng.pick(MULTIPLES);
    if (rng.chance(0.2)) for (const k of ["minimum", "maximum", "exclusiveMinimum"]) {
        if (k in s) s[k] = respell(rng, s[k]);
    }
}

function stringSchema(rng, s) {
    if (rng.chance(0.4)) s.minLength = rng.int(0, 3);
    if (rng.chance(0.4)) s.maxLength = rng.int(1, 4);
    if (rng.chance(0.4)) s.pattern = rng.pick(PATTERNS);
    if (rng.chance(0.15)) s.format = rng.pick(["email", "date", "uuid", "ipv4"]);
}

function arraySchema(rng, s, depth, ctx) {
    if (rng.chance(0.4)) {
        s.prefixItems = [];
        const n = rng.int(1, 3);
        for (let i = 0; i < n; i++) s.prefixItems.push(genSchema(rng, depth - 1, ctx));
    }
    if (rng.chance(0.5)) s.items = rng.chance(0.15) ? false : genSchema(rng, depth - 1, ctx);
    if (rng.chance(0.3)) {
        s.contains = genSchema(rng, depth - 1, ctx);
        if (rng.chance(0.4)) s.minContains = rng.int(0, 2);
        if (rng.chance(0.4)) s.maxContains = rng.int(1, 3);
    }
    if (rng.chance(0.3)) s.minItems = rng.int(0, 3);
    if (rng.chance(0.3)) s.maxItems = rng.int(1, 4);
    if (rng.chance(0.25)) s.uniqueItems = rng.chance(0.8);
    if (rng.chance(0.2)) s.unevaluatedItems = rng.chance(0.5) ? false : genSchema(rng, depth - 1, ctx);
}

function objectSchema(rng, s, depth, ctx) {
    const names = rng.sample(NAMES, rng.int(0, 4));
    if (names.length > 0) {
        s.properties = {};
        for (const n of names) s.properties[n] = genSchema(rng, depth - 1, ctx);
        if (rng.chance(0.5)) s.required = rng.sample(names, rng.int(1, names.length));
    }
    if (rng.chance(0.25)) {
        s.patternProperties = {};
        for (const p of rng.sample(["^x-", "^[a-c]$", "\\d", "^é"], rng.int(1, 2))) {
            s.patternProperties[p] = genSchema(rng, depth - 1, ctx);
        }
    }
    if (rng.chance(0.3)) s.additionalProperties = rng.chance(0.5) ? false : genSchema(rng, depth - 1, ctx);
    if (rng.chance(0.15)) s.propertyNames = rng.pick([{ maxLength: 2 }, { pattern: "^[a-z]+$" },
        { enum: ["a", "b", "foo"] }, { minLength: 2 }, { not: { const: "id" } }]);
    if (rng.chance(0.2)) s.minProperties = rng.int(0, 2);
    if (rng.chance(0.2)) s.maxProperties = rng.int(1, 3);
    if (rng.chance(0.2)) {
        const [a, b, c] = rng.sample(NAMES, 3);
        s.dependentRequired = { [a]: rng.chance(0.5) ? [b] : [b, c] };
    }
    if (rng.chance(0.15)) s.dependentSchemas = { [rng.pick(NAMES)]: genSchema(rng, depth - 1, ctx) };
    if (rng.chance(0.25)) s.unevaluatedProperties = rng.chance(0.6) ? false : genSchema(rng, depth - 1, ctx);
}

function applicators(rng, s, depth, ctx) {
    const r = rng.float();
    const branches = () => {
        const out = [];
        const n = rng.int(1, 3);
        for (let i = 0; i < n; i++) out.push(genSchema(rng, depth - 1, ctx));
        return out;
    };
    if (r < 0.12) s.allOf = branches();
    else if (r < 0.24) s.anyOf = branches();
    else if (r < 0.36) s.oneOf = branches();
    else if (r < 0.44) s.not = genSchema(rng, depth - 1, ctx);
    else if (r < 0.56) {
        s.if = genSchema(rng, depth - 1, ctx);
        if (rng.chance(0.8)) s.then = genSchema(rng, depth - 1, ctx);
        if (rng.chance(0.6)) s.else = genSchema(rng, depth - 1, ctx);
    } else if (r < 0.66 && ctx.defs.length > 0) {
        s.$ref = rng.chance(0.8) ? "#/$defs/" + rng.pick(ctx.defs) : (ctx.defs[0] === "d0" ? "#anchor_d0" : "#/$defs/" + ctx.defs[0]);
    }
}

function genSchema(rng, depth, ctx) {
    if (depth <= 0 || rng.chance(0.08)) {
        if (rng.chance(0.15)) return rng.chance(0.7);
        return { type: rng.pick(TYPES) };
    }
    const s = {};
    if (ctx.defs.length > 0 && rng.chance(0.15)) {
        // A reference, alone or with siblings (2020-12 evaluates both).
        s.$ref = rng.chance(0.8) ? "#/$defs/" + rng.pick(ctx.defs) : (ctx.defs[0] === "d0" ? "#anchor_d0" : "#/$defs/" + ctx.defs[0]);
        if (rng.chance(0.3)) s.unevaluatedProperties = false;
        else if (rng.chance(0.3)) s.minProperties = 1;
        return s;
    }
    const r = rng.float();
    if (r < 0.1) {
        s.const = randomValue(rng, 2);
        if (rng.chance(0.5)) s.const = respellDeep(rng, s.const);
        return s;
    }
    if (r < 0.18) {
        const n = rng.int(1, 4);
        s.enum = [];
        for (let i = 0; i < n; i++) s.enum.push(respellDeep(rng, randomValue(rng, 1)));
        return s;
    }
    const kind = rng.pick(["number", "integer", "string", "array", "object", "object", "array",
        "any", "multi"]);
    if (kind === "multi") s.type = rng.sample(TYPES, rng.int(2, 3));
    else if (kind !== "any") s.type = kind;
    const has = (t) => kind === "any" || kind === t || (Array.isArray(s.type) && s.type.includes(t));
    if (has("number") || has("integer")) numberSchema(rng, s);
    if (has("string")) stringSchema(rng, s);
    if (has("array")) arraySchema(rng, s, depth, ctx);
    if (has("object")) objectSchema(rng, s, depth, ctx);
    if (rng.chance(0.4)) applicators(rng, s, depth, ctx);
    return s;
}

function respellDeep(rng, v) {
    if (v instanceof Num) return v;
    if (typeof v === "number") return rng.chance(0.5) ? respell(rng, v) : v;
    if (Array.isArray(v)) return v.map((x) => respellDeep(rng, x));
    if (v !== null && typeof v === "object") {
        const o = {};
        for (const k of Object.keys(v)) o[k] = respellDeep(rng, v[k]);
        return o;
    }
    return v;
}

function genRoot(rng) {
    const ctx = { defs: [] };
    const defs = {};
    const ndefs = rng.int(0, 2);
    for (let i = 0; i < ndefs; i++) ctx.defs.push("d" + i);
    for (let i = 0; i < ndefs; i++) {
        const d = genSchema(rng, 2, { defs: ctx.defs.slice(0, i) });
        defs["d" + i] = typeof d === "boolean" ? { allOf: [d] } : d;
    }
    if (ndefs > 0) defs.d0.$anchor = "anchor_d0";
    // A recursive definition now and then: a tree whose children are trees.
    if (rng.chance(0.15)) {
        ctx.defs.push("tree");
        defs.tree = { type: "object", properties: { v: { type: "integer" },
            kids: { type: "array", items: { $ref: "#/$defs/tree" }, maxItems: 2 } },
        required: ["v"] };
    }
    let root = genSchema(rng, MAX_DEPTH, ctx);
    if (typeof root === "boolean") root = { allOf: [root] };
    if (Object.keys(defs).length > 0) root.$defs = defs;
    root.$schema = "https://json-schema.org/draft/2020-12/schema";
    return root;
}

// ---- instances ----
function resolve(schema, root) {
    if (schema && typeof schema === "object" && typeof schema.$ref === "string") {
        const ref = schema.$ref;
        if (ref.startsWith("#/$defs/")) return root.$defs?.[ref.slice(8)] ?? schema;
        if (ref.startsWith("#anchor_")) return root.$defs?.[ref.slice(8)] ?? schema;
    }
    return schema;
}

function numberNear(rng, s) {
    const bounds = [];
    for (const k of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
        if (k in s) bounds.push(plain(s[k]));
    }
    if (bounds.length > 0 && rng.chance(0.7)) {
        const b = rng.pick(bounds);
        return b + rng.pick([0, 0, -1, 1, -0.5, 0.5]);
    }
    if ("multipleOf" in s && rng.chance(0.7)) {
        const m = s.multipleOf;
        const k = rng.int(-3, 12);
        const v = Number((k * m).toFixed(6));
        return rng.chance(0.8) ? v : Number((v + rng.pick([0.05, 0.001, 1])).toFixed(6));
    }
    return rng.pick([rng.int(-3, 15), rng.int(-3, 15) + 0.5, 0.3, 0.7, 1e-3]);
}

function stringNear(rng, s) {
    if ("minLength" in s || "maxLength" in s) {
        const n = rng.pick([s.minLength ?? 0, s.maxLength ?? 2]) + rng.int(-1, 1);
        const unit = rng.pick(["a", "😀", "é", "1", "x"]);
        return unit.repeat(Math.max(0, n));
    }
    return rng.pick(STRINGS);
}

function sampleInstance(rng, schema, root, depth) {
    schema = resolve(schema, root);
    if (schema === true || schema === false || schema === undefined) return randomValue(rng, 1);
    if (depth <= 0) return randomScalar(rng);
    if ("const" in schema && rng.chance(0.8)) return respellDeep(rng, schema.const);
    if ("enum" in schema && rng.chance(0.8)) return respellDeep(rng, rng.pick(schema.enum));
    for (const k of ["allOf", "anyOf", "oneOf"]) {
        if (k in schema && rng.chance(0.4)) return sampleInstance(rng, rng.pick(schema[k]), root, depth - 1);
    }
    if ("if" in schema && rng.chance(0.3)) return sampleInstance(rng, schema.if, root, depth - 1);
    let t = schema.type;
    if (Array.isArray(t)) t = rng.pick(t);
    if (t === undefined) {
        if ("properties" in schema || "required" in schema) t = "object";
        else if ("prefixItems" in schema || "items" in schema || "contains" in schema) t = "array";
        else if ("minimum" in schema || "multipleOf" in schema) t = "number";
        else if ("pattern" in schema || "minLength" in schema) t = "string";
        else t = rng.pick(TYPES);
    }
    switch (t) {
    case "null": return null;
    case "boolean": return rng.chance(0.5);
    case "integer": {
        const v = Math.round(numberNear(rng, schema));
        return rng.chance(0.2) ? respell(rng, v) : v;
    }
    case "number": return numberNear(rng, schema);
    case "string": return stringNear(rng, schema);
    case "array": {
        const a = [];
        for (const p of schema.prefixItems ?? []) {
            if (rng.chance(0.9)) a.push(sampleInstance(rng, p, root, depth - 1));
        }
        // Now and then past 16 items, where uniqueItems switches to a hash table in ledgermq.
        const extra = rng.chance(0.08) ? rng.int(17, 24) : rng.int(0, 3);
        for (let i = 0; i < extra; i++) {
            const sub = rng.chance(0.5) && schema.contains !== undefined ? schema.contains : schema.items;
            a.push(sampleInstance(rng, sub, root, depth - 1));
        }
        if (schema.uniqueItems && a.length > 0 && rng.chance(0.3)) a.push(respellDeep(rng, a[0]));
        return a;
    }
    case "object": {
        const o = {};
        const props = schema.properties ?? {};
        for (const k of Object.keys(props)) {
            if ((schema.required ?? []).includes(k) ? rng.chance(0.95) : rng.chance(0.6)) {
                o[k] = sampleInstance(rng, props[k], root, depth - 1);
            }
        }
        for (const p of Object.keys(schema.patternProperties ?? {})) {
            if (rng.chance(0.5)) {
                const name = rng.pick(NAMES.filter((n) => new RegExp(p, "u").test(n)).concat(["x-z"]));
                o[name] = sampleInstance(rng, schema.patternProperties[p], root, depth - 1);
            }
        }
        if (rng.chance(0.3)) o[rng.pick(NAMES)] = sampleInstance(rng, schema.additionalProperties, root, depth - 1);
        for (const [k, deps] of Object.entries(schema.dependentRequired ?? {})) {
            if (k in o && rng.chance(0.7)) for (const d of deps) o[d] = randomScalar(rng);
        }
        return o;
    }
    default: return randomValue(rng, 2);
    }
}

function mutate(rng, v, depth) {
    const r = rng.float();
    if (Array.isArray(v)) {
        if (v.length > 0 && r < 0.35) {
            const a = v.slice();
            const i = rng.int(0, a.length - 1);
            a[i] = mutate(rng, a[i], depth + 1);
            return a;
        }
        if (r < 0.55) return v.concat([rng.chance(0.5) && v.length > 0 ? v[0] : randomScalar(rng)]);
        if (r < 0.75 && v.length > 0) return v.slice(0, v.length - 1);
        return randomValue(rng, 1);
    }
    if (v !== null && typeof v === "object" && !(v instanceof Num)) {
        const keys = Object.keys(v);
        const o = { ...v };
        if (keys.length > 0 && r < 0.4) {
            const k = rng.pick(keys);
            o[k] = mutate(rng, o[k], depth + 1);
            return o;
        }
        if (keys.length > 0 && r < 0.6) {
            delete o[rng.pick(keys)];
            return o;
        }
        if (r < 0.85) {
            o[rng.pick(NAMES)] = randomScalar(rng);
            return o;
        }
        return randomValue(rng, 1);
    }
    if (typeof v === "number" || v instanceof Num) {
        const n = plain(v);
        if (r < 0.3) return respell(rng, n);
        if (r < 0.8) return n + rng.pick([1, -1, 0.5, -0.5, 0.1]);
        return String(n);
    }
    if (typeof v === "string") {
        if (r < 0.3) return v + rng.pick(["a", "😀", "1", "é"]);
        // By code points: cutting a UTF-16 pair would leave a lone surrogate, which is not
        // Unicode text (RFC 8259 8.2; jansson refuses it, ajv accepts it).
        if (r < 0.6) return Array.from(v).slice(0, -1).join("");
        if (r < 0.7) return v.length;
        return rng.pick(STRINGS);
    }
    return randomScalar(rng);
}

// ---- main ----
function parseArgs(argv) {
    const args = { seed: 1, schemas: 40, instances: 12, depth: 3 };
    for (let i = 2; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "");
        if (!(key in args) || i + 1 >= argv.length) {
            process.stderr.write("usage: node schema_gen.mjs --seed N [--schemas K] [--instances M] [--depth D]\n");
            process.exit(2);
        }
        args[key] = Number(argv[i + 1]);
    }
    return args;
}

function main() {
    const args = parseArgs(process.argv);
    MAX_DEPTH = args.depth;
    const rng = new Rng(args.seed);
    const ajv = new Ajv2020({ strict: false, allErrors: true, multipleOfPrecision: 9,
        validateFormats: false });
    for (let index = 0; index < args.schemas; index++) {
        let schema, schemaText, valid, invalid, ajvErrors;
        // A schema that few candidates satisfy is drawn again (a few times), so that the
        // instances are about half valid rather than mostly invalid.
        for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
            schema = genRoot(rng);
            schemaText = text(schema);
            [valid, invalid, ajvErrors] = candidates(rng, ajv, schema, schemaText, args.seed, index);
            if (valid.length >= args.instances / 3) break;
        }
        const half = Math.ceil(args.instances / 2);
        const picked = valid.slice(0, half);
        picked.push(...invalid.slice(0, args.instances - picked.length));
        if (picked.length < args.instances) picked.push(...valid.slice(half, half + args.instances - picked.length));
        process.stdout.write(JSON.stringify({ seed: args.seed, index, schema: schemaText,
            instances: picked, ajv_errors: ajvErrors.slice(0, 3) }) + "\n");
    }
}

// [valid, invalid] candidate instances of one schema, each {text, valid} with ajv's verdict.
function candidates(rng, ajv, schema, schemaText, seed, index) {
        let validate;
        try {
            validate = ajv.compile(JSON.parse(schemaText));
        } catch (e) {
            // Not expected: the generator writes valid schemas. Fail loudly.
            process.stderr.write(`schema_gen: seed ${seed} #${index}: ajv: ${e.message}\n`);
            process.exit(1);
        }
        const valid = [];
        const invalid = [];
        const ajvErrors = [];
        const seen = new Set();
        for (let c = 0; c < CANDIDATES_PER_SCHEMA; c++) {
            let inst = sampleInstance(rng, schema, schema, MAX_DEPTH + 1);
            const nmut = rng.chance(0.5) ? 0 : rng.int(1, 2);
            for (let m = 0; m < nmut; m++) inst = mutate(rng, inst, 0);
            const t = text(inst);
            if (seen.has(t)) continue;
            seen.add(t);
            let ok;
            try {
                ok = validate(JSON.parse(t));
            } catch (e) {
                // ajv's generated code can throw (seen: unevaluatedProperties after an anyOf
                // whose first branch failed, "Cannot set properties of undefined"): no verdict,
                // so the instance is not used; the count goes in the output line.
                ajvErrors.push({ text: t, error: String(e.message) });
                continue;
            }
            (ok ? valid : invalid).push({ text: t, valid: ok });
        }
        return [valid, invalid, ajvErrors];
}

main();
