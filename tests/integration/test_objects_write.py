"""Objects written over HTTP (docs/PROTOCOL.md "Writing objects over HTTP"): POST, PUT and
DELETE under /api/v1/ become envelopes the server signs on its own chain for the caller
(`_on_behalf_of`), through the same checks as an envelope sent over MQTT, answered after the
commit with the envelope, its ack and ledger receipt, and the resource. Driven by urllib, raw
sockets and the Python identity client against the real binary."""

import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import pytest

import dataclient as dc
import ledgerclient as lc
from test_objects import PAYMENT, start

pytestmark = pytest.mark.ledgermq_only

TYPE = "com.example.Payment"
PAY = {"amount": 250, "currency": "EUR"}


def write(b, token, method, path, body=None, headers=None, raw=None):
    """(status, decoded JSON body, response headers)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    req = urllib.request.Request("http://%s%s" % (b.http_addr, path), data=data, headers=h,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=lc.TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def if_match(link):
    return {"If-Match": '"%s"' % link}


def test_post_put_delete_are_signed_for_the_caller_and_answered_with_a_receipt(start_broker,
                                                                                tmp_path):
    b = start(start_broker, tmp_path)
    alice = lc.Identity()
    tok = lc.login(b.http_addr, alice)
    name, pub = lc.server_key(b.http_addr)
    status, server, _ = lc.http_get(b.http_addr, "/auth/key")
    server_id = json.loads(server)["id"]

    status, ans, headers = write(b, tok, "POST", "/api/v1/" + TYPE, PAY)
    assert status == 201, ans
    assert headers["Cache-Control"] == "no-store"
    env = ans["envelope"]
    # The server signed it, on its own chain, for alice; the body says so.
    assert env["from"] == server_id and env["to"] == alice.id and env["seq"] == 1
    assert env["body"] == dict(PAY, _t=TYPE, _on_behalf_of=alice.id)
    lc.verify(env)
    assert ans["link"] == lc.link(env) and ans["seq"] == 1 and ans["to"] == alice.id
    lc.check_receipt(ans, name, pub)  # durable: the receipt's checkpoint covers it
    res = ans["resource"]
    permalink = ans["link"]
    assert res["_permalink"] == permalink and res["_link"] == permalink
    assert res["_author"] == alice.id and res["_owner"] == alice.id and res["amount"] == 250
    assert res["_ledgerIndex"] == ans["index"]
    # `ledgermq verify` takes the answer as it takes what `send` prints.
    (tmp_path / "answer.json").write_text(json.dumps(ans))
    with urllib.request.urlopen("http://%s/ledger/key" % b.http_addr, timeout=10) as r:
        vkey = json.loads(r.read())["vkey"]
    proc = subprocess.run([os.environ["LEDGERMQ_BIN"], "verify", "--key", vkey, "--receipt",
                           "answer.json", "--envelope", "answer.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    # It reads back as alice's.
    assert dc.api(b, tok, "/api/v1/%s/%s" % (TYPE, permalink)) == (200, res)

    # PUT: a new version naming the one it replaces, by If-Match or _prevlink.
    status, ans2, _ = write(b, tok, "PUT", "/api/v1/%s/%s" % (TYPE, permalink),
                            dict(PAY, amount=300), if_match(permalink))
    assert status == 200, ans2
    assert ans2["envelope"]["seq"] == 2 and ans2["envelope"]["prev"] == permalink
    assert ans2["resource"]["_prevlink"] == permalink and ans2["resource"]["amount"] == 300
    v2 = ans2["link"]
    status, ans3, _ = write(b, tok, "PUT", "/api/v1/%s/%s" % (TYPE, permalink),
                            dict(PAY, amount=301, _prevlink=v2))
    assert status == 200, ans3
    v3 = ans3["link"]
    # A stale version is refused with the latest named; nothing appended.
    status, err, _ = write(b, tok, "PUT", "/api/v1/%s/%s" % (TYPE, permalink),
                           dict(PAY, amount=1), if_match(v2))
    assert (status, err["reason"], err["latest"]) == (409, "stale_version", v3), err
    status, err, _ = write(b, tok, "PUT", "/api/v1/%s/%s" % (TYPE, permalink), PAY)
    assert status == 428 and err["reason"].startswith("precondition_required"), err
    status, err, _ = write(b, tok, "PUT", "/api/v1/%s/%s" % (TYPE, permalink),
                           dict(PAY, _prevlink=v2), if_match(v3))
    assert status == 400 and err["reason"].startswith("bad_if_match"), err
    # DELETE: a tombstone.
    status, err, _ = write(b, tok, "DELETE", "/api/v1/%s/%s" % (TYPE, permalink))
    assert status == 428, err
    status, ans4, _ = write(b, tok, "DELETE", "/api/v1/%s/%s" % (TYPE, permalink),
                            headers=if_match(v3))
    assert status == 200, ans4
    assert ans4["envelope"]["body"]["_deleted"] is True and ans4["resource"]["_deleted"] is True
    assert dc.api(b, tok, "/api/v1/%s/%s" % (TYPE, permalink))[0] == 410
    status, vers = dc.api(b, tok, "/api/v1/%s/%s/versions" % (TYPE, permalink))
    assert [v["_link"] for v in vers["results"]] == [permalink, v2, v3, ans4["link"]]
    assert {v["_author"] for v in vers["results"]} == {alice.id}


def test_a_written_resource_belongs_to_the_caller_over_mqtt_too(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    alice, bob = lc.Identity(), lc.Identity()
    tok_a, tok_b = lc.login(b.http_addr, alice), lc.login(b.http_addr, bob)
    sb = dc.session(b, bob)
    # Sent to bob: it lands in bob's inbox, signed by the server for alice, and bob reads it.
    status, ans, _ = write(b, tok_a, "POST", "/api/v1/%s?to=%s" % (TYPE, bob.id), PAY)
    assert status == 201, ans
    leaf, msg = sb.messages.get(timeout=lc.TIMEOUT_S)
    assert leaf == "inbox" and msg["envelope"] == ans["envelope"], (leaf, msg)
    permalink = ans["link"]
    assert dc.api(b, tok_b, "/api/v1/%s/%s" % (TYPE, permalink))[0] == 200
    # Bob may not update alice's resource, over HTTP or MQTT.
    status, err, _ = write(b, tok_b, "PUT", "/api/v1/%s/%s" % (TYPE, permalink), PAY,
                           if_match(permalink))
    assert (status, err["reason"]) == (403, "not_author"), err
    leaf, rej, _ = dc.send_object(sb, alice.id, dict(PAY, _t=TYPE, _prevlink=permalink))
    assert leaf == "reject" and rej["reason"] == "not_author", rej
    # Alice, the owner, updates it with her own envelope.
    sa = dc.session(b, alice)
    leaf, ack, link = dc.send_object(sa, bob.id, dict(PAY, _t=TYPE, amount=7, _prevlink=permalink))
    assert leaf == "ack", ack
    status, res = dc.api(b, tok_a, "/api/v1/%s/%s" % (TYPE, permalink))
    assert res["_link"] == link and res["_author"] == alice.id and res["amount"] == 7
    # Nobody but the server names someone else: alice claiming to act for bob is refused.
    leaf, rej, _ = dc.send_object(sa, bob.id, dict(PAY, _t=TYPE, _on_behalf_of=bob.id))
    assert (leaf, rej["reason"], rej.get("detail")) == ("reject", "not_author", "on_behalf_of")
    assert b.events("security") == [] or all(
        e.get("kind") != "bad_signature" for e in b.events("security"))


def test_bad_writes_get_clear_errors_and_append_nothing(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    alice = lc.Identity()
    tok = lc.login(b.http_addr, alice)
    path = "/api/v1/" + TYPE
    size_before = lc.http_json(b.http_addr, "/ledger/checkpoint")[1]["size"]
    cases = [
        (None, "POST", path, PAY, None, 401, None),
        ("bad", "POST", path, PAY, None, 401, None),
        (tok, "POST", path, dict(PAY, amount=0), None, 422, "invalid_object"),
        (tok, "POST", path, dict(PAY, extra=1), None, 422, "invalid_object"),
        (tok, "POST", "/api/v1/com.example.Nope", PAY, None, 404, "unknown_type"),
        (tok, "POST", path, dict(PAY, _on_behalf_of=alice.id), None, 400, "reserved_member"),
        (tok, "POST", path, dict(PAY, _t="com.example.Account"), None, 400, "bad_t"),
        (tok, "POST", path, dict(PAY, _prevlink="0" * 64), None, 400, "reserved_member"),
        (tok, "POST", path + "?to=nobody", PAY, None, 400, "bad_query"),
        (tok, "POST", path + "/" + "0" * 64, PAY, None, 405, "method_not_allowed"),
        (tok, "PUT", path, PAY, None, 405, "method_not_allowed"),
        (tok, "PATCH", path, PAY, None, 405, "method_not_allowed"),
        (tok, "PUT", path + "/" + "0" * 64, PAY, if_match("1" * 64), 422, "invalid_object"),
        (tok, "PUT", path + "/" + "0" * 64 + "/versions", PAY, None, 405, "method_not_allowed"),
    ]
    for token, method, p, body, headers, want, reason in cases:
        status, err, _ = write(b, token, method, p, body, headers)
        assert status == want, (method, p, body, status, err)
        assert err["error"] == want
        if reason is not None:
            assert err["reason"].startswith(reason), (method, p, body, err)
    status, err, _ = write(b, tok, "POST", path, raw=b"[1,2]")
    assert status == 400 and err["reason"].startswith("bad_json"), err
    status, err, _ = write(b, tok, "POST", path, raw=b"{\"amount\":")
    assert status == 400, err
    status, err, _ = write(b, tok, "POST", path, dict(PAY, amount=0))
    assert err["detail"] == "schema" and err["errors"][0]["keyword"] == "minimum", err
    # Too large for an envelope (64 KiB): refused before anything is signed.
    status, err, _ = write(b, tok, "POST", path, dict(PAY, memo="x" * 70000))
    assert status in (413, 422), err
    assert lc.http_json(b.http_addr, "/ledger/checkpoint")[1]["size"] == size_before


def test_writes_count_against_the_callers_rate(start_broker, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "p.json").write_text(json.dumps(PAYMENT))
    (d / "a.json").write_text(json.dumps({"$id": "com.example.Account", "type": "object"}))
    b = start_broker("[data]\nmodels = %s\n[auth]\nenvelope_rate_per_s = 3\n" % d,
                     extra_args=["--http", "127.0.0.1:0"])
    b.http_addr = b.events("ready")[-1]["http"][0]
    alice, bob = lc.Identity(), lc.Identity()
    tok_a, tok_b = lc.login(b.http_addr, alice), lc.login(b.http_addr, bob)
    # Within one rate window (1 s) the fourth is refused; bob's own budget is untouched.
    for attempt in range(5):
        t0 = time.monotonic()
        statuses = [write(b, tok_a, "POST", "/api/v1/" + TYPE, PAY) for _ in range(4)]
        if time.monotonic() - t0 < 0.9:
            break
    assert [s for s, _, _ in statuses[:3]] == [201, 201, 201], statuses
    status, err, headers = statuses[3]
    assert (status, err["reason"]) == (429, "rate_limited"), err
    assert headers["Retry-After"] == "1"
    assert write(b, tok_b, "POST", "/api/v1/" + TYPE, PAY)[0] == 201


def test_the_server_chain_survives_kill9(start_broker, tmp_path):
    b = start(start_broker, tmp_path)
    alice = lc.Identity()
    tok = lc.login(b.http_addr, alice)
    first = write(b, tok, "POST", "/api/v1/" + TYPE, PAY)[1]
    second = write(b, tok, "POST", "/api/v1/" + TYPE, PAY)[1]
    assert second["envelope"]["prev"] == first["link"]
    b.kill9()  # acknowledged means durable: the server's chain head too
    b.restart()
    b.http_addr = b.events("ready")[-1]["http"][0]
    tok = lc.login(b.http_addr, alice)
    status, third, _ = write(b, tok, "POST", "/api/v1/" + TYPE, PAY)
    assert status == 201, third
    assert third["envelope"]["seq"] == 3 and third["envelope"]["prev"] == second["link"]
    assert third["index"] == second["index"] + 1


def raw_requests(addr, payload, timeout=lc.TIMEOUT_S):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                return b"".join(chunks)
            chunks.append(c)


def test_pipelined_requests_are_answered_in_order_and_a_client_may_leave_early(start_broker,
                                                                                 tmp_path):
    b = start(start_broker, tmp_path)
    alice = lc.Identity()
    tok = lc.login(b.http_addr, alice)

    def req(method, path, body=b""):
        return (("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n")
                % (method, path, tok, len(body))).encode() + body

    one = json.dumps(dict(PAY, amount=1)).encode()
    two = json.dumps(dict(PAY, amount=2)).encode()
    # POST (answered after its commit), then a GET, then another POST, on one connection.
    out = raw_requests(b.http_addr, req("POST", "/api/v1/" + TYPE, one) +
                       req("GET", "/api/v1/" + TYPE) + req("POST", "/api/v1/" + TYPE, two))
    parts = out.split(b"HTTP/1.1 ")[1:]
    assert [p[:3] for p in parts] == [b"201", b"200", b"201"], out[:300]
    bodies = [json.loads(p.split(b"\r\n\r\n", 1)[1]) for p in parts]
    assert bodies[0]["resource"]["amount"] == 1 and bodies[2]["resource"]["amount"] == 2
    assert [r["amount"] for r in bodies[1]["results"]] == [1]  # the first was committed
    # Clients that leave before their answer: the writes still land, the server carries on.
    host, port = b.http_addr.rsplit(":", 1)
    for i in range(20):
        s = socket.create_connection((host, int(port)))
        s.sendall(req("POST", "/api/v1/" + TYPE, json.dumps(dict(PAY, amount=100 + i)).encode()))
        s.close()
    deadline = time.monotonic() + lc.TIMEOUT_S
    while time.monotonic() < deadline:
        status, page = dc.api(b, tok, "/api/v1/%s?limit=100" % TYPE)
        if len(page["results"]) == 22:
            break
        time.sleep(0.1)
    assert len(page["results"]) == 22, len(page["results"])
    assert b.proc.poll() is None


def test_the_readme_post_line_writes_an_object(start_broker):
    """The README's typed-objects block: its curl POST to /api/v1 with the example models."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    block = readme[readme.index("Typed objects: `make run`"):]
    block = block[:block.index("## Command line")]
    m = re.search(r"\\\n\s+http://127\.0\.0\.1:8080(/api/v1/\S+) -d '(\{.*\})'", block)
    path, body = m.group(1), json.loads(m.group(2))
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0", "--models",
                                       os.path.join(root, "examples", "models")])
    b.http_addr = b.events("ready")[-1]["http"][0]
    bob = lc.Identity()
    status, ans, _ = write(b, lc.login(b.http_addr, bob), "POST", path, body)
    assert status == 201, ans
    assert ans["envelope"]["body"]["_on_behalf_of"] == bob.id
    assert ans["resource"]["_author"] == bob.id
    assert {k: ans["resource"][k] for k in body} == body
