// ajv's verdict on given (schema, instance) pairs, for the hand-picked cases of
// tests/integration/test_schema_ajv.py.
//
// Input (stdin): one JSON line per pair: {"schema":"<schema JSON text>","instance":"<JSON text>"}
// and optionally "assert_formats":true (ajv-formats added in "full" mode, formats validated).
// Output (stdout): one JSON line per pair, in order: {"valid":true|false} or {"error":"..."}
// when ajv refuses the schema or throws while validating.
//
// ajv as a user gets it: Ajv2020 with strict:false and allErrors, its defaults otherwise
// (multipleOf in binary floating point; without assert_formats, formats not validated: 2020-12
// makes `format` an annotation by default).
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.trim() !== "");
for (const line of lines) {
    const pair = JSON.parse(line);
    let out;
    try {
        const formats = pair.assert_formats === true;
        const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: formats });
        if (formats) addFormats(ajv, { mode: "full" });
        const validate = ajv.compile(JSON.parse(pair.schema));
        out = { valid: validate(JSON.parse(pair.instance)) };
    } catch (e) {
        out = { error: String(e.message).split("\n")[0] };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
}
