#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_schema.c into tests/fuzz/corpus/schema/: a flags
byte, a schema, a NUL, an instance (see the target's header). Seeds: hostile schemas (a $ref
that loops without consuming the instance, catastrophic regexes, deep nesting, $dynamicRef,
draft-7 forms, formats) and 40 random 2020-12 schemas with one instance each from
tests/js/schema_gen.mjs (needs node and tests/js/node_modules: scripts/npm-deps.sh).

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus_schema.py  (rewrites that directory;
the output is the same on every run: the generator is seeded).
"""
import json
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "corpus", "schema")
GEN_SEED = 99
GEN_SCHEMAS = 40
S2020 = "https://json-schema.org/draft/2020-12/schema"
S7 = "http://json-schema.org/draft-07/schema#"

# (flags, schema, instance text); flags: 1 assert formats, 2 draft 7, 4 skip the meta check.
HAND = [
    (0, {"$ref": "#"}, "1"),
    (4, {"$ref": "#"}, "1"),
    (0, {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
     "{}"),
    (0, {"anyOf": [{"$ref": "#"}, {"type": "integer"}]}, "[]"),
    (0, {"properties": {"a": {"$ref": "#"}}}, '{"a":{"a":{"a":{"a":1}}}}'),
    (0, {"pattern": "^(a+)+$"}, '"' + "a" * 40 + 'b"'),
    (0, {"patternProperties": {"^(a|aa)+$": True}}, '{"' + "a" * 40 + 'b":1}'),
    (0, {"pattern": "\\p{L}\\u00e9\\u{1F600}[\\s\\S]\\d\\w(?<=a)b"}, '"\u00e9x"'),
    (4, {"pattern": "("}, '"x"'),
    (0, {"items": {"items": {"items": {"items": {}}}}}, "[[[[[[[[[[[[1]]]]]]]]]]]]"),
    (0, {"allOf": [{"allOf": [{"allOf": [{"not": {"not": {"type": "object"}}}]}]}]}, "{}"),
    (0, {"$dynamicAnchor": "m", "properties": {"x": {"$dynamicRef": "#m"}},
         "unevaluatedProperties": False}, '{"x":{"x":{},"y":1}}'),
    (0, {"$id": "https://example.com/a", "$defs": {"b": {"$id": "b/c", "$anchor": "z",
                                                          "type": "string"}},
         "$ref": "b/c#z"}, '"s"'),
    (0, {"$defs": {"a~b/c%d": {"minimum": 2}}, "$ref": "#/$defs/a~0b~1c%25d"}, "1.0"),
    (0, {"prefixItems": [{"type": "integer"}], "contains": {"const": 1.0}, "minContains": 2,
         "maxContains": 3, "unevaluatedItems": False, "uniqueItems": True}, "[1,1.0,2]"),
    (0, {"if": {"required": ["a"]}, "then": {"dependentRequired": {"a": ["b"]}},
         "else": {"dependentSchemas": {"c": False}}, "unevaluatedProperties": {"type": "null"}},
     '{"a":1,"b":2,"z":null}'),
    (0, {"multipleOf": 0.1, "maximum": 1e308, "exclusiveMinimum": -1e308}, "0.3"),
    (0, {"enum": [1, 1.0, {"a": [1]}, [1, {"b": None}], "\u00e9"]}, '{"a":[1.0]}'),
    (0, {"minLength": 2, "maxLength": 2}, '"\U0001F600\u00e9"'),
    (1, {"properties": {k: {"format": k} for k in [
        "date-time", "date", "time", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"]}},
     json.dumps({"date-time": "1998-12-31T23:59:60Z", "date": "2020-02-30",
                 "time": "23:59:60+00:00", "email": "a@b", "hostname": "a-.com",
                 "ipv4": "127.0.0.01", "ipv6": "::ffff:1.2.3.4", "uri": "http://x/%zz",
                 "uuid": "2EB8AA08-AA98-11EA-B4AA-73B441D16380"})),
    (2, {"$schema": S7, "definitions": {"a": {"type": "integer"}}, "items": [{"$ref":
         "#/definitions/a"}], "additionalItems": False, "dependencies": {"x": ["y"]}}, "[1,2]"),
    (2, {"$schema": S7, "$ref": "#/definitions/a", "definitions": {"a": {"$id": "#foo"}},
         "type": "string"}, "1"),
    (0, {"$schema": S2020, "propertyNames": {"maxLength": 1}, "minProperties": 1,
         "maxProperties": 1, "additionalProperties": {"type": ["array", "null"]}},
     '{"a":null}'),
    (0, True, "1"),
    (0, False, "1"),
    (0, {"type": 12, "minimum": "x"}, "1"),
    (4, {"type": 12, "minimum": "x"}, "1"),
]


def write(name, flags, schema, instance):
    data = bytes([flags]) + json.dumps(schema, ensure_ascii=False).encode("utf-8") + b"\0" + \
        instance.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for i, (flags, schema, instance) in enumerate(HAND):
        write("hand_%02d" % i, flags, schema, instance)
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "npm-deps.sh")], check=True)
    r = subprocess.run(["node", os.path.join(ROOT, "tests", "js", "schema_gen.mjs"), "--seed",
                        str(GEN_SEED), "--schemas", str(GEN_SCHEMAS), "--instances", "2"],
                       capture_output=True, text=True, check=True, timeout=120)
    for line in [l for l in r.stdout.split("\n") if l]:  # not splitlines: U+2028 is in strings
        d = json.loads(line)
        inst = d["instances"][-1]["text"] if d["instances"] else "null"
        write("gen_%02d" % d["index"], 0, json.loads(d["schema"]), inst)


if __name__ == "__main__":
    main()
