"""Reading as of a ledger checkpoint (docs/PROTOCOL.md "Reading as of a checkpoint"): rl_T and r_T
with checkpoint: and GET /api/v1/T?checkpoint= answer the state when the ledger had N entries
(creates, updates, tombstones, the reader rule and x-link references as they were then), cursors
stay bound to their checkpoint, and a forged, foreign, future or malformed checkpoint is refused
with a reason. Objects are sent as signed envelopes by the Python identity client against the
real binary."""

import base64
import hashlib
import json
import urllib.parse

import pytest

import dataclient as dc
import ledgerclient as lc
import test_graphql_data as g

pytestmark = pytest.mark.ledgermq_only

T = g.PAYMENT_T
RL = "rl_com_example_Payment"


def checkpoint(b):
    """The latest checkpoint: (note, size)."""
    status, cp = lc.http_json(b.http_addr, "/ledger/checkpoint")
    assert status == 200, cp
    return cp["checkpoint"], cp["size"]


def amounts(b, token, args, fields="amount"):
    """The amounts of an rl page read with args, and the response's extensions."""
    call = "%s(%s)" % (RL, args) if args else RL
    status, body, _ = dc.post(b, "{ %s { edges { node { %s } cursor } "
                              "pageInfo { endCursor hasNextPage } } }" % (call, fields), token)
    assert status == 200 and "errors" not in body, body
    return [e["node"] for e in body["data"][RL]["edges"]], body.get("extensions"), \
        body["data"][RL]["pageInfo"]


def gql_error(b, token, query, variables=None):
    status, body, _ = dc.post(b, query, token, variables)
    assert status == 200 and body.get("errors"), body
    return body["errors"][0]["message"]


def sign_note(body_text, name, ident):
    """A C2SP signed note of body_text by ident's key under key name."""
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + ident.pub).digest()[:4]
    sig = ident.key.sign(body_text.encode())
    return body_text + "\n\u2014 %s %s\n" % (name, base64.b64encode(key_id + sig).decode())


@pytest.fixture
def history(start_broker, tmp_path):
    """Alice's history, a checkpoint after each step:
    cps[0] account A (iban DE01) and p1 (amount 10) to Bob
    cps[1] p1 updated to 20
    cps[2] p2 (30) to Carol, linking A
    cps[3] A's iban becomes DE99; p1 tombstoned
    cps[4] p3 (40) to Bob
    """
    b = g.start(start_broker, tmp_path)
    alice, bob, carol = lc.Identity(), lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    cps = []
    acct = dc.send(sa, bob.id, {"_t": "com.example.Account", "iban": "DE01"})
    p1 = dc.send(sa, bob.id, {"_t": T, "amount": 10, "currency": "EUR", "account": acct})
    cps.append(checkpoint(b))
    p1b = dc.send(sa, bob.id, {"_t": T, "amount": 20, "currency": "EUR", "account": acct,
                               "_prevlink": p1})
    cps.append(checkpoint(b))
    p2 = dc.send(sa, carol.id, {"_t": T, "amount": 30, "currency": "USD", "account": acct})
    cps.append(checkpoint(b))
    dc.send(sa, bob.id, {"_t": "com.example.Account", "iban": "DE99", "_prevlink": acct})
    dc.send(sa, bob.id, {"_t": T, "_prevlink": p1b, "_deleted": True})
    cps.append(checkpoint(b))
    p3 = dc.send(sa, bob.id, {"_t": T, "amount": 40, "currency": "EUR"})
    cps.append(checkpoint(b))
    sa.close()
    return {"b": b, "cps": cps, "p1": p1, "p2": p2, "p3": p3, "alice": alice, "bob": bob,
            "carol": carol, "tok": lc.login(b.http_addr, alice),
            "tok_bob": lc.login(b.http_addr, bob), "tok_carol": lc.login(b.http_addr, carol)}


def test_rl_as_of_each_checkpoint_answers_the_resources_of_then(history):
    b, cps, tok = history["b"], history["cps"], history["tok"]
    expect = [[10], [20], [20, 30], [30], [30, 40]]
    for (note, size), want in zip(cps, expect):
        nodes, ext, _ = amounts(b, tok, "checkpoint: %s" % json.dumps(note))
        assert [n["amount"] for n in nodes] == want, (size, nodes)
        assert ext == {"asOf": [size]}
        # The tree size in decimal reads the same.
        nodes, ext, _ = amounts(b, tok, 'checkpoint: "%d"' % size)
        assert [n["amount"] for n in nodes] == want and ext == {"asOf": [size]}
    # Omitted: the latest, and no extensions.
    nodes, ext, _ = amounts(b, tok, "")
    assert [n["amount"] for n in nodes] == [30, 40] and ext is None
    # Size 0: nothing existed.
    assert amounts(b, tok, 'checkpoint: "0"')[0] == []
    # Filters and order on the versions of then: p1 was 20 at cps[2].
    note2 = json.dumps(cps[2][0])
    nodes, _, _ = amounts(b, tok, "filter: {amount: {GTE: 15, LT: 25}}, checkpoint: %s" % note2)
    assert [n["amount"] for n in nodes] == [20]
    nodes, _, _ = amounts(b, tok, "filter: {amount: {GTE: 15, LT: 25}}")
    assert nodes == []
    nodes, _, _ = amounts(b, tok, "orderBy: {field: amount, direction: DESC}, checkpoint: %s"
                          % note2)
    assert [n["amount"] for n in nodes] == [30, 20]
    # _ledgerIndex is the version's of then, below the size.
    nodes, _, _ = amounts(b, tok, "checkpoint: %s" % note2, "amount _ledgerIndex _link")
    assert all(n["_ledgerIndex"] < cps[2][1] for n in nodes)


def test_references_and_r_read_as_of_the_same_checkpoint(history):
    b, cps, tok = history["b"], history["cps"], history["tok"]
    nodes, _, _ = amounts(b, tok, 'checkpoint: "%d"' % cps[2][1], "amount account { iban }")
    assert [n["account"]["iban"] for n in nodes] == ["DE01", "DE01"]
    nodes, _, _ = amounts(b, tok, "", "amount account { iban }")
    assert nodes[0]["account"]["iban"] == "DE99"
    q = ('query($p: ID, $c: String) { r_com_example_Payment(_permalink: $p, checkpoint: $c) '
         '{ _deleted _link } }')
    qa = ('query($p: ID, $c: String) { r_com_example_Payment(_permalink: $p, checkpoint: $c) '
          '{ amount } }')
    p1 = history["p1"]
    assert dc.gql(b, tok, qa, {"p": p1, "c": cps[0][0]})["r_com_example_Payment"] == {
        "amount": 10}
    assert dc.gql(b, tok, qa, {"p": p1, "c": str(cps[1][1])})["r_com_example_Payment"] == {
        "amount": 20}
    gone = dc.gql(b, tok, q, {"p": p1, "c": cps[3][0]})["r_com_example_Payment"]
    assert gone["_deleted"] is True
    assert dc.gql(b, tok, q, {"p": p1, "c": cps[2][0]})["r_com_example_Payment"][
        "_deleted"] is False
    assert dc.gql(b, tok, q, {"p": p1, "c": "0"})["r_com_example_Payment"] is None
    # p2 did not exist at cps[1].
    data = dc.gql(b, tok, q, {"p": history["p2"], "c": cps[1][0]})
    assert data["r_com_example_Payment"] is None
    # A version by _link only below the size.
    ql = ('query($l: ID, $c: String) { r_com_example_Payment(_link: $l, checkpoint: $c) '
          '{ amount } }')
    assert dc.gql(b, tok, ql, {"l": history["p3"], "c": cps[3][0]})[
        "r_com_example_Payment"] is None
    assert dc.gql(b, tok, ql, {"l": history["p3"], "c": cps[4][0]})[
        "r_com_example_Payment"] == {"amount": 40}


def test_the_reader_rule_is_the_one_of_then(history):
    b, cps = history["b"], history["cps"]
    # Carol received p2 at cps[2]: nothing before.
    assert amounts(b, history["tok_carol"], 'checkpoint: "%d"' % cps[1][1])[0] == []
    nodes = amounts(b, history["tok_carol"], 'checkpoint: "%d"' % cps[2][1])[0]
    assert [n["amount"] for n in nodes] == [30]
    # Bob: p1 while it lived, p3 later; never p2.
    got = [[n["amount"] for n in amounts(b, history["tok_bob"], 'checkpoint: "%d"' % s)[0]]
           for _, s in cps]
    assert got == [[10], [20], [20], [], [40]]


def test_cursors_continue_under_their_checkpoint_only(history):
    b, cps, tok = history["b"], history["cps"], history["tok"]
    note = json.dumps(cps[2][0])
    first, _, info = amounts(b, tok, "limit: 1, checkpoint: %s" % note)
    assert [n["amount"] for n in first] == [20] and info["hasNextPage"]
    after = json.dumps(info["endCursor"])
    rest, _, info2 = amounts(b, tok, "limit: 5, after: %s, checkpoint: %s" % (after, note))
    assert [n["amount"] for n in rest] == [30] and not info2["hasNextPage"]
    # The same cursor under the decimal size of the same checkpoint continues too.
    rest, _, _ = amounts(b, tok, 'limit: 5, after: %s, checkpoint: "%d"' % (after, cps[2][1]))
    assert [n["amount"] for n in rest] == [30]
    for other in ('checkpoint: "%d"' % cps[3][1], ""):
        msg = gql_error(b, tok, "{ %s(limit: 5, after: %s, %s) { edges { cursor } } }"
                        % (RL, after, other) if other else
                        "{ %s(limit: 5, after: %s) { edges { cursor } } }" % (RL, after))
        assert "another checkpoint" in msg, msg
    # A latest cursor is not one of a checkpoint.
    _, _, latest = amounts(b, tok, "limit: 1")
    msg = gql_error(b, tok, "{ %s(after: %s, checkpoint: %s) { edges { cursor } } }"
                    % (RL, json.dumps(latest["endCursor"]), note))
    assert "another checkpoint" in msg, msg


def test_forged_foreign_future_and_malformed_checkpoints_are_refused(history):
    b, cps, tok = history["b"], history["cps"], history["tok"]
    note, size = cps[2]
    origin, _, rest = note.partition("\n")
    size_line, _, tail = rest.partition("\n")
    forged = "%s\n%d\n%s" % (origin, int(size_line) + 1, tail)  # our signature, another size
    body_text = note.partition("\n\n")[0] + "\n"
    foreign = sign_note(body_text, origin, lc.Identity())  # our origin, another key
    _, latest = checkpoint(b)
    cases = [(forged, "bad signature"), (foreign, "no signature by this key"),
             (str(latest + 1), "beyond the latest checkpoint"), ("x", "malformed"),
             ("", "a signed checkpoint note or a tree size"), ("12a", "decimal"),
             ("007", "decimal"), ("99999999999999999999", "decimal")]
    q = "query($c: String) { %s(checkpoint: $c) { edges { cursor } } }" % RL
    qr = ("query($c: String) { r_com_example_Payment(_permalink: \"%s\", checkpoint: $c) "
          "{ amount } }" % history["p1"])
    for text, why in cases:
        assert why in gql_error(b, tok, q, {"c": text}), (text, why)
        assert why in gql_error(b, tok, qr, {"c": text}), (text, why)
        status, raw, _ = lc.http_get(b.http_addr, "/api/v1/%s?checkpoint=%s"
                                     % (T, urllib.parse.quote(text, safe="")), tok)
        assert status == 400 and why in json.loads(raw)["reason"], (text, raw)
    # The latest size itself is fine.
    assert amounts(b, tok, 'checkpoint: "%d"' % latest)[1] == {"asOf": [latest]}


def test_rest_reads_as_of_a_checkpoint_with_cursors_bound_to_it(history):
    b, cps, tok = history["b"], history["cps"], history["tok"]
    enc = urllib.parse.quote(cps[2][0], safe="")
    page = dc.rest(b, tok, "/api/v1/%s?checkpoint=%s" % (T, enc))
    assert [r["amount"] for r in page["results"]] == [20, 30] and page["as_of"] == cps[2][1]
    page = dc.rest(b, tok, "/api/v1/%s?limit=1&checkpoint=%s" % (T, enc))
    assert [r["amount"] for r in page["results"]] == [20]
    assert page["next"].endswith("@%d" % cps[2][1])
    nxt = dc.rest(b, tok, "/api/v1/%s?limit=1&checkpoint=%d&cursor=%s"
                  % (T, cps[2][1], urllib.parse.quote(page["next"])))
    assert [r["amount"] for r in nxt["results"]] == [30] and nxt["next"] is None
    for query in ("cursor=%s" % urllib.parse.quote(page["next"]),
                  "checkpoint=%d&cursor=%s" % (cps[3][1], urllib.parse.quote(page["next"]))):
        status, raw, _ = lc.http_get(b.http_addr, "/api/v1/%s?limit=1&%s" % (T, query), tok)
        assert status == 400 and json.loads(raw)["reason"] == "cursor: of another checkpoint"
    latest = dc.rest(b, tok, "/api/v1/%s?limit=1" % T)
    status, raw, _ = lc.http_get(b.http_addr, "/api/v1/%s?limit=1&checkpoint=%d&cursor=%s"
                                 % (T, cps[4][1], latest["next"]), tok)
    assert status == 400 and json.loads(raw)["reason"] == "cursor: of another checkpoint"
    assert "as_of" not in latest
    # One resource: its version then, 410 once tombstoned, 404 before it existed.
    p1 = history["p1"]
    res = dc.rest(b, tok, "/api/v1/%s/%s?checkpoint=%s" % (T, p1, urllib.parse.quote(
        cps[0][0], safe="")))
    assert res["amount"] == 10 and res["_link"] == p1
    assert dc.rest(b, tok, "/api/v1/%s/%s?checkpoint=%d" % (T, p1, cps[1][1]))["amount"] == 20
    status, raw, _ = lc.http_get(b.http_addr, "/api/v1/%s/%s?checkpoint=%d"
                                 % (T, p1, cps[3][1]), tok)
    assert status == 410
    status, raw, _ = lc.http_get(b.http_addr, "/api/v1/%s/%s?checkpoint=%d"
                                 % (T, history["p2"], cps[1][1]), tok)
    assert status == 404
    status, raw, _ = lc.http_get(b.http_addr, "/api/v1/%s/%s?checkpoint=%d"
                                 % (T, p1, cps[4][1] + 1), tok)
    assert status == 400 and "beyond the latest checkpoint" in json.loads(raw)["reason"]
    # Carol may not read p2 as of before it was sent to her.
    status, _, _ = lc.http_get(b.http_addr, "/api/v1/%s/%s?checkpoint=%d"
                               % (T, history["p2"], cps[1][1]), history["tok_carol"])
    assert status == 404
    assert dc.rest(b, history["tok_carol"], "/api/v1/%s/%s?checkpoint=%d"
                   % (T, history["p2"], cps[2][1]))["amount"] == 30


def test_the_checkpoint_argument_is_in_the_sdl_and_openapi(history):
    b = history["b"]
    text = g.sdl(b)
    start = text.index("  rl_com_example_Payment(")
    block = text[start:text.index("): com_example_Payment_Connection!", start)]
    assert "checkpoint: String" in block, block
    start = text.index("  r_com_example_Payment(")
    block = text[start:text.index("): com_example_Payment\n", start)]
    assert "checkpoint: String" in block, block
    status, raw, _ = lc.http_get(b.http_addr, "/openapi.json")
    paths = json.loads(raw)["paths"]
    for path in ("/api/v1/%s" % T, "/api/v1/%s/{permalink}" % T):
        names = [p.get("name") for p in paths[path]["get"].get("parameters", [])]
        assert "checkpoint" in names, (path, paths[path]["get"])
