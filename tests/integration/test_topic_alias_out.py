"""v5 topic aliases towards clients (docs/PROTOCOL.md, "Topic aliases towards clients").

While the table has a free alias, the broker gives a topic one on its first PUBLISH to a
connection whose CONNECT carried a Topic Alias Maximum (at most min(that, [limits]
max_topic_alias_out) aliases), sends alias-only PUBLISHes (empty topic + Topic Alias) from then
on, and, with the table full, reassigns the least recently used alias only to a topic sent more
often than that alias was used. Aliases live for one network connection. Every PUBLISH received
here goes through a Resolver, which resolves aliases as a client must and fails on an alias the
connection was never told about.

All ledgermq_only: mosquitto sends no topic aliases to clients (and has no such key).
"""

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

LONG = "alias-out/" + "x" * 90  # a topic worth aliasing (100 bytes)


class Resolver:
    """One client connection's view of the broker's aliases."""

    def __init__(self, alias_max):
        self.alias_max = alias_max
        self.table = {}
        self.bytes = 0  # wire bytes of the PUBLISHes seen

    def resolve(self, p):
        """The topic p stands for; asserts p is a valid PUBLISH towards this client."""
        assert p.type == m.PUBLISH, p
        self.bytes += 1 + len(m.encode_varint(len(p.body))) + len(p.body)
        alias = p.props.get("topic_alias")
        if alias is None:
            assert p.topic, "empty topic without a Topic Alias: %r" % p
            return p.topic
        assert 1 <= alias <= self.alias_max, "alias %d outside 1..%d" % (alias, self.alias_max)
        if p.topic:
            self.table[alias] = p.topic
            return p.topic
        assert alias in self.table, "alias-only PUBLISH for alias %d never set: %r" % (alias, p)
        return self.table[alias]


def kind(p):
    """'full', 'assign' (topic + alias) or 'alias' (alias-only)."""
    if "topic_alias" not in p.props:
        return "full"
    return "assign" if p.topic else "alias"


def subscriber(b, client_id, alias_max=None, flt="alias-out/#", qos=1, version=5, props=None):
    props = dict(props or {})
    if alias_max is not None:
        props["topic_alias_maximum"] = alias_max
    s = b.connect(client_id, version=version, props=props or None)
    s.subscribe([(flt, qos)])
    return s, Resolver(alias_max or 0)


def receive(s, r, count, timeout=None):
    """count PUBLISHes (acknowledged): [(resolved topic, payload, packet)]."""
    out = []
    for p in s.publishes(count, timeout=timeout):
        out.append((r.resolve(p), p.payload, p))
    return out


@pytest.fixture
def b(start_broker):
    return start_broker()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_alias_on_first_message_then_alias_only(b, qos):
    s, r = subscriber(b, "sub", alias_max=10, qos=qos)
    pub = b.connect("pub")
    for i in range(6):
        pub.publish_acked(LONG, b"m%d" % i, qos=max(qos, 1))
    got = receive(s, r, 6)
    assert [t for t, _, _ in got] == [LONG] * 6
    assert [pl for _, pl, _ in got] == [b"m%d" % i for i in range(6)]
    assert [kind(p) for _, _, p in got] == ["assign"] + ["alias"] * 5
    assert {p.props.get("topic_alias") for _, _, p in got} == {1}
    assert all(p.qos == qos for _, _, p in got)


@pytest.mark.parametrize("second_props", [None, {"topic_alias_maximum": 0}],
                         ids=["absent", "zero"])
def test_paho_server_topic_alias_with_raw_packets(b, second_props):
    """Paho's client_test5.py test_server_topic_alias, packet by packet: a client with Topic
    Alias Maximum 1 subscribes QoS 2 to its topics[0] and publishes it at QoS 0, 1 and 2 itself.
    The first PUBLISH it receives sets alias 1 (topic name + Topic Alias), the next two are
    alias-only with alias 1. A new connection without a Topic Alias Maximum (Paho checks both
    absent and 0) gets the full topic and no Topic Alias on all three."""
    topic = "client_test5/TopicA"  # topics[0] of client_test5.py
    c = b.connect("myclientid", props={"topic_alias_maximum": 1})
    assert c.subscribe([(topic, 2)]).rcs == [2]
    r = Resolver(1)
    c.publish(topic, b"topic alias 1", qos=0)
    c.publish_acked(topic, b"topic alias 1", qos=1)
    c.publish_acked(topic, b"topic alias 1", qos=2)
    got = receive(c, r, 3)
    assert [(t, pl) for t, pl, _ in got] == [(topic, b"topic alias 1")] * 3
    assert [(p.topic, p.props.get("topic_alias")) for _, _, p in got] == [
        (topic, 1), ("", 1), ("", 1)]
    assert sorted(p.qos for _, _, p in got) == [0, 1, 2]
    c.disconnect()
    c2 = b.connect("myclientid", props=second_props)
    assert c2.subscribe([(topic, 2)]).rcs == [2]
    c2.publish(topic, b"no alias", qos=0)
    c2.publish_acked(topic, b"no alias", qos=1)
    c2.publish_acked(topic, b"no alias", qos=2)
    got = c2.publishes(3)
    assert [(p.topic, p.payload) for p in got] == [(topic, b"no alias")] * 3
    assert all("topic_alias" not in p.props for p in got), got
    c2.disconnect()


def test_persistent_qos2_subscriber_deliveries_sent_after_the_commit_use_aliases(b):
    """A stored QoS 2 delivery goes out only once its packet id is durable (sent later, from
    the commit callback): the alias decision is made then, in sending order."""
    s = b.connect_persistent("p2", props={"topic_alias_maximum": 3})
    s.subscribe([("alias-out/#", 2)])
    r = Resolver(3)
    pub = b.connect("pub")
    topics = ["alias-out/q2/%d/%s" % (i, "z" * 30) for i in range(2)]
    sent = publish_rounds(pub, topics, 4, qos=2)
    got = receive(s, r, len(sent))
    assert [(t, pl) for t, pl, _ in got] == sent
    assert [kind(p) for _, _, p in got] == ["assign"] * 2 + ["alias"] * 6
    assert all(p.qos == 2 for _, _, p in got)


def test_metrics_count_assigned_and_alias_only_publishes(start_broker):
    import urllib.request
    b = start_broker(extra_args=["--http", "127.0.0.1:0"])
    s, r = subscriber(b, "sub", alias_max=4)
    pub = b.connect("pub")
    for i in range(6):
        pub.publish_acked(LONG, b"%d" % i)
    assert [kind(p) for _, _, p in receive(s, r, 6)] == ["assign"] + ["alias"] * 5
    http = b.events("ready")[-1]["http"][0]
    with urllib.request.urlopen("http://%s/metrics" % http, timeout=10) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("ledgermq_topic_alias_out"):
            name, value = line.rsplit(" ", 1)
            values[name] = int(value)
    assert values == {
        'ledgermq_topic_alias_out_total{kind="assigned"}': 1,
        'ledgermq_topic_alias_out_total{kind="used"}': 5,
        # Each alias-only PUBLISH leaves out the 100-byte topic and adds the 3-byte property.
        'ledgermq_topic_alias_out_bytes_total{kind="saved"}': 5 * 97,
        'ledgermq_topic_alias_out_bytes_total{kind="spent"}': 3,
    }


def test_interleaved_topics_map_to_the_right_topic(b):
    s, r = subscriber(b, "sub", alias_max=8)
    pub = b.connect("pub")
    topics = ["alias-out/%s/%d" % ("t" * 20, i) for i in range(5)]
    order = [topics[(i * 7 + i // 5) % 5] for i in range(60)]
    for i, t in enumerate(order):
        pub.publish_acked(t, b"%d" % i)
    got = receive(s, r, 60)
    assert [(t, pl) for t, pl, _ in got] == [(t, b"%d" % i) for i, t in enumerate(order)]
    # 5 topics, 8 aliases: each topic's first PUBLISH assigns, every later one is alias-only.
    assert sum(kind(p) == "assign" for _, _, p in got) == 5
    assert sum(kind(p) == "alias" for _, _, p in got) == 60 - 5
    assert len(r.table) == 5


@pytest.mark.parametrize("props", [None, {"topic_alias_maximum": 0}], ids=["absent", "zero"])
def test_no_alias_without_a_topic_alias_maximum(b, props):
    s, r = subscriber(b, "sub", props=props)
    pub = b.connect("pub")
    for i in range(5):
        pub.publish_acked(LONG, b"%d" % i)
    got = receive(s, r, 5)
    assert [kind(p) for _, _, p in got] == ["full"] * 5
    assert [t for t, _, _ in got] == [LONG] * 5


def test_no_alias_for_a_311_client(b):
    s = b.connect("sub311", version=4)
    s.subscribe([("alias-out/#", 1)])
    pub = b.connect("pub")
    for i in range(5):
        pub.publish_acked(LONG, b"%d" % i)
    got = s.publishes(5)
    assert [p.topic for p in got] == [LONG] * 5
    assert [p.payload for p in got] == [b"%d" % i for i in range(5)]


def hot_topics(count):
    return ["alias-out/hot/%02d/%s" % (i, "h" * 30) for i in range(count)]


def publish_rounds(pub, topics, rounds, qos=1):
    sent = []
    for n in range(rounds):
        for t in topics:
            pub.publish_acked(t, b"%d" % n, qos=qos)
            sent.append((t, b"%d" % n))
    return sent


def test_table_bounded_by_the_clients_maximum(b):
    s, r = subscriber(b, "sub", alias_max=2)
    pub = b.connect("pub")
    sent = publish_rounds(pub, hot_topics(4), 5)
    got = receive(s, r, len(sent))
    assert [(t, pl) for t, pl, _ in got] == sent
    assert set(r.table) == {1, 2}  # the Resolver also asserts every alias is <= 2


def test_table_bounded_by_the_server_cap(start_broker):
    b = start_broker("[limits]\nmax_topic_alias_out = 3\n")
    s, r = subscriber(b, "sub", alias_max=100)
    r.alias_max = 3  # what the broker may use
    pub = b.connect("pub")
    sent = publish_rounds(pub, hot_topics(5), 5)
    got = receive(s, r, len(sent))
    assert [(t, pl) for t, pl, _ in got] == sent
    assert set(r.table) == {1, 2, 3}


def test_server_cap_zero_turns_aliases_off(start_broker):
    b = start_broker("[limits]\nmax_topic_alias_out = 0\n")
    s, r = subscriber(b, "sub", alias_max=100)
    pub = b.connect("pub")
    for i in range(5):
        pub.publish_acked(LONG, b"%d" % i)
    assert [kind(p) for _, _, p in receive(s, r, 5)] == ["full"] * 5


def test_lru_alias_goes_to_a_topic_sent_more_often_than_it_was_used(b):
    """One alias: A is sent 4 times (alias on the 1st, the table being empty; used 3 times);
    with the table full, B's sends are counted and its 5th (5 > 4) takes the alias; A then has
    to out-count B again."""
    s, r = subscriber(b, "sub", alias_max=1)
    pub = b.connect("pub")
    a, bt = "alias-out/topic-a/" + "a" * 40, "alias-out/topic-b/" + "b" * 40
    seq = [a] * 4 + [bt] * 6 + [a]
    for i, t in enumerate(seq):
        pub.publish_acked(t, b"%d" % i)
    got = receive(s, r, len(seq))
    assert [t for t, _, _ in got] == seq
    assert [kind(p) for _, _, p in got] == (
        ["assign", "alias", "alias", "alias"] + ["full"] * 4 + ["assign", "alias"] + ["full"])


def test_a_new_topic_every_time_assigns_only_the_free_aliases(b):
    """The first 16 topics take the 16 free aliases (3 bytes each, once); with the table full, a
    topic sent once takes no alias from another, so nothing more is spent."""
    s, r = subscriber(b, "sub", alias_max=16)
    plain, rp = subscriber(b, "plain")
    pub = b.connect("pub")
    topics = ["alias-out/once/%04d/%s" % (i, "o" * 30) for i in range(300)]
    for t in topics:
        pub.publish(t, b"x", qos=0)
    pub.ping()
    got = receive(s, r, len(topics))
    assert [t for t, _, _ in got] == topics
    assert [kind(p) for _, _, p in got] == ["assign"] * 16 + ["full"] * (300 - 16)
    assert [p.props.get("topic_alias") for _, _, p in got[:16]] == list(range(1, 17))
    assert [t for t, _, _ in receive(plain, rp, len(topics))] == topics
    assert r.bytes - rp.bytes == 16 * 3


def test_many_topics_round_robin_costs_no_more_than_without_aliases(b):
    """60 topics over 16 aliases: a subscriber without aliases is the yardstick."""
    s, r = subscriber(b, "sub", alias_max=16)
    plain, rp = subscriber(b, "plain")
    pub = b.connect("pub")
    topics = ["alias-out/many/%02d/%s" % (i, "m" * 60) for i in range(60)]
    sent = []
    for n in range(6):
        for t in topics:
            pub.publish(t, b"%d" % n, qos=0)
            sent.append((t, b"%d" % n))
    pub.ping()
    got = receive(s, r, len(sent))
    assert [(t, pl) for t, pl, _ in got] == sent
    assert [(t, pl) for t, pl, _ in receive(plain, rp, len(sent))] == sent
    assert len(r.table) == 16
    assert r.bytes < rp.bytes


def test_long_topics_save_bytes(b):
    s, r = subscriber(b, "sub", alias_max=16)
    plain, rp = subscriber(b, "plain")
    pub = b.connect("pub")
    topic = "alias-out/" + "l" * 190  # 200 bytes
    for i in range(50):
        pub.publish(topic, b"p" * 64, qos=0)
    pub.ping()
    assert [t for t, _, _ in receive(s, r, 50)] == [topic] * 50
    receive(plain, rp, 50)
    # A full PUBLISH is 270 bytes (a 2-byte remaining length); alias-only 72: the topic minus
    # the Topic Alias property (197) and one byte of remaining length. The assigning one (the
    # first) costs the property (3).
    assert rp.bytes == 50 * 270
    assert rp.bytes - r.bytes == 49 * 198 - 3


def test_reconnect_starts_with_an_empty_table_and_resends_carry_the_topic(b):
    """Unacknowledged QoS 1 PUBLISHes are resent (DUP) on the new connection, which knows no
    aliases: the first for each topic carries the topic name."""
    s = b.connect_persistent("psub", props={"topic_alias_maximum": 10})
    s.subscribe([("alias-out/#", 1)])
    r = Resolver(10)
    pub = b.connect("pub")
    topics = ["alias-out/re/%d/%s" % (i, "r" * 40) for i in range(3)]
    sent = publish_rounds(pub, topics, 4)
    first = [s.expect_publish(ack=False) for _ in sent]  # never acknowledged
    assert [r.resolve(p) for p in first] == [t for t, _ in sent]
    assert any(kind(p) == "alias" for p in first)
    s.close()
    s2 = b.connect_persistent("psub", props={"topic_alias_maximum": 10})
    assert s2.connack.session_present
    r2 = Resolver(10)
    again = receive(s2, r2, len(sent))
    assert [(t, pl) for t, pl, _ in again] == sent
    assert all(p.dup for _, _, p in again[:len(topics)])
    seen = set()
    for t, _, p in again:
        if t not in seen:
            assert p.topic == t, "first PUBLISH of %s on the new connection: %r" % (t, p)
            seen.add(t)


def test_takeover_starts_with_an_empty_table(b):
    s = b.connect_persistent("tsub", props={"topic_alias_maximum": 4})
    s.subscribe([("alias-out/#", 1)])
    r = Resolver(4)
    pub = b.connect("pub")
    for i in range(3):
        pub.publish_acked(LONG, b"%d" % i)
    assert [kind(p) for _, _, p in receive(s, r, 3)] == ["assign", "alias", "alias"]
    s2 = b.connect_persistent("tsub", props={"topic_alias_maximum": 4})  # s is taken over
    r2 = Resolver(4)
    for i in range(3):
        pub.publish_acked(LONG, b"n%d" % i)
    got = receive(s2, r2, 3)
    assert [(t, pl) for t, pl, _ in got] == [(LONG, b"n%d" % i) for i in range(3)]
    assert [kind(p) for _, _, p in got] == ["assign", "alias", "alias"]


def test_assignment_stays_within_the_clients_maximum_packet_size(b):
    """The client's Maximum Packet Size is exactly a full PUBLISH: assigning an alias would add
    3 bytes, so none is assigned and every message still arrives in full."""
    payload = b"q" * 32
    full = len(m.encode_publish(5, LONG, payload, qos=1, pid=1))
    s, r = subscriber(b, "sub", alias_max=4, props={"maximum_packet_size": full})
    pub = b.connect("pub")
    for _ in range(5):
        pub.publish_acked(LONG, payload)
    got = receive(s, r, 5)
    assert [kind(p) for _, _, p in got] == ["full"] * 5
    assert [t for t, _, _ in got] == [LONG] * 5


def test_retained_and_will_messages_use_aliases_too(b):
    pub = b.connect("pub")
    pub.publish_acked(LONG, b"retained", retain=True)
    s, r = subscriber(b, "sub", alias_max=4)
    w = b.connect("willer", will=m.Will(LONG, b"will", qos=1))
    got = receive(s, r, 1)
    assert [(t, pl, kind(p)) for t, pl, p in got] == [(LONG, b"retained", "assign")]
    w.close()  # no DISCONNECT: the will is published
    got = receive(s, r, 1)
    assert [(t, pl, kind(p)) for t, pl, p in got] == [(LONG, b"will", "alias")]


def _ws_tls_client(b, kind_, certs):
    if kind_ == "ws":
        from test_websocket import ws_raw
        c, _ = ws_raw(b)
    else:
        from test_tls import tls_raw
        c = tls_raw(b, certs)
    return c


@pytest.mark.parametrize("transport", ["ws", "tls"])
def test_websocket_and_tls_clients_get_aliases(start_broker, certs, transport):
    b = start_broker(extra_args=["--http", "127.0.0.1:0", "--mqtts", "127.0.0.1:0",
                                 "--tls-cert", str(certs / "server.pem"),
                                 "--tls-key", str(certs / "server.key")])
    s = _ws_tls_client(b, transport, certs)
    s.connect("sub-" + transport, props={"topic_alias_maximum": 5})
    s.subscribe([("alias-out/#", 1)])
    r = Resolver(5)
    pub = b.connect("pub")
    for i in range(5):
        pub.publish_acked(LONG, b"%d" % i)
    got = receive(s, r, 5)
    assert [(t, pl) for t, pl, _ in got] == [(LONG, b"%d" % i) for i in range(5)]
    assert [kind(p) for _, _, p in got] == ["assign", "alias", "alias", "alias", "alias"]


# ------------------------------------------------------------------ real clients

def test_paho_v5_sees_the_right_topic_on_every_message(b):
    """paho-mqtt 1.6 (Debian) passes alias-only PUBLISHes to the application with an empty
    topic and the Topic Alias in the properties: resolving them is the application's job once
    it offers a Topic Alias Maximum, and this is what it sees."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    props = Properties(PacketTypes.CONNECT)
    props.TopicAliasMaximum = 6
    sub = b.paho("paho-sub", version=5, props=props)
    sub.subscribe("alias-out/#", qos=1)
    pub = b.connect("pub")
    topics = ["alias-out/paho/%d/%s" % (i, "p" * 50) for i in range(3)]
    sent = publish_rounds(pub, topics, 8)
    table, kinds, got = {}, [], []
    for _ in sent:
        msg = sub.get()
        alias = getattr(msg.properties, "TopicAlias", None)
        topic = msg.topic
        if alias is not None:
            assert 1 <= alias <= 6, alias
            if topic:
                table[alias] = topic
                kinds.append("assign")
            else:
                assert alias in table, "alias %d never set" % alias
                topic = table[alias]
                kinds.append("alias")
        else:
            kinds.append("full")
        got.append((topic, msg.payload))
    assert got == sent
    assert kinds == ["assign"] * 3 + ["alias"] * (len(sent) - 3), kinds


MQTTJS_TRANSPORTS = {"tcp": ("mqtt", "mqtt", "", False), "wss": ("https", "wss", "/mqtt", True)}


@pytest.mark.parametrize("transport", list(MQTTJS_TRANSPORTS))
def test_mqttjs_resolves_every_alias_to_the_right_topic(start_broker, certs, transport):
    import json
    import os
    import subprocess

    import jsdeps
    node = jsdeps.node()
    b = start_broker(extra_args=jsdeps.all_listeners_args(str(certs)))
    kind_, scheme, path, needs_ca = MQTTJS_TRANSPORTS[transport]
    url = "%s://%s%s" % (scheme, jsdeps.listener(b, kind_), path)
    argv = [node, os.path.join(jsdeps.JS_DIR, "mqttjs_topic_alias.js"), url, "--alias-max", "8",
            "--topics", "12", "--rounds", "10"]
    if needs_ca:
        argv += ["--ca", str(certs / "ca.pem")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    lines = r.stdout.strip().splitlines()
    assert lines, "no output (exit %d): %s" % (r.returncode, r.stderr)
    result = json.loads(lines[-1])
    assert r.returncode == 0 and result["ok"] is True, (result, r.stderr)
    assert result["received"] == 120
    # 12 topics round robin over 8 aliases: the first 8 take the free aliases on their first
    # message and are alias-only from then on (the other 4 are never sent more often).
    assert result["alias_set"] >= 8 and result["alias_only"] >= 8 * 9, result
