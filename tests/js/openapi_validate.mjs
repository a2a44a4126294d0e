// Validates an OpenAPI document with @apidevtools/swagger-parser (structure and every $ref):
//   node openapi_validate.mjs DOC.json
// Prints {"ok":true,"paths":[...]} or {"ok":false,"error":"..."}; exit 0 / 3.
import { readFileSync } from "node:fs";
import SwaggerParser from "@apidevtools/swagger-parser";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
try {
  const api = await SwaggerParser.validate(structuredClone(doc));
  console.log(JSON.stringify({ ok: true, version: api.openapi, paths: Object.keys(api.paths) }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e.message || e) }));
  process.exit(3);
}
