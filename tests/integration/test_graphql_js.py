"""The GraphQL engine (src/graphql/) against graphql-js 17, the reference implementation.

tests/tools/graphql_tool builds the test schema in C (tests/tools/graphql_testschema.c), prints
its SDL, and answers JSON lines of requests with graphql_execute; tests/js/graphql_diff.js
builds the same schema from that SDL with the same data and resolvers and answers the same
requests with graphql-js's graphql(). For every request (graphql_cases.py: hand-written cases
for tokens, grammar, each validation rule, variables, execution and introspection, plus seeded
generated documents and broken variants of them) the two must give the same "data" and the same
errors: message, locations and path. Errors are compared as a set: graphql-js runs validation
rule by rule and executes depth first, the engine validates in one walk and executes breadth
first, so the order of errors differs by design.
"""

import json
import os
import subprocess

import pytest

import graphql_cases
import jsdeps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL_TIMEOUT_S = 60


def tool():
    path = os.environ.get("LMQ_GRAPHQL_TOOL", os.path.join(ROOT, "build", "tests", "graphql_tool"))
    if not os.path.exists(path):
        pytest.fail("graphql_tool is not built: %s" % path)
    return path


@pytest.fixture(scope="module")
def sdl_file(tmp_path_factory):
    r = subprocess.run([tool(), "--sdl"], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    path = tmp_path_factory.mktemp("graphql") / "schema.graphql"
    path.write_text(r.stdout)
    return str(path)


def run_c(lines):
    r = subprocess.run([tool()], input="".join(json.dumps(x) + "\n" for x in lines),
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def run_js(sdl_file, lines, *args, raw_input=None):
    r = subprocess.run([jsdeps.node(), os.path.join(ROOT, "tests", "js", "graphql_diff.js"),
                        sdl_file, *args],
                       input=raw_input if raw_input is not None else
                       "".join(json.dumps(x) + "\n" for x in lines),
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def normalise(response):
    """What must agree: whether there is "data", the data, and the set of errors."""
    errors = sorted((e.get("message"), json.dumps(e.get("locations")), json.dumps(e.get("path")))
                    for e in response.get("errors", []))
    return ("data" in response, response.get("data"), errors)


def test_sdl_prints_back_identically_through_graphql_js(sdl_file):
    with open(sdl_file) as f:
        sdl = f.read()
    assert "type Query {" in sdl and "input PaymentFilter {" in sdl
    query = run_js(sdl_file, [], "--introspect", "query", raw_input="")
    assert "__schema" in query[0]["query"]
    # graphql-js's own answer for the schema it built from our SDL, printed back: our SDL
    js_answer = run_js(sdl_file, query)[0]
    check = run_js(sdl_file, [], "--introspect", "check", raw_input=json.dumps(js_answer))[0]
    assert check["same"], check["printed"]


@pytest.mark.parametrize("options", ["full", "plain"])
def test_introspection_builds_a_client_schema_that_prints_our_sdl(sdl_file, options):
    """getIntrospectionQuery() with every option, and with none (a client's default)."""
    query = run_js(sdl_file, [], "--introspect", "query", options, raw_input="")
    ours = run_c(query)[0]
    assert "errors" not in ours, ours.get("errors")
    check = run_js(sdl_file, [], "--introspect", "check", raw_input=json.dumps(ours))[0]
    assert check["same"], check["printed"]


def _strip_intro_descriptions(data):
    """The introspection types' and the directives' own descriptions are graphql-js's prose,
    which the engine does not repeat (it leaves them null); everything else must be equal."""
    def blank(x):
        if isinstance(x, dict):
            return {k: (None if k == "description" else blank(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [blank(v) for v in x]
        return x
    s = data["__schema"]
    s["types"] = [blank(t) if t["name"].startswith("__") else t for t in s["types"]]
    s["directives"] = blank(s["directives"])
    return data


def test_introspection_answer_equals_graphql_js(sdl_file):
    query = run_js(sdl_file, [], "--introspect", "query", raw_input="")
    ours = run_c(query)[0]["data"]
    theirs = run_js(sdl_file, query)[0]["data"]
    assert _strip_intro_descriptions(ours) == _strip_intro_descriptions(theirs)


def test_every_document_gives_the_same_response_as_graphql_js(sdl_file):
    requests = graphql_cases.requests()
    assert len(requests) >= 500
    ours = run_c(requests)
    theirs = run_js(sdl_file, requests)
    assert len(ours) == len(theirs) == len(requests)
    differ = [(req, a, b) for req, a, b in zip(requests, ours, theirs)
              if normalise(a) != normalise(b)]
    kinds = {"valid": sum(1 for b in theirs if "data" in b and not b.get("errors")),
             "request errors": sum(1 for b in theirs if "data" not in b),
             "field errors": sum(1 for b in theirs if "data" in b and b.get("errors"))}
    # every kind of outcome is exercised
    assert all(n >= 30 for n in kinds.values()), kinds
    assert not differ, "%d of %d differ; first ones:\n%s" % (
        len(differ), len(requests),
        "\n".join("%s\n  C:  %s\n  JS: %s" % (json.dumps(q), json.dumps(a), json.dumps(b))
                  for q, a, b in differ[:10]))


def test_comparison_catches_a_changed_location_message_or_path():
    """The comparison can fail: a response with one column, one word or one path item changed
    does not compare equal."""
    base = {"errors": [{"message": "boom", "locations": [{"line": 1, "column": 3}],
                        "path": ["hero", 0, "mustFail"]}], "data": {"hero": None}}
    moved = json.loads(json.dumps(base))
    moved["errors"][0]["locations"][0]["column"] = 4
    worded = json.loads(json.dumps(base))
    worded["errors"][0]["message"] = "bang"
    pathed = json.loads(json.dumps(base))
    pathed["errors"][0]["path"][1] = 1
    nodata = {"errors": base["errors"]}
    for other in (moved, worded, pathed, nodata):
        assert normalise(other) != normalise(base)
    assert normalise(json.loads(json.dumps(base))) == normalise(base)
