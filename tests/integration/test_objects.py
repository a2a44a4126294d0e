"""Typed objects (docs/PROTOCOL.md "Objects"): models loaded from [data] models, envelopes whose
body names a model validated before acceptance and stored as versions of a resource, the rules
of versions (stale, author, tombstone), and the read API GET /api/v1/... with its permissions.
Driven by the Python identity client (ledgerclient.py) against the real binary."""

import json
import os
import re
import signal
import subprocess

import pytest

import dataclient as dc
import jsdeps
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

PAYMENT = {
    "$id": "com.example.Payment",
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "x-index": True},
        "currency": {"enum": ["EUR", "USD"], "x-index": True},
        "memo": {"type": "string", "maxLength": 20},
        "to": {"$ref": "com.example.Account"},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}
ACCOUNT = {
    "$id": "com.example.Account",
    "type": "object",
    "properties": {"iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}"}},
    "required": ["iban"],
}


def start(start_broker, tmp_path, models=None, readers_all=None, expect_exit=None):
    """A broker with this file's models (or models) and [data] readers_all."""
    if models is None:
        models = {"payment.json": PAYMENT, "account.json": ACCOUNT}
    ini = "readers_all = %s\n" % readers_all if readers_all else ""
    return dc.start(start_broker, tmp_path, models, ini, expect_exit=expect_exit)


def test_an_object_is_validated_stored_and_read_back(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    alice, bob, carol = lc.Identity(), lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    body = {"_t": "com.example.Payment", "amount": 250, "currency": "EUR",
            "to": {"iban": "DE12 3456"}}
    leaf, ack, link = dc.send_object(sa, bob.id, body)
    assert leaf == "ack", ack
    # Bob received the envelope as any other; the object is readable by both parties.
    sb = dc.session(b, bob)
    tok_a, tok_b = lc.login(b.http_addr, alice), lc.login(b.http_addr, bob)
    for tok in (tok_a, tok_b):
        status, res = dc.api(b, tok, "/api/v1/com.example.Payment/" + link)
        assert status == 200, res
        assert res["amount"] == 250 and res["currency"] == "EUR"
        assert res["_permalink"] == link and res["_link"] == link and res["_prevlink"] is None
        assert res["_author"] == alice.id and res["_owner"] == alice.id
        assert res["_t"] == "com.example.Payment" and res["_ledgerIndex"] == ack["index"]
        assert res["_time"].endswith("Z") and len(res["_time"]) == 30
    # Carol may not read it: 404, as if it did not exist.
    status, res = dc.api(b, lc.login(b.http_addr, carol), "/api/v1/com.example.Payment/" + link)
    assert status == 404 and res == {"error": 404, "reason": "not_found"}
    status, res = dc.api(b, None, "/api/v1/com.example.Payment/" + link)
    assert status == 401
    # Listed, with a filter on an indexed property.
    status, page = dc.api(b, tok_b, "/api/v1/com.example.Payment?currency=EUR")
    assert status == 200 and [r["_permalink"] for r in page["results"]] == [link]
    assert page["next"] is None
    status, page = dc.api(b, tok_b, "/api/v1/com.example.Payment?currency=USD")
    assert status == 200 and page["results"] == []
    status, page = dc.api(b, tok_b, "/api/v1/com.example.Payment?memo=x")
    assert status == 400, page
    assert b.metric("ledgermq_objects_total", '{result="accepted"}') == 1
    assert b.metric("ledgermq_models") == 2
    sa.close()
    sb.close()


@pytest.mark.parametrize("body,detail", [
    ({"_t": "com.example.Payment", "amount": 0, "currency": "EUR"}, "schema"),
    ({"_t": "com.example.Payment", "amount": 5}, "schema"),
    ({"_t": "com.example.Payment", "amount": 5, "currency": "EUR", "x": 1}, "schema"),
    ({"_t": "com.example.Payment", "amount": 5, "currency": "EUR", "to": {"iban": "x"}},
     "schema"),
    ({"_t": "com.example.Nope", "amount": 5}, "unknown_model"),
    ({"_t": 7}, "bad_t"),
    ({"_t": "com.example.Payment", "amount": 5, "currency": "EUR", "_secret": 1},
     "reserved_member"),
    ({"_t": "com.example.Payment", "amount": 5, "currency": "EUR", "_prevlink": "zz"},
     "bad_prevlink"),
    ({"_t": "com.example.Payment", "amount": 5, "currency": "EUR", "_prevlink": "0" * 64},
     "unknown_prevlink"),
    ({"_t": "com.example.Payment", "_deleted": True}, "bad_deleted"),
])
def test_bad_objects_are_refused_and_nothing_is_stored(start_broker, tmp_path, body, detail):
    b = start(start_broker, tmp_path)
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    leaf, rej, link = dc.send_object(sa, bob.id, body)
    assert leaf == "reject", rej
    assert rej["reason"] == "invalid_object" and rej["detail"] == detail, rej
    assert rej["expected_seq"] == 1 and rej["seq"] == 1
    if detail == "schema":
        assert rej["errors"] and {"instance", "keyword", "message", "schema"} <= set(
            rej["errors"][0])
    # The chain did not move: the next envelope is seq 1 again, and the ledger holds nothing.
    leaf, ack, _ = dc.send_object(sa, bob.id, {"n": 1})
    assert leaf == "ack" and ack["seq"] == 1 and ack["index"] == 0, ack
    status, page = dc.api(b, lc.login(b.http_addr, alice), "/api/v1/com.example.Payment")
    assert status == 200 and page["results"] == []
    sa.close()


def test_versions_stale_updates_authors_and_tombstones(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    alice, bob = lc.Identity(), lc.Identity()
    sa, sb = dc.session(b, alice), dc.session(b, bob)
    leaf, _, first = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 1,
                                                 "currency": "EUR"})
    assert leaf == "ack"
    leaf, _, second = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 2,
                                                  "currency": "EUR", "_prevlink": first,
                                                  "_permalink": first})
    assert leaf == "ack"
    # A second update of the first version is stale: the reject names the latest.
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 3,
                                               "currency": "EUR", "_prevlink": first})
    assert leaf == "reject" and rej["reason"] == "stale_version" and rej["latest"] == second
    # Bob may read it but not write it.
    leaf, rej, _ = dc.send_object(sb, alice.id, {"_t": "com.example.Payment", "amount": 3,
                                                 "currency": "EUR", "_prevlink": second})
    assert leaf == "reject" and rej["reason"] == "not_author", rej
    # Another model's resource can't continue this one.
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Account", "iban": "DE00",
                                               "_prevlink": second})
    assert leaf == "reject" and rej["detail"] == "model_mismatch", rej
    tok = lc.login(b.http_addr, bob)
    status, res = dc.api(b, tok, "/api/v1/com.example.Payment/" + first)
    assert status == 200 and res["amount"] == 2 and res["_link"] == second
    assert res["_prevlink"] == first
    status, hist = dc.api(b, tok, "/api/v1/com.example.Payment/%s/versions" % first)
    assert status == 200 and [v["amount"] for v in hist["results"]] == [1, 2]
    status, hist = dc.api(b, tok, "/api/v1/com.example.Payment/%s/versions?limit=1" % first)
    assert len(hist["results"]) == 1 and hist["next"] is not None
    status, rest = dc.api(b, tok, "/api/v1/com.example.Payment/%s/versions?after=%s"
                          % (first, hist["next"]))
    assert [v["_link"] for v in rest["results"]] == [second] and rest["next"] is None
    # A tombstone: the resource is gone from lists and reads, its history stays.
    leaf, _, gone = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "_prevlink": second,
                                                "_deleted": True})
    assert leaf == "ack"
    status, res = dc.api(b, tok, "/api/v1/com.example.Payment/" + first)
    assert status == 410 and res["reason"] == "deleted"
    status, page = dc.api(b, tok, "/api/v1/com.example.Payment")
    assert page["results"] == []
    status, hist = dc.api(b, tok, "/api/v1/com.example.Payment/%s/versions" % first)
    assert [v["_link"] for v in hist["results"]] == [first, second, gone]
    assert hist["results"][2]["_deleted"] is True
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 9,
                                               "currency": "EUR", "_prevlink": gone})
    assert leaf == "reject" and rej["reason"] == "stale_version" and rej["detail"] == "deleted"
    sa.close()
    sb.close()


def test_updates_in_flight_see_each_other_and_survive_a_restart(start_broker, tmp_path):
    """Versions sent back to back without waiting: each names the previous one, which is not
    durable yet when the next arrives; then kill -9 and a restart keep all of them."""
    b = start(start_broker, tmp_path)
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    envs = []
    prev = None
    for i in range(20):
        body = {"_t": "com.example.Payment", "amount": i + 1, "currency": "USD"}
        if prev is not None:
            body["_prevlink"] = prev
        env = alice.envelope(bob.id, body, type_="object")
        alice.advance(env)
        envs.append(env)
        prev = lc.link(env)
    for env in envs:
        sa.send(env)
    for _ in envs:
        leaf, msg = sa.messages.get(timeout=lc.TIMEOUT_S)
        assert leaf == "ack", msg
    sa.close()
    first = lc.link(envs[0])
    b.kill9()
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    tok = lc.login(b.http_addr, bob)
    status, res = dc.api(b, tok, "/api/v1/com.example.Payment/" + first)
    assert status == 200 and res["amount"] == 20 and res["_link"] == prev
    status, hist = dc.api(b, tok, "/api/v1/com.example.Payment/%s/versions?limit=100" % first)
    assert [v["amount"] for v in hist["results"]] == list(range(1, 21))


def test_pages_and_readers_all(start_broker, tmp_path):
    auditor = lc.Identity()
    b = start(start_broker, tmp_path, readers_all=auditor.id)
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    links = []
    for i in range(7):
        leaf, _, link = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 100 + i,
                                                    "currency": "EUR"})
        assert leaf == "ack"
        links.append(link)
    tok = lc.login(b.http_addr, auditor)
    seen, cursor = [], None
    for _ in range(10):
        path = "/api/v1/com.example.Payment?limit=3" + ("&cursor=" + cursor if cursor else "")
        status, page = dc.api(b, tok, path)
        assert status == 200, page
        seen += [r["_permalink"] for r in page["results"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == links
    status, page = dc.api(b, tok, "/api/v1/com.example.Payment?amount=103")
    assert [r["amount"] for r in page["results"]] == [103]
    status, types = dc.api(b, tok, "/api/v1/")
    names = sorted(t["name"] for t in types["types"])
    assert names == ["com.example.Account", "com.example.Payment"]
    for path, code in [("/api/v1/com.example.Payment?limit=0", 400),
                       ("/api/v1/com.example.Payment?limit=101", 400),
                       ("/api/v1/com.example.Payment?cursor=x", 400),
                       ("/api/v1/com.example.Payment?amount=ten", 400),
                       ("/api/v1/com.example.Nope", 404),
                       ("/api/v1/com.example.Payment/xyz", 404),
                       ("/api/v1/com.example.Payment/%s/other" % links[0], 404)]:
        status, err = dc.api(b, tok, path)
        assert status == code and err["error"] == code, (path, status, err)
    sa.close()


@pytest.mark.parametrize("files,needle", [
    ({"a.json": "not json"}, "a.json: not JSON"),
    ({"a.json": {"type": "object"}}, "a.json: a model needs \"$id\""),
    ({"a.json": {"$id": "bad name!"}}, "a model needs \"$id\""),
    ({"a.json": {"$id": "a.B"}, "b.json": {"$id": "a_B"}}, "clashes with"),
    ({"a.json": {"$id": "a.B", "type": "nonsense"}}, "a.json"),
    ({"a.json": {"$id": "a.B", "$ref": "a.Missing"}}, "a.json"),
])
def test_broken_models_stop_the_start(start_broker, tmp_path, files, needle):
    d = dc.write_models(tmp_path, files)
    b = start_broker("[data]\nmodels = %s\n" % d, extra_args=["--http", "127.0.0.1:0"],
                     expect_exit=1, wait_ready=False)
    b.wait_exit(1)
    failed = [e for e in b.events("start_failed")]
    assert failed and needle in failed[-1]["msg"], failed


def test_sighup_reloads_models_and_keeps_them_when_broken(start_broker, tmp_path):
    b = start(start_broker, tmp_path, models={"account.json": ACCOUNT})
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 5,
                                               "currency": "EUR"})
    assert leaf == "reject" and rej["detail"] == "unknown_model"
    (b.models_dir / "payment.json").write_text(json.dumps(PAYMENT))
    os.kill(b.proc.pid, signal.SIGHUP)
    b.wait_event("data_models_reloaded", pred=lambda e: e.get("models") == 2)
    leaf, ack, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 5,
                                               "currency": "EUR"})
    assert leaf == "ack", ack
    (b.models_dir / "broken.json").write_text("{")
    os.kill(b.proc.pid, signal.SIGHUP)
    b.wait_event("data_models_reload_failed")
    leaf, ack, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Payment", "amount": 6,
                                               "currency": "EUR"})
    assert leaf == "ack", ack
    sa.close()


def test_admins_add_change_and_delete_models_by_envelope(start_broker, tmp_path):
    admin = lc.Identity()
    b = dc.start(start_broker, tmp_path, {"account.json": ACCOUNT}, "admins = %s\n" % admin.id)
    alice, bob = lc.Identity(), lc.Identity()
    sadm, sa = dc.session(b, admin), dc.session(b, alice)
    note = {"$id": "com.example.Note", "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 5, "x-index": True},
                           "to": {"$ref": "com.example.Account"}},
            "required": ["text"]}
    # Only an admin adds models; a schema must compile; a type is added once.
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "ledgermq.Model", "schema": note})
    assert leaf == "reject" and rej["reason"] == "not_author" and rej["detail"] == "not_admin"
    leaf, rej, _ = dc.send_object(sadm, admin.id, {"_t": "ledgermq.Model",
                                                   "schema": {"$id": "com.example.Bad", "type": 5}})
    assert leaf == "reject" and rej["detail"] == "bad_model" and rej["error"], rej
    leaf, rej, _ = dc.send_object(sadm, admin.id, {"_t": "ledgermq.Model", "schema": ACCOUNT})
    assert leaf == "reject" and rej["detail"] == "model_exists", rej
    leaf, rej, _ = dc.send_object(sadm, admin.id, {"_t": "ledgermq.Model",
                                                   "schema": {"$id": "ledgermq.Mine"}})
    assert leaf == "reject" and rej["detail"] == "reserved_type", rej
    leaf, ack, model_link = dc.send_object(sadm, admin.id, {"_t": "ledgermq.Model", "schema": note})
    assert leaf == "ack", ack
    b.wait_event("data_model_put", pred=lambda e: e["model"] == "com.example.Note")
    # Objects of it, with a $ref to a file model.
    leaf, ack, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Note", "text": "hi",
                                               "to": {"iban": "DE99"}})
    assert leaf == "ack", ack
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Note", "text": "too long"})
    assert leaf == "reject" and rej["detail"] == "schema", rej
    # A new version of the model (text up to 50) applies to the next object.
    note2 = dict(note, properties=dict(note["properties"], text={"type": "string",
                                                                  "maxLength": 50}))
    leaf, ack, model_v2 = dc.send_object(sadm, admin.id, {"_t": "ledgermq.Model", "schema": note2,
                                                          "_prevlink": model_link})
    assert leaf == "ack", ack
    leaf, ack, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Note", "text": "now long enough"})
    assert leaf == "ack", ack
    # It survives kill -9: the models added by envelope are read back at start.
    sadm.close()
    sa.close()
    b.kill9()
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    sadm, sa = dc.session(b, admin), dc.session(b, alice)
    leaf, ack, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Note", "text": "after a restart"})
    assert leaf == "ack", ack
    status, types = dc.api(b, lc.login(b.http_addr, alice), "/api/v1/")
    assert sorted(t["name"] for t in types["types"]) == ["com.example.Account",
                                                          "com.example.Note"]
    # A tombstone removes the model.
    leaf, ack, _ = dc.send_object(sadm, admin.id, {"_t": "ledgermq.Model", "_prevlink": model_v2,
                                                   "_deleted": True})
    assert leaf == "ack", ack
    leaf, rej, _ = dc.send_object(sa, bob.id, {"_t": "com.example.Note", "text": "x"})
    assert leaf == "reject" and rej["detail"] == "unknown_model", rej
    sadm.close()
    sa.close()


def test_the_token_command_reads_the_api_as_its_identity(start_broker, tmp_path):
    """ledgermq send an object, ledgermq token, then GET /api/v1 with that token: the README's
    walk-through of typed objects."""
    b = start(start_broker, tmp_path)
    binary = os.environ["LEDGERMQ_BIN"]

    def cli(*args):
        return subprocess.run([binary, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    ids = [cli("keygen", "--out", name).stdout.strip() for name in ("alice.json", "bob.json")]
    addr = ["--server", "127.0.0.1:%d" % b.mqtt_port, "--http", b.http_addr]
    p = cli("send", "--key", "alice.json", "--to", ids[1], *addr,
            json.dumps({"_t": "com.example.Payment", "amount": 12, "currency": "EUR"}))
    assert p.returncode == 0, p.stderr
    link = json.loads(p.stdout)["link"]
    p = cli("token", "--key", "bob.json", "--http", b.http_addr)
    assert p.returncode == 0 and p.stdout.count("\n") == 1, p.stderr
    status, res = dc.api(b, p.stdout.strip(), "/api/v1/com.example.Payment/" + link)
    assert status == 200 and res["amount"] == 12 and res["_author"] == ids[0], res
    # A rejected object: send prints the reject and exits 3.
    p = cli("send", "--key", "alice.json", "--to", ids[1], *addr,
            json.dumps({"_t": "com.example.Payment", "amount": -1, "currency": "EUR"}))
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert json.loads(p.stdout)["reason"] == "invalid_object"
    # Errors: no key, no server.
    assert cli("token").returncode == 1
    p = cli("token", "--key", "bob.json", "--http", "127.0.0.1:1", "--timeout-ms", "2000")
    assert p.returncode == 4 and "127.0.0.1:1" in p.stderr, p.stderr


def test_the_readme_objects_walkthrough_with_the_example_models(start_broker, tmp_path):
    """make run's models (examples/models) load, and the bodies the README sends give what it
    says: the first is accepted and listed by the curl line's filter, the second rejected."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    block = readme[readme.index("Typed objects: `make run`"):]
    block = block[block.index("```sh\n") + 6:block.index("```", block.index("```sh\n") + 6)]
    bodies = [json.loads(m) for m in re.findall(r"'(\{\"_t\".*?\})'", block)]
    assert len(bodies) == 2, block
    query = re.search(r"/api/v1/([\w.?=&]+)'", block).group(1)
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0", "--models",
                                       os.path.join(root, "examples", "models")])
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    assert b.events("data_models_loaded")[-1]["models"] == 4
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    leaf, ack, link = dc.send_object(sa, bob.id, bodies[0])
    assert leaf == "ack", ack
    leaf, rej, _ = dc.send_object(sa, bob.id, bodies[1])
    assert leaf == "reject" and rej["reason"] == "invalid_object" and rej["errors"], rej
    status, page = dc.api(b, lc.login(b.http_addr, bob), "/api/v1/" + query)
    assert status == 200 and [r["_permalink"] for r in page["results"]] == [link], page
    sa.close()


def test_openapi_document_validates_and_has_each_models_paths(start_broker, tmp_path):
    """GET /openapi.json with the example models: OpenAPI 3.1 that swagger-parser accepts (every
    $ref resolves inside the document), with the paths of each model and its filters."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0", "--models",
                                       os.path.join(root, "examples", "models")])
    http = b.events("ready")[-1]["http"][0]
    status, raw, headers = lc.http_get(http, "/openapi.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(raw)
    assert doc["openapi"] == "3.1.0"
    for t in ("com.example.Payment", "com.example.Account", "com.example.Onboarding"):
        assert "/api/v1/%s/{permalink}/versions" % t in doc["paths"]
    params = [p["name"] for p in doc["paths"]["/api/v1/com.example.Payment"]["get"]["parameters"]]
    assert params == ["limit", "cursor", "amount", "currency", "checkpoint"], params
    # The writes (docs/PROTOCOL.md "Writing objects over HTTP") beside the reads.
    one = doc["paths"]["/api/v1/com.example.Payment/{permalink}"]
    assert sorted(one) == ["delete", "get", "put"], sorted(one)
    assert sorted(doc["paths"]["/api/v1/com.example.Payment"]) == ["get", "post"]
    assert "201" in doc["paths"]["/api/v1/com.example.Payment"]["post"]["responses"]
    assert "If-Match" in [p["name"] for p in one["put"]["parameters"]]
    payment = doc["components"]["schemas"]["com_example_Payment"]
    assert payment["properties"]["to"]["$ref"] == "#/components/schemas/com_example_Account"
    assert "$id" not in payment
    (tmp_path / "openapi.json").write_bytes(raw)
    p = subprocess.run([jsdeps.node(), os.path.join(jsdeps.JS_DIR, "openapi_validate.mjs"),
                        str(tmp_path / "openapi.json")], capture_output=True, text=True,
                       timeout=120, cwd=jsdeps.JS_DIR)
    verdict = json.loads(p.stdout)
    assert p.returncode == 0 and verdict["ok"], verdict
    assert "/ledger/envelopes" in verdict["paths"] and "/auth/token" in verdict["paths"]
    # Without models: the fixed endpoints alone, still valid.
    b2 = start_broker(None, extra_args=["--http", "127.0.0.1:0"])
    status, raw, _ = lc.http_get(b2.events("ready")[-1]["http"][0], "/openapi.json")
    assert status == 200 and not [k for k in json.loads(raw)["paths"] if "com.example" in k]
