"""What the data-layer tests share (test_objects.py, test_graphql_data.py, test_data_flood.py):
a broker started with a models directory, a logged-in identity session, objects sent as signed
envelopes and read back over /api/v1 and /graphql. Written from docs/PROTOCOL.md ("Objects",
"Objects over GraphQL"); built on ledgerclient.py."""

import json
import urllib.error
import urllib.request

import ledgerclient as lc


def write_models(tmp_path, models):
    """Writes {file name: model document} into tmp_path/models; returns the directory."""
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    for name, doc in models.items():
        (d / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return d


def start(start_broker, tmp_path, models, extra_ini="", expect_exit=None, extra_args=(),
          env=None):
    """A broker with [data] models = the written models (plus extra_ini's [data] lines) and an
    HTTP listener on 127.0.0.1: b.http_addr, b.mqtt_port, b.models_dir are set once it is
    ready. With expect_exit the broker is returned unready, as start_broker returns it."""
    d = write_models(tmp_path, models)
    b = start_broker("[data]\nmodels = %s\n%s" % (d, extra_ini),
                     extra_args=["--http", "127.0.0.1:0"] + list(extra_args),
                     expect_exit=expect_exit, wait_ready=expect_exit is None, env=env)
    if expect_exit is not None:
        return b
    b.models_dir = d
    return ready_addresses(b)


def ready_addresses(b):
    """Sets b.http_addr and b.mqtt_port from the broker's (latest) ready line; returns b."""
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])
    return b


def session(b, ident):
    """ident logged in (a token from /auth/token) on an MQTT session subscribed to its topics."""
    s = lc.Session(b.mqtt_port, ident, lc.login(b.http_addr, ident))
    assert s.rc == 0, s.rc
    return s


def send_object(s, to, body):
    """Sends body as an object envelope to `to` and waits for the verdict: (leaf, message, link)
    with leaf "ack" or "reject"; the identity's chain advances on an ack only."""
    env = s.ident.envelope(to, body, type_="object")
    s.send(env)
    leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
    while leaf == "inbox":  # what others sent this identity meanwhile
        leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
    if leaf == "ack":
        s.ident.advance(env)
    return leaf, msg, lc.link(env)


def send(s, to, body):
    """Sends an object that must be accepted; returns its link."""
    leaf, msg, link = send_object(s, to, body)
    assert leaf == "ack", msg
    return link


def api(b, token, path):
    """GET path (/api/v1/...): (status, decoded JSON body)."""
    status, raw, _ = lc.http_get(b.http_addr, path, token)
    return status, json.loads(raw)


def rest(b, token, path):
    """The decoded body of a GET that must answer 200."""
    status, raw, _ = lc.http_get(b.http_addr, path, token)
    assert status == 200, raw
    return json.loads(raw)


def post(b, query, token=None, variables=None, headers=None, raw=None, ctype="application/json"):
    """POST /graphql: (status, decoded body, headers)."""
    h = {"Content-Type": ctype}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    data = raw if raw is not None else json.dumps(
        {"query": query, "variables": variables}).encode()
    req = urllib.request.Request("http://%s/graphql" % b.http_addr, data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=lc.TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def gql(b, token, query, variables=None):
    """The data of a query that must succeed."""
    status, body, _ = post(b, query, token, variables)
    assert status == 200 and "errors" not in body, body
    return body["data"]


def send_many(s, to, bodies):
    """Sends objects that must all be accepted, pipelined (the chain advanced as each envelope
    is made, every PUBLISH out before the first verdict is awaited); returns their links."""
    envs = []
    for body in bodies:
        env = s.ident.envelope(to, body, type_="object")
        s.ident.advance(env)
        envs.append(env)
    for env in envs:
        s.client.publish("id/%s/outbox" % s.ident.id, lc.canonical(env), qos=1)
    acked = 0
    while acked < len(envs):
        leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
        assert leaf in ("ack", "inbox"), (leaf, msg)
        acked += leaf == "ack"
    return [lc.link(env) for env in envs]
