"""Typed objects over GraphQL (docs/PROTOCOL.md "Objects over GraphQL"): the schema generated from
the models, r_T / rl_T / versions_T with filters, order and pages, x-link references resolved in
one store read a level, POST/GET /graphql with the REST API's auth and reader rule, the limits,
and graphql-js accepting the live endpoint's introspection. Objects are sent as signed envelopes
by the Python identity client against the real binary."""

import json
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request

import pytest

import dataclient as dc
import jsdeps
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ACCOUNT = {
    "$id": "com.example.Account",
    "type": "object",
    "properties": {
        "iban": {"type": "string", "x-index": True},
        "rank": {"type": "integer", "minimum": 0, "maximum": 1000},
        "address": {"type": "object", "properties": {
            "city": {"type": "string"}, "zip": {"type": "integer", "minimum": 0,
                                                "maximum": 99999}},
            "required": ["city"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "bad-name": {"type": "string"},
    },
    "required": ["iban"],
}
PAYMENT = {
    "$id": "com.example.Payment",
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "x-index": True},
        "currency": {"enum": ["EUR", "USD"], "x-index": True},
        "memo": {"type": "string", "x-index": True},
        "account": {"type": "string", "x-link": "com.example.Account", "x-index": True},
        "payee": {"$ref": "com.example.Account"},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}
PAYMENT_T = "com.example.Payment"


def start(start_broker, tmp_path, extra_ini="", models=None):
    """A broker with this file's models (or models) and extra_ini's [data] lines."""
    if models is None:
        models = {"account.json": ACCOUNT, "payment.json": PAYMENT}
    return dc.start(start_broker, tmp_path, models, extra_ini)


def sdl(b):
    status, raw, headers = lc.http_get(b.http_addr, "/graphql/schema.graphql")
    assert status == 200 and headers["Content-Type"].startswith("text/plain"), raw
    return raw.decode()


def type_block(text, head):
    """The lines of one SDL definition ("type X", "input X", "enum X")."""
    start = text.index(head + " {")
    return text[start:text.index("\n}", start)]


def test_the_example_models_map_to_the_documented_schema(start_broker, tmp_path):
    models = {}
    for name in os.listdir(os.path.join(ROOT, "examples", "models")):
        with open(os.path.join(ROOT, "examples", "models", name)) as f:
            models[name] = json.load(f)
    b = start(start_broker, tmp_path, models=models)
    text = sdl(b)  # public: no token, as /openapi.json
    pay = type_block(text, "type com_example_Payment")
    for line in ("amount: Float!", "currency: com_example_Payment_currency!",
                 "to: com_example_Account_Value", "memo: String", "_permalink: ID!",
                 "_link: ID!", "_prevlink: ID\n", "_author: ID!", "_owner: ID!", "_time: String!",
                 "_ledgerIndex: Float!", "_deleted: Boolean!"):
        assert line in pay, (line, pay)
    assert "GraphQL Int is 32-bit" in pay  # the unbounded integer says why it is a Float
    assert "iban: String!" in type_block(text, "type com_example_Account_Value")
    assert "EUR\n  USD\n  GBP\n  CHF" in type_block(text, "enum com_example_Payment_currency")
    onb = type_block(text, "type com_example_Onboarding")
    assert "status: com_example_Onboarding_status!" in onb and "born: String" in onb
    ops = type_block(text, "input com_example_Onboarding_country_Ops")
    for op in ("EQ: String", "NEQ: String", "IN: [String!]", "NOT_IN: [String!]", "LT: String",
               "LTE: String", "GT: String", "GTE: String", "STARTS_WITH: String",
               "CONTAINS: String", "NULL: Boolean"):
        assert op in ops, (op, ops)
    filt = type_block(text, "input com_example_Payment_Filter")
    assert "amount: com_example_Payment_amount_Ops" in filt and "memo" not in filt
    assert "_created\n  amount\n  currency" in type_block(text,
                                                          "enum com_example_Payment_OrderField")
    by = type_block(text, "input com_example_Payment_OrderBy")
    assert "field: com_example_Payment_OrderField!" in by and "direction: Direction" in by
    assert "r_com_example_Payment(\n    _permalink: ID\n    _link: ID\n" in text
    assert "checkpoint: String\n  ): com_example_Payment\n" in text
    assert "): com_example_Payment_Connection!" in text
    assert "versions_com_example_Payment(\n    _permalink: ID!" in text
    assert "edges: [com_example_Payment_Edge!]!" in text and "pageInfo: PageInfo!" in text
    assert "node: com_example_Payment!" in text and "cursor: String!" in text
    assert "endCursor: String\n  hasNextPage: Boolean!" in type_block(text, "type PageInfo")
    status, raw, _ = lc.http_get(b.http_addr, "/openapi.json")
    paths = json.loads(raw)["paths"]
    assert {"post", "get"} <= set(paths["/graphql"]) and "/graphql/schema.graphql" in paths


def test_properties_map_to_their_graphql_types(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    text = sdl(b)
    acc = type_block(text, "type com_example_Account")
    assert "iban: String!" in acc and "rank: Int\n" in acc  # bounded to 32 bits: Int
    assert "address: com_example_Account_address" in acc and "tags: [String]" in acc
    assert "extra: JSON" in acc and "bad" not in acc  # not a GraphQL name: left out
    assert "city: String!\n  zip: Int" in type_block(text, "type com_example_Account_address")
    pay = type_block(text, "type com_example_Payment")
    # An x-link is the target's type (nullable: the caller may not read it); a $ref embeds.
    assert "account: com_example_Account\n" in pay and "payee: com_example_Account_Value" in pay
    assert "account: com_example_Payment_account_Ops" in type_block(
        text, "input com_example_Payment_Filter")
    assert "EQ: ID" in type_block(text, "input com_example_Payment_account_Ops")


@pytest.fixture
def payments(start_broker, tmp_path):
    """Alice sends six payments to Bob and one account; Carol sends one payment to Dave."""
    b = start(start_broker, tmp_path)
    alice, bob, carol, dave = lc.Identity(), lc.Identity(), lc.Identity(), lc.Identity()
    sa, sc = dc.session(b, alice), dc.session(b, carol)
    acct = dc.send(sa, bob.id, {"_t": "com.example.Account", "iban": "DE01", "rank": 7,
                                "address": {"city": "Bonn", "zip": 53111}, "tags": ["a", "b"],
                                "extra": 5})
    rows = []
    for i, (amount, cur, memo) in enumerate([(30, "EUR", "rent june"), (10, "USD", "coffee"),
                                             (50, "EUR", "rent july"), (20, "USD", None),
                                             (40, "EUR", "books"), (60, "USD", "rent aug")]):
        body = {"_t": PAYMENT_T, "amount": amount, "currency": cur, "account": acct}
        if memo is not None:
            body["memo"] = memo
        rows.append(dict(body, _permalink=dc.send(sa, bob.id, body)))
    hidden = dc.send(sc, dave.id, {"_t": PAYMENT_T, "amount": 35, "currency": "EUR"})
    b.t = lc.login(b.http_addr, bob)
    b.t_carol = lc.login(b.http_addr, carol)
    b.rows, b.acct, b.hidden, b.sa = rows, acct, hidden, sa
    yield b
    sa.close()
    sc.close()


def page_links(b, token, args):
    data = dc.gql(b, token, "{ rl_com_example_Payment%s { edges { node { _permalink } } "
                  "pageInfo { hasNextPage } } }" % ("(%s)" % args if args else ""))
    return [e["node"]["_permalink"] for e in data["rl_com_example_Payment"]["edges"]]


FILTERS = [
    ("{amount: {EQ: 30}}", lambda r: r["amount"] == 30),
    ("{amount: {NEQ: 30}}", lambda r: r["amount"] != 30),
    ("{amount: {IN: [10, 60, 99]}}", lambda r: r["amount"] in (10, 60)),
    ("{amount: {NOT_IN: [10, 60]}}", lambda r: r["amount"] not in (10, 60)),
    ("{amount: {LT: 30}}", lambda r: r["amount"] < 30),
    ("{amount: {LTE: 30}}", lambda r: r["amount"] <= 30),
    ("{amount: {GT: 30}}", lambda r: r["amount"] > 30),
    ("{amount: {GTE: 30}}", lambda r: r["amount"] >= 30),
    ("{memo: {STARTS_WITH: \"rent\"}}", lambda r: r.get("memo", "").startswith("rent")),
    ("{memo: {CONTAINS: \"o\"}}", lambda r: "o" in r.get("memo", "")),
    ("{memo: {NULL: true}}", lambda r: "memo" not in r),
    ("{memo: {NULL: false}}", lambda r: "memo" in r),
    ("{currency: {EQ: USD}, amount: {GT: 15}}", lambda r: r["currency"] == "USD" and
     r["amount"] > 15),
    ("{currency: {IN: [EUR]}, memo: {STARTS_WITH: \"rent\", CONTAINS: \"j\"}}",
     lambda r: r["currency"] == "EUR" and r.get("memo", "").startswith("rent") and
     "j" in r["memo"]),
]


def test_rl_applies_every_filter_operator(payments):
    b = payments
    for f, keep in FILTERS:
        want = [r["_permalink"] for r in b.rows if keep(r)]
        got = page_links(b, b.t, "filter: %s" % f)
        assert got == want, (f, got, want)
        assert want or f.startswith("{memo: {NULL"), f  # every filter selects something


def test_r_and_rl_answer_what_the_rest_api_answers(payments):
    b = payments
    fields = "amount currency memo _permalink _link _prevlink _author _owner _time _ledgerIndex"
    data = dc.gql(b, b.t, "{ rl_com_example_Payment(filter: {currency: {EQ: EUR}}) "
                  "{ edges { node { %s } } } }" % fields)
    nodes = [e["node"] for e in data["rl_com_example_Payment"]["edges"]]
    results = dc.rest(b, b.t, "/api/v1/%s?currency=EUR" % PAYMENT_T)["results"]
    assert len(nodes) == 3 and len(results) == 3
    for node, res in zip(nodes, results):
        assert node == {k: res.get(k) for k in fields.split()}, (node, res)
    one = dc.gql(b, b.t, "query($p: ID) { r_com_example_Payment(_permalink: $p) { %s _deleted } }"
                 % fields, {"p": nodes[0]["_permalink"]})["r_com_example_Payment"]
    assert one == dict(nodes[0], _deleted=False)
    by_link = dc.gql(b, b.t, '{ r_com_example_Payment(_link: "%s") { amount } }'
                     % nodes[0]["_link"])
    assert by_link["r_com_example_Payment"] == {"amount": 30}
    # Unknown, another model's and both-or-neither: null (the last with an error).
    assert dc.gql(b, b.t, '{ r_com_example_Payment(_permalink: "%s") { amount } }'
                  % ("0" * 64))["r_com_example_Payment"] is None
    assert dc.gql(b, b.t, '{ r_com_example_Payment(_permalink: "%s") { amount } }'
                  % b.acct)["r_com_example_Payment"] is None
    status, body, _ = dc.post(b, "{ r_com_example_Payment { amount } }", b.t)
    assert status == 200 and body["data"]["r_com_example_Payment"] is None
    assert body["errors"][0]["path"] == ["r_com_example_Payment"]
    # Nested objects, lists, JSON.
    acc = dc.gql(b, b.t, '{ r_com_example_Account(_permalink: "%s") { iban rank address '
                 '{ city zip } tags extra } }' % b.acct)["r_com_example_Account"]
    assert acc == {"iban": "DE01", "rank": 7, "address": {"city": "Bonn", "zip": 53111},
                   "tags": ["a", "b"], "extra": 5}


def test_order_both_ways_and_pages_visit_every_resource_once(payments):
    b = payments
    by_amount = sorted(b.rows, key=lambda r: r["amount"])
    for direction, want in (("ASC", by_amount), ("DESC", by_amount[::-1])):
        got = page_links(b, b.t, "orderBy: {field: amount, direction: %s}" % direction)
        assert got == [r["_permalink"] for r in want], direction
    assert page_links(b, b.t, "orderBy: {field: _created, direction: DESC}") == [
        r["_permalink"] for r in b.rows[::-1]]
    assert page_links(b, b.t, "") == [r["_permalink"] for r in b.rows]  # default: creation
    for order, want in (("", b.rows), (", orderBy: {field: amount, direction: DESC}",
                                        by_amount[::-1]),
                        (", orderBy: {field: memo}", None)):
        seen, after = [], None
        for _ in range(10):
            data = dc.gql(b, b.t, "query($a: String) { rl_com_example_Payment(limit: 4, after: $a"
                          "%s) { edges { node { _permalink } cursor } pageInfo { endCursor "
                          "hasNextPage } } }" % order, {"a": after})["rl_com_example_Payment"]
            edges = data["edges"]
            seen += [e["node"]["_permalink"] for e in edges]
            assert data["pageInfo"]["endCursor"] == (edges[-1]["cursor"] if edges else None)
            if not data["pageInfo"]["hasNextPage"]:
                break
            after = data["pageInfo"]["endCursor"]
        if want is not None:
            assert seen == [r["_permalink"] for r in want], order
        assert sorted(seen) == sorted(r["_permalink"] for r in b.rows), order  # each once
    status, body, _ = dc.post(b, '{ rl_com_example_Payment(after: "[\\"amount\\",1,2]") '
                              '{ edges { cursor } } }', b.t)
    assert "not a cursor of this order" in body["errors"][0]["message"]
    for bad in (0, 101):
        status, body, _ = dc.post(b, "{ rl_com_example_Payment(limit: %d) { edges { cursor } } }"
                                  % bad, b.t)
        assert body["errors"][0]["message"] == "limit: 1..100"


def test_versions_list_the_history_in_pages(payments):
    b = payments
    first = b.rows[0]["_permalink"]
    second = dc.send(b.sa, lc.Identity().id, {"_t": PAYMENT_T, "amount": 31, "currency": "EUR",
                                              "_prevlink": first})
    third = dc.send(b.sa, lc.Identity().id, {"_t": PAYMENT_T, "amount": 32, "currency": "EUR",
                                             "_prevlink": second})
    q = ("query($p: ID!, $a: String) { versions_com_example_Payment(_permalink: $p, limit: 2, "
         "after: $a) { edges { node { amount _link _prevlink } } pageInfo { endCursor "
         "hasNextPage } } }")
    page = dc.gql(b, b.t, q, {"p": first})["versions_com_example_Payment"]
    assert [e["node"]["amount"] for e in page["edges"]] == [30, 31]
    assert page["edges"][1]["node"]["_prevlink"] == first and page["pageInfo"]["hasNextPage"]
    rest_page = dc.gql(b, b.t, q, {"p": first, "a": page["pageInfo"]["endCursor"]})
    rest_page = rest_page["versions_com_example_Payment"]
    assert [e["node"]["_link"] for e in rest_page["edges"]] == [third]
    assert not rest_page["pageInfo"]["hasNextPage"]
    latest = dc.gql(b, b.t, '{ r_com_example_Payment(_permalink: "%s") { amount _link } }' % first)
    assert latest["r_com_example_Payment"] == {"amount": 32, "_link": third}
    # Carol may not read it: no versions.
    page = dc.gql(b, b.t_carol, q, {"p": first})["versions_com_example_Payment"]
    assert page["edges"] == [] and not page["pageInfo"]["hasNextPage"]


def test_the_reader_rule_leaves_out_what_the_caller_may_not_read(payments):
    b = payments
    assert page_links(b, b.t_carol, "") == [b.hidden]
    assert dc.gql(b, b.t_carol, '{ r_com_example_Payment(_permalink: "%s") { amount } }'
                  % b.rows[0]["_permalink"])["r_com_example_Payment"] is None
    assert b.hidden not in page_links(b, b.t, "")
    # Carol's payment names Alice's account: Carol may not read the account, so it is null.
    sc = dc.session(b, lc.Identity())
    mallory_tok = lc.login(b.http_addr, sc.ident)
    dc.send(sc, lc.Identity().id, {"_t": PAYMENT_T, "amount": 5, "currency": "EUR",
                                   "account": b.acct})
    data = dc.gql(b, mallory_tok, "{ rl_com_example_Payment { edges { node { amount account "
                  "{ iban } } } } }")
    assert data["rl_com_example_Payment"]["edges"] == [{"node": {"amount": 5, "account": None}}]
    sc.close()


def test_no_token_is_401_and_a_bad_token_too(payments):
    b = payments
    status, body, headers = dc.post(b, "{ _types }")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert body["errors"][0]["message"]
    status, body, _ = dc.post(b, "{ _types }", "nope")
    assert status == 401
    # GET with the query in the query string, the same rule.
    url = "/graphql?" + urllib.parse.urlencode({"query": "{ _types }"})
    status, raw, _ = lc.http_get(b.http_addr, url)
    assert status == 401
    status, raw, _ = lc.http_get(b.http_addr, url, b.t)
    assert status == 200 and json.loads(raw) == {
        "data": {"_types": ["com.example.Account", "com.example.Payment"]}}


def test_readers_all_and_graphql_auth_false_on_loopback(start_broker, tmp_path):
    auditor = lc.Identity()
    b = start(start_broker, tmp_path, "readers_all = %s\ngraphql_auth = false\n" % auditor.id)
    alice = lc.Identity()
    sa = dc.session(b, alice)
    link = dc.send(sa, lc.Identity().id, {"_t": PAYMENT_T, "amount": 3, "currency": "EUR"})
    q = "{ rl_com_example_Payment { edges { node { _permalink } } } }"
    # No token on a loopback listener from a loopback peer: reads everything.
    status, body, _ = dc.post(b, q)
    assert status == 200 and body["data"]["rl_com_example_Payment"]["edges"] == [
        {"node": {"_permalink": link}}]
    # A proxy header means the caller may be anyone: the token is needed again.
    status, body, _ = dc.post(b, q, headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 401
    # A token given is used: a stranger sees nothing, a readers_all identity everything.
    assert dc.gql(b, lc.login(b.http_addr, lc.Identity()), q)["rl_com_example_Payment"][
        "edges"] == []
    assert len(dc.gql(b, lc.login(b.http_addr, auditor), q)["rl_com_example_Payment"]["edges"]) == 1
    sa.close()


def test_requests_that_are_not_graphql_are_400_with_errors(payments):
    b = payments
    status, body, _ = dc.post(b, None, b.t, raw=b"{not json")
    assert status == 400 and body["errors"][0]["message"]
    status, body, _ = dc.post(b, None, b.t, raw=b'{"variables": {}}')
    assert status == 400 and "no query" in body["errors"][0]["message"]
    status, body, _ = dc.post(b, None, b.t, raw=b'{"query": "{ _types }", "variables": 3}')
    assert status == 400
    status, body, _ = dc.post(b, "{ _types }", b.t, ctype="text/plain")
    assert status == 415
    # A syntax error and a validation error: errors with locations, no data.
    status, body, _ = dc.post(b, "{\n  rl_com_example_Payment { edges { nope } } }", b.t)
    assert status == 200 and "data" not in body
    assert body["errors"][0]["locations"] == [{"line": 2, "column": 36}], body
    status, body, _ = dc.post(b, "{ _types", b.t)
    assert "data" not in body and body["errors"][0]["locations"][0]["line"] == 1


def test_limits_are_refused_as_graphql_errors(start_broker, tmp_path):
    b = start(start_broker, tmp_path, "graphql_auth = false\ngraphql_max_depth = 3\n"
              "graphql_max_fields = 6\n")
    status, body, _ = dc.post(b, "{ rl_com_example_Payment { edges { node { account { iban } } } }"
                              " }")
    assert status == 200 and "data" not in body and "deeper than the limit of 3" in body["errors"][0]["message"]
    status, body, _ = dc.post(b, "{ a: _types b: _types c: _types d: _types e: _types f: _types "
                              "g: _types }")
    assert "data" not in body and "fields" in body["errors"][0]["message"], body
    status, body, _ = dc.post(b, "{ rl_com_example_Payment { edges { cursor } } }")
    assert status == 200 and body == {"data": {"rl_com_example_Payment": {"edges": []}}}


@pytest.mark.parametrize("key,value", [("graphql_max_depth", "0"), ("graphql_max_ms", "x"),
                                       ("graphql_max_fields", "100001"),
                                       ("graphql_auth", "maybe")])
def test_bad_graphql_keys_stop_the_start(start_broker, tmp_path, key, value):
    ini = tmp_path / "bad.ini"
    ini.write_text("[data]\n%s = %s\n" % (key, value))
    p = subprocess.run([os.environ.get("LEDGERMQ_BIN", os.path.join(ROOT, "build", "ledgermq")),
                        "serve", "--config", str(ini)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and ("[data] %s" % key) in p.stderr, p.stderr


def test_references_of_a_page_cost_one_store_read(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    accounts = [dc.send(sa, bob.id, {"_t": "com.example.Account", "iban": "DE%02d" % i})
                for i in range(25)]
    for i in range(50):
        dc.send(sa, bob.id, {"_t": PAYMENT_T, "amount": i + 1, "currency": "EUR",
                             "account": accounts[i % 25]})
    tok = lc.login(b.http_addr, bob)
    before = b.metric("ledgermq_graphql_store_reads_total")
    data = dc.gql(b, tok, "{ rl_com_example_Payment(limit: 50) { edges { node { amount account "
                  "{ iban _permalink } } } } }")
    edges = data["rl_com_example_Payment"]["edges"]
    assert len(edges) == 50
    for i, e in enumerate(edges):
        assert e["node"]["account"] == {"iban": "DE%02d" % (i % 25),
                                        "_permalink": accounts[i % 25]}
    # One read for the page, one for all 50 references (25 distinct), not 50.
    assert b.metric("ledgermq_graphql_store_reads_total") - before == 2
    sa.close()


GRAPHQL_JS = r"""
const { buildClientSchema, getIntrospectionQuery, printSchema, buildSchema, graphql } =
    require('graphql');
const [base, token] = process.argv.slice(2);
(async () => {
  const post = async (query) => (await fetch(base + '/graphql', {method: 'POST',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({query})})).json();
  const rest = async (path) => (await fetch(base + path,
      {headers: {Authorization: 'Bearer ' + token}})).json();
  const intro = await post(getIntrospectionQuery());
  if (intro.errors) throw new Error(JSON.stringify(intro.errors));
  const client = buildClientSchema(intro.data);
  const ours = buildSchema(await (await fetch(base + '/graphql/schema.graphql')).text());
  // graphql-js executes the same documents on a schema built from our SDL, with resolvers that
  // read our REST API: the answers must be ours.
  ours.getQueryType().getFields().rl_com_example_Payment.resolve = async (_, args) => {
    const page = await rest('/api/v1/com.example.Payment?limit=' + args.limit);
    return {edges: page.results.map((node) => ({node})),
            pageInfo: {hasNextPage: page.next !== null}};
  };
  ours.getQueryType().getFields().r_com_example_Payment.resolve = async (_, args) => {
    const r = await rest('/api/v1/com.example.Payment/' + args._permalink);
    return r.error ? null : r;
  };
  ours.getType('com_example_Payment').getFields().account.resolve = async (p) =>
      p.account ? rest('/api/v1/com.example.Account/' + p.account) : null;
  ours.getType('com_example_Payment').getFields()._deleted.resolve = (p) => !!p._deleted;
  const docs = [
    '{ rl_com_example_Payment(limit: 5) { edges { node { amount currency _permalink _link ' +
        '_prevlink _author _owner _time _ledgerIndex _deleted account { iban _owner } } } ' +
        'pageInfo { hasNextPage } } }',
    '{ rl_com_example_Payment(limit: 1) { pageInfo { hasNextPage } edges { node { ' +
        '...F } } } } fragment F on com_example_Payment { a: amount b: account { iban } }',
    '{ rl_com_example_Payment { edges { node { nope } } } }',
  ];
  const out = [];
  for (const q of docs) {
    out.push({live: await post(q), js: JSON.parse(JSON.stringify(
        await graphql({schema: ours, source: q})))});
  }
  console.log(JSON.stringify({same: printSchema(client) === printSchema(ours), out}));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_graphql_js_accepts_the_live_introspection_and_agrees_with_rest(start_broker,
                                                                        tmp_path):
    b = start(start_broker, tmp_path, "graphql_auth = false\n")
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    acct = dc.send(sa, bob.id, {"_t": "com.example.Account", "iban": "FR76"})
    dc.send(sa, bob.id, {"_t": PAYMENT_T, "amount": 9, "currency": "USD", "account": acct})
    dc.send(sa, bob.id, {"_t": PAYMENT_T, "amount": 8, "currency": "EUR"})
    script = tmp_path / "gql.js"
    script.write_text(GRAPHQL_JS)
    env = dict(os.environ, NODE_PATH=jsdeps.node_modules())
    p = subprocess.run([jsdeps.node(), str(script), "http://%s" % b.http_addr,
                        lc.login(b.http_addr, bob)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["same"], "buildClientSchema(introspection) prints differently from our SDL"
    for case in out["out"]:
        assert case["live"] == case["js"], case
    first = out["out"][0]["live"]["data"]["rl_com_example_Payment"]["edges"]
    assert first[0]["node"]["account"] == {"iban": "FR76", "_owner": alice.id}
    assert first[1]["node"]["account"] is None and len(first) == 2
    assert out["out"][2]["live"]["errors"][0]["locations"]  # a validation error, the same
    sa.close()


def test_the_readme_graphql_line_reads_back_the_object_it_sends(start_broker, tmp_path):
    """The README's typed-objects block: the object it sends, read back by its curl POST
    /graphql line with the example models."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = readme[readme.index("Typed objects: `make run`"):]
    block = block[:block.index("## Command line")]
    body = json.loads(re.findall(r"'(\{\"_t\".*?\})'", block)[0])
    request = json.loads(re.search(r"/graphql \\\n\s+-d '(\{.*\})'", block).group(1))
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0", "--models",
                                       os.path.join(ROOT, "examples", "models")])
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    dc.send(sa, bob.id, body)
    data = dc.gql(b, lc.login(b.http_addr, bob), request["query"])
    assert data == {"rl_com_example_Payment": {"edges": [{"node": {
        "amount": body["amount"], "to": body["to"], "_author": alice.id}}]}}
    sa.close()


def test_the_schema_follows_the_models_sighup_and_model_envelopes(start_broker, tmp_path):
    admin = lc.Identity()
    b = start(start_broker, tmp_path, "admins = %s\n" % admin.id, models={"account.json": ACCOUNT})
    assert "rl_com_example_Payment" not in sdl(b)
    (tmp_path / "models" / "payment.json").write_text(json.dumps(PAYMENT))
    os.kill(b.proc.pid, signal.SIGHUP)
    b.wait_event("data_models_reloaded", pred=lambda e: e.get("models") == 2)
    assert "rl_com_example_Payment(" in sdl(b)
    sadm = dc.session(b, admin)
    note = {"$id": "com.example.Note", "type": "object",
            "properties": {"text": {"type": "string", "x-index": True}}}
    # A model whose mapping would clash (its "Edge" object is type com_example_Note_Edge, as
    # its edges are) is refused: it would take /graphql down for every model.
    clash = {"$id": "com.example.Note", "type": "object", "properties": {
        "Edge": {"type": "object", "properties": {"z": {"type": "string"}}}}}
    env = sadm.ident.envelope(admin.id, {"_t": "ledgermq.Model", "schema": clash}, type_="object")
    sadm.send(env)
    leaf, rej = sadm.messages.get(timeout=lc.TIMEOUT_S)
    assert leaf == "reject" and rej["detail"] == "bad_model", rej
    assert "uniquely named types" in rej["error"], rej
    model = dc.send(sadm, admin.id, {"_t": "ledgermq.Model", "schema": note})
    b.wait_event("data_model_put", pred=lambda e: e["model"] == "com.example.Note")
    assert "text: com_example_Note_text_Ops" in sdl(b)
    link = dc.send(sadm, admin.id, {"_t": "com.example.Note", "text": "hi"})
    data = dc.gql(b, lc.login(b.http_addr, admin), '{ rl_com_example_Note(filter: {text: '
                  '{EQ: "hi"}}) { edges { node { _permalink } } } }')
    assert data["rl_com_example_Note"]["edges"] == [{"node": {"_permalink": link}}]
    dc.send(sadm, admin.id, {"_t": "ledgermq.Model", "_prevlink": model, "_deleted": True})
    b.wait_event("data_model_removed")
    assert "com_example_Note" not in sdl(b)
    sadm.close()
