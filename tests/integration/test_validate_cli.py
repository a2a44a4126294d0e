"""`ledgermq validate` (issue 16, the validator part): the CLI contract. One JSON line per
instance in input order ({"file":..,"valid":..} or, with --jsonl, {"file":..,"line":..,...}),
errors as {"instance","schema","keyword","message"} with JSON Pointers (the keyword location
through $ref), at most 10 per instance; exit 0 all valid, 3 some invalid, 1 usage or unusable
input (1 wins over 3); a broken schema is one line `ledgermq: validate: <file>: <reason>`."""

import json
import os
import subprocess

BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
TIMEOUT_S = 60

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        "when": {"type": "string", "format": "date-time"},
    },
    "required": ["items"],
    "$defs": {"item": {"type": "integer", "minimum": 0}},
}


def run(args, cwd, stdin=None):
    return subprocess.run([BIN, "validate", *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, timeout=TIMEOUT_S)


def lines(p):
    return [json.loads(line) for line in p.stdout.splitlines()]


def write(tmp_path, name, value, raw=False):
    (tmp_path / name).write_text(value if raw else json.dumps(value))
    return name


def test_files_valid_and_invalid_in_order(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    write(tmp_path, "a.json", {"items": [1, 2.0]})
    write(tmp_path, "b.json", {"items": [1, -1, "x"]})
    p = run(["--schema", "s.json", "a.json", "b.json"], tmp_path)
    assert p.returncode == 3, p.stderr
    out = lines(p)
    assert out[0] == {"file": "a.json", "valid": True}
    assert out[1]["file"] == "b.json" and out[1]["valid"] is False
    assert out[1]["errors"] == [
        {"instance": "/items/1", "schema": "/properties/items/items/$ref/minimum",
         "keyword": "minimum", "message": out[1]["errors"][0]["message"]},
        {"instance": "/items/2", "schema": "/properties/items/items/$ref/type",
         "keyword": "type", "message": out[1]["errors"][1]["message"]},
    ]
    assert all(e["message"] for e in out[1]["errors"])


def test_all_valid_exits_0(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    write(tmp_path, "a.json", {"items": []})
    p = run(["--schema", "s.json", "a.json"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert lines(p) == [{"file": "a.json", "valid": True}]
    assert p.stderr == ""


def test_stdin_document(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    p = run(["--schema", "s.json"], tmp_path, stdin='{"items": [3]}')
    assert p.returncode == 0, p.stderr
    assert lines(p) == [{"file": "-", "valid": True}]
    p = run(["--schema", "s.json", "-"], tmp_path, stdin='{"nope": 1}')
    assert p.returncode == 3
    assert lines(p)[0]["errors"][0]["keyword"] == "required"


def test_jsonl_lines_numbered_blank_skipped_non_json_is_1(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    text = '{"items":[1]}\n\n{"items":[-5]}\nnot json\n   \n{"items":[]}'
    p = run(["--schema", "s.json", "--jsonl"], tmp_path, stdin=text)
    assert p.returncode == 1, (p.stdout, p.stderr)  # 1 (unusable line) wins over 3
    out = lines(p)
    assert [o.get("line") for o in out] == [1, 3, 4, 6]
    assert out[0] == {"file": "-", "line": 1, "valid": True}
    assert out[1]["valid"] is False and out[1]["errors"][0]["instance"] == "/items/0"
    assert out[2]["line"] == 4 and out[2]["error"].startswith("not JSON: ")
    assert "valid" not in out[2]
    assert out[3] == {"file": "-", "line": 6, "valid": True}


def test_jsonl_from_files(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    write(tmp_path, "x.jsonl", '{"items":[1]}\n{"items":"no"}\n', raw=True)
    p = run(["--jsonl", "--schema", "s.json", "x.jsonl"], tmp_path)
    assert p.returncode == 3
    assert [(o["file"], o["line"], o["valid"]) for o in lines(p)] == [
        ("x.jsonl", 1, True), ("x.jsonl", 2, False)]


def test_at_most_ten_errors(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    write(tmp_path, "a.json", {"items": ["x"] * 25})
    p = run(["--schema", "s.json", "a.json"], tmp_path)
    assert p.returncode == 3
    errors = lines(p)[0]["errors"]
    assert len(errors) == 10
    assert errors[9]["instance"] == "/items/9"


def test_assert_formats_flag(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    write(tmp_path, "a.json", {"items": [], "when": "yesterday"})
    assert run(["--schema", "s.json", "a.json"], tmp_path).returncode == 0
    p = run(["--schema", "s.json", "--assert-formats", "a.json"], tmp_path)
    assert p.returncode == 3
    e = lines(p)[0]["errors"][0]
    assert (e["instance"], e["schema"], e["keyword"]) == ("/when", "/properties/when/format",
                                                          "format")


def test_draft7_mode(tmp_path):
    write(tmp_path, "s.json", {"$ref": "#/definitions/a", "type": "string",
                               "definitions": {"a": {"minimum": 3}}})
    write(tmp_path, "a.json", 5)
    assert run(["--schema", "s.json", "--draft", "7", "a.json"], tmp_path).returncode == 0
    assert run(["--schema", "s.json", "--draft", "2020-12", "a.json"], tmp_path).returncode == 3


def one_error_line(p, schema_name):
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stdout == ""
    err = p.stderr.strip().splitlines()
    assert len(err) == 1, p.stderr
    assert err[0].startswith("ledgermq: validate: %s: " % schema_name), err[0]
    return err[0]


def test_broken_schemas_are_usage_errors(tmp_path):
    write(tmp_path, "a.json", {})
    write(tmp_path, "bad_type.json", {"type": "strin"})
    assert "not a valid schema" in one_error_line(
        run(["--schema", "bad_type.json", "a.json"], tmp_path), "bad_type.json")
    write(tmp_path, "bad_ref.json", {"$ref": "#/$defs/missing"})
    assert "unresolvable $ref" in one_error_line(
        run(["--schema", "bad_ref.json", "a.json"], tmp_path), "bad_ref.json")
    write(tmp_path, "cycle.json", {"$ref": "#"})
    assert "cycle" in one_error_line(run(["--schema", "cycle.json", "a.json"], tmp_path),
                                     "cycle.json")
    write(tmp_path, "regex.json", {"pattern": "(unclosed"})
    assert "bad pattern" in one_error_line(run(["--schema", "regex.json", "a.json"], tmp_path),
                                           "regex.json")
    write(tmp_path, "notjson.json", "{nope", raw=True)
    assert "not JSON" in one_error_line(run(["--schema", "notjson.json", "a.json"], tmp_path),
                                        "notjson.json")
    p = run(["--schema", "missing.json", "a.json"], tmp_path)
    assert p.returncode == 1 and "missing.json" in p.stderr


def test_usage_errors(tmp_path):
    write(tmp_path, "a.json", {})
    for args in (["a.json"], ["--schema"], ["--bogus", "--schema", "a.json"],
                 ["--schema", "a.json", "--draft", "4"]):
        p = run(args, tmp_path)
        assert p.returncode == 1, args
        assert p.stderr.startswith("ledgermq: validate: "), (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1


def test_unreadable_instance_is_1_even_with_invalid_ones(tmp_path):
    write(tmp_path, "s.json", SCHEMA)
    write(tmp_path, "b.json", {"items": ["x"]})
    p = run(["--schema", "s.json", "b.json", "nope.json"], tmp_path)
    assert p.returncode == 1
    assert lines(p)[0]["valid"] is False
    assert "nope.json" in p.stderr


def test_hostile_instance_and_regex_bounded(tmp_path):
    write(tmp_path, "s.json", {"items": {"$ref": "#"}})
    write(tmp_path, "deep.json", "[" * 2000 + "]" * 2000, raw=True)
    p = run(["--schema", "s.json", "deep.json"], tmp_path)
    assert p.returncode in (1, 3), p.stderr  # too deep for jansson (1) or for us (3)
    write(tmp_path, "deep2.json", "[" * 300 + "]" * 300, raw=True)
    p = run(["--schema", "s.json", "deep2.json"], tmp_path)
    assert p.returncode == 3
    assert "too deeply" in lines(p)[0]["errors"][-1]["message"]
    write(tmp_path, "re.json", {"pattern": "^(a+)+$"})
    write(tmp_path, "evil.json", "a" * 40 + "b")
    p = run(["--schema", "re.json", "evil.json"], tmp_path)
    assert p.returncode == 3
    assert "limit" in lines(p)[0]["errors"][-1]["message"]


def test_help(tmp_path):
    for flag in ("--help", "-h"):
        p = run([flag], tmp_path)
        assert p.returncode == 0
        assert p.stdout.startswith("usage: ledgermq validate --schema FILE")
        for f in ("--draft", "--assert-formats", "--jsonl"):
            assert f in p.stdout


EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                                        "models"))


def test_models_directory_validates_object_bodies_as_the_server_does(tmp_path):
    """--models DIR --type T: the directory loaded as serve loads it (Payment names Account by
    its type), each document an object's body whose _ members are dropped first."""
    good = {"_t": "com.example.Payment", "_prevlink": "0" * 64, "amount": 5, "currency": "EUR",
            "to": {"iban": "DE89370400440532013000"}}
    bad = {"_t": "com.example.Payment", "amount": 5, "currency": "EUR", "to": {"iban": "x"}}
    p = run(["--models", EXAMPLES, "--type", "com.example.Payment", "--jsonl"],
            tmp_path, stdin=json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert p.returncode == 3, p.stderr
    out = lines(p)
    assert out[0]["valid"] is True
    assert out[1]["valid"] is False and out[1]["errors"][0]["instance"] == "/to/iban"
    # The same body through --schema alone does not resolve the other model.
    p = run(["--schema", os.path.join(EXAMPLES, "payment.json")], tmp_path,
            stdin=json.dumps(good))
    assert p.returncode == 1 and p.stdout == ""


def test_models_errors_are_usage_errors(tmp_path):
    p = run(["--models", EXAMPLES, "--type", "com.example.Nope"], tmp_path, stdin="{}")
    assert p.returncode == 1 and "no such model" in p.stderr and "com.example.Payment" in p.stderr
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.json").write_text('{"$id": "a.A", "$ref": "a.Missing"}')
    p = run(["--models", str(tmp_path / "m"), "--type", "a.A"], tmp_path, stdin="{}")
    assert p.returncode == 1 and "a.json" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    for args in (["--models", EXAMPLES], ["--type", "a.A"],
                 ["--schema", "x.json", "--models", EXAMPLES, "--type", "a.A"]):
        p = run([*args], tmp_path, stdin="{}")
        assert p.returncode == 1 and "expected --schema FILE, or --models DIR --type T" in p.stderr
