"""Security finding 14 (docs/SECURITY.md, "Trust boundaries"): loopback is anonymous by
default, so neither a web page opened on the broker's host nor an internet client behind a
reverse proxy on that host may count as loopback.

- A browser always sends Origin with a WebSocket upgrade. An upgrade whose Origin is not in
  [http] allowed_origins is accepted, but the connection is never "loopback": without
  credentials its CONNECT is refused (0x87 / 5); with credentials it works.
- X-Forwarded-For is believed only from [http] trusted_proxies; then the forwarded client is
  the connection's address (logged as remote, the proxy as via, counted per address) and it is
  loopback only if that address is.
- The same for MQTT over TCP from [server] proxy_protocol peers, whose connections start with a
  PROXY protocol (v1 or v2) header.

The attacks run from the raw WebSocket client (wsclient.py) and, for the web page, from a real
headless Chromium loading a page from another origin."""

import socket
import struct

import pytest

import ledgerclient as lc
import mqttraw as m
import wsclient as ws
from test_browser import page_server, page_url, run_page  # noqa: F401 - fixture re-used
from test_tls import client_ctx, tls_broker
from test_tls import listener as tls_listener
import jsdeps

pytestmark = pytest.mark.ledgermq_only

EVIL = "http://evil.example"
APP = "https://app.example.com"
INTERNET = "203.0.113.7"  # TEST-NET-3: an address no test machine has


def refused_rc(version):
    return 0x87 if version == 5 else 0x05  # Not authorized


def http_addr(b):
    return b.events("ready")[-1]["http"][0]


def ws_client(b, version=5, origin=None, headers=None, source=None):
    """An MQTT client over a WebSocket upgraded with these headers (no CONNECT sent yet)."""
    host, _, port = http_addr(b).rpartition(":")
    conn = ws.WsConn(host, int(port), source=source)
    b._clients.append(conn)
    conn.upgrade(origin=origin, headers=headers)
    c = m.RawClient(None, version=version, sock=conn.as_socket())
    b._clients.append(c)
    return c


def http_broker(start_broker, config=""):
    return start_broker(config or None, extra_args=["--http", "127.0.0.1:0"])


def assert_refused_as(b, c, version, remote):
    ack = c.connect("", check=False)
    assert ack.rc == refused_rc(version), ack
    ev = b.wait_event("security", pred=lambda e: e.get("kind") == "anonymous_refused")
    assert ev["remote"] == remote, ev
    ev = b.wait_event("connect_refused")  # the connection's own line also names the proxy
    assert ev["remote"] == remote, ev
    return ev


# ------------------------------------------------------------------ browsers (Origin)
def test_page_from_foreign_origin_gets_no_anonymous_loopback_access(start_broker, version):
    b = http_broker(start_broker)
    c = ws_client(b, version, origin=EVIL)
    ack = c.connect("evil-page", check=False)
    assert ack.rc == refused_rc(version), ack
    ev = b.wait_event("ws_origin_not_allowed")
    assert ev["origin"] == EVIL, ev
    b.wait_event("security", pred=lambda e: e.get("kind") == "anonymous_refused")
    assert not b.events("client_connected")


def test_allowed_origin_keeps_anonymous_loopback_access(start_broker, version):
    b = http_broker(start_broker, "[http]\nallowed_origins = %s, http://127.0.0.1:8080\n" % APP)
    # Origins compare case-insensitively, as browsers serialise them in lower case anyway.
    c = ws_client(b, version, origin=APP.upper().replace("HTTPS://", "https://"))
    c.connect("app-page")
    c.subscribe([("o/t", 1)])
    c.publish_acked("o/t", b"hi")
    assert c.expect_publish().payload == b"hi"
    # The list is exact: another port of the same host is another origin.
    other = ws_client(b, version, origin="http://127.0.0.1:8081")
    assert other.connect("other-page", check=False).rc == refused_rc(version)


def test_client_without_origin_stays_anonymous_on_loopback(start_broker, version):
    """Not a browser (no Origin): loopback is anonymous as before."""
    b = http_broker(start_broker)
    c = ws_client(b, version)
    c.connect("local-tool")
    c.ping()


def test_broker_own_origin_is_not_foreign_but_a_rebound_name_is(start_broker):
    """Programs like paho-mqtt send Origin https://HOST:PORT naming the broker itself: that is
    the broker's own origin (it serves no pages), so loopback stays anonymous. A DNS-rebinding
    page has its own host name in its origin (and in Host): foreign."""
    b = http_broker(start_broker)
    port = http_addr(b).rpartition(":")[2]
    for own in ("https://127.0.0.1:%s" % port, "http://localhost:%s" % port):
        c = ws_client(b, 5, origin=own)
        c.connect("own-%s" % own.split(":")[0])
    rebound = "http://rebind.example:%s" % port
    c = ws_client(b, 5, origin=rebound)
    assert c.connect("rebound", check=False).rc == 0x87
    assert b.wait_event("ws_origin_not_allowed")["origin"] == rebound


def test_two_origin_fields_are_not_an_allowed_origin(start_broker):
    b = http_broker(start_broker, "[http]\nallowed_origins = %s\n" % APP)
    c = ws_client(b, 5, headers=[("Origin", APP), ("Origin", EVIL)])
    assert c.connect("two-origins", check=False).rc == 0x87


def test_foreign_origin_with_credentials_is_accepted(start_broker):
    """The Origin check takes away only what the socket's address gave: a page that holds a
    login token (its own credentials) connects from any origin."""
    b = http_broker(start_broker)
    ident = lc.Identity()
    token = lc.login(http_addr(b), ident)
    c = ws_client(b, 5, origin=EVIL)
    c.connect("token-page", username=ident.id, password=token)
    c.ping()


def test_real_browser_page_from_foreign_origin_is_refused(start_broker, page_server,  # noqa: F811
                                                          tmp_path):
    """The attack itself: headless Chromium opens a page from another origin (here another
    port on 127.0.0.1) that connects to the broker's ws://127.0.0.1/mqtt without credentials."""
    b = http_broker(start_broker)
    url = page_url(page_server, "ws://%s/mqtt" % jsdeps.listener(b, "http"), "evil-browser")
    result = run_page(tmp_path, url)
    assert result.get("ok") is False, result
    assert "authorized" in result.get("error", "").lower(), result
    ev = b.wait_event("ws_origin_not_allowed")
    assert ev["origin"] == page_server, ev
    assert not [e for e in b.events("client_connected") if e.get("client_id") == "evil-browser"]


# ------------------------------------------------------------------ reverse proxies
def test_forwarded_for_from_untrusted_peer_is_ignored(start_broker, version):
    # 127.0.0.2 is the proxy; this client connects from 127.0.0.1 and claims to be elsewhere.
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.2\n")
    c = ws_client(b, version, headers=[("X-Forwarded-For", INTERNET)])
    c.connect("claims-internet")
    ev = b.wait_event("client_connected")
    assert ev["remote"].startswith("127.0.0.1:") and "via" not in ev, ev
    # Nor does a header make an untrusted non-loopback peer loopback: the address decides.
    c2 = ws_client(b, version, headers=[("X-Forwarded-For", "10.1.2.3")], source="127.0.0.3")
    c2.connect("claims-lan")
    ev = b.wait_event("client_connected", pred=lambda e: e.get("client_id") == "claims-lan")
    assert ev["remote"].startswith("127.0.0.3:"), ev


def test_internet_client_behind_trusted_proxy_is_not_loopback(start_broker, version):
    """A reverse proxy on the broker's host connects from 127.0.0.1 for everyone: the client
    it names is the address, and that address is not loopback."""
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.1\n")
    c = ws_client(b, version, headers=[("X-Forwarded-For", INTERNET)])
    ev = assert_refused_as(b, c, version, INTERNET)
    assert ev["via"].startswith("127.0.0.1:"), ev


def test_spoofed_forwarded_for_before_the_proxy_entry_is_not_believed(start_broker):
    """The client sent "X-Forwarded-For: 127.0.0.1" and the proxy appended the address it saw,
    in the same field or a field of its own: the rightmost untrusted entry is the client."""
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8\n")
    c = ws_client(b, 5, headers=[("X-Forwarded-For", "127.0.0.1, %s, 10.9.8.7" % INTERNET)])
    assert_refused_as(b, c, 5, INTERNET)
    c2 = ws_client(b, 5, headers=[("X-Forwarded-For", "127.0.0.1"),
                                  ("X-Forwarded-For", INTERNET + ":4711")])
    assert c2.connect("", check=False).rc == 0x87


def test_trusted_proxy_without_forwarded_for_is_not_loopback(start_broker):
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.1\n")
    c = ws_client(b, 5)
    assert_refused_as(b, c, 5, "unknown")


def test_local_client_through_trusted_proxy_stays_loopback(start_broker):
    """The proxy says the client is on loopback itself: loopback it is (no Origin)."""
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.1\n")
    c = ws_client(b, 5, headers=[("X-Forwarded-For", "127.0.0.9")])
    c.connect("local-via-proxy")
    ev = b.wait_event("client_connected")
    assert ev["remote"] == "127.0.0.9" and ev["via"].startswith("127.0.0.1:"), ev


def test_garbage_forwarded_for_from_trusted_proxy_is_400(start_broker):
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.1\n")
    host, _, port = http_addr(b).rpartition(":")
    conn = ws.WsConn(host, int(port))
    b._clients.append(conn)
    r = conn.request(headers=[("X-Forwarded-For", "%s, unknown" % INTERNET)])
    assert r.status == 400, r
    assert b'"error":400' in r.body, r
    c = ws_client(b, 5, headers=[("X-Forwarded-For", "%s, 127.0.0.1" % INTERNET)])
    assert_refused_as(b, c, 5, INTERNET)  # trusted entries on the right are skipped


def test_per_address_limit_counts_the_forwarded_client(start_broker):
    """Behind a proxy every client shares the proxy's socket address: the per-address limits
    must count the client the proxy names, or one client could lock out everyone."""
    b = http_broker(start_broker, "[http]\ntrusted_proxies = 127.0.0.1\n"
                    "[auth]\nanonymous = always\n"
                    "[limits]\nmax_connections_per_address = 1\n")
    first = ws_client(b, 5, headers=[("X-Forwarded-For", "198.51.100.1")])
    first.connect("a1")
    other = ws_client(b, 5, headers=[("X-Forwarded-For", "198.51.100.2")])
    other.connect("b1")  # another client: its own count
    again = ws_client(b, 5, headers=[("X-Forwarded-For", "198.51.100.1")])
    assert again.connect("a2", check=False).rc == 0x97  # the same client's second connection


# ------------------------------------------------------------------ PROXY protocol (MQTT/TCP)
PROXY_CONFIG = "[server]\nproxy_protocol = 127.0.0.1\n"


def proxied(b, header, version=5, source=None):
    """An MQTT client over TCP whose first bytes are header (a PROXY protocol header)."""
    s = socket.create_connection((b.host, b.port), timeout=5,
                                 source_address=(source, 0) if source else None)
    s.sendall(header)
    c = m.RawClient(b.port, version=version, sock=s)
    b._clients.append(c)
    return c


def v2_header(src, sport, command=0x21, family=0x11):
    addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 1883)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, family]) + struct.pack("!H", len(addrs))
            + addrs)


def test_proxy_protocol_v1_client_elsewhere_is_not_loopback(start_broker, version):
    b = start_broker(PROXY_CONFIG)
    c = proxied(b, b"PROXY TCP4 %s 127.0.0.1 4711 1883\r\n" % INTERNET.encode(), version)
    ev = assert_refused_as(b, c, version, INTERNET + ":4711")
    assert ev["via"].startswith("127.0.0.1:"), ev


def test_proxy_protocol_v2_loopback_client_stays_anonymous(start_broker):
    b = start_broker(PROXY_CONFIG)
    c = proxied(b, v2_header("127.0.0.5", 5555))
    c.connect("local-via-tcp-proxy")
    ev = b.wait_event("client_connected")
    assert ev["remote"] == "127.0.0.5:5555" and ev["via"].startswith("127.0.0.1:"), ev


def test_proxy_protocol_local_command_is_not_loopback(start_broker):
    """v2 LOCAL (the proxy's own health check) names no client: unknown, not loopback."""
    b = start_broker(PROXY_CONFIG)
    c = proxied(b, v2_header("0.0.0.0", 0, command=0x20, family=0x00))
    assert_refused_as(b, c, 5, "unknown")


def test_proxy_protocol_header_is_required_from_a_listed_peer(start_broker):
    b = start_broker(PROXY_CONFIG)
    c = proxied(b, b"")
    c.send_raw(m.encode_connect(5, "no-header"))
    c.expect_close(timeout=5)
    b.wait_event("proxy_header_invalid")
    assert not b.events("client_connected")


def test_proxy_protocol_header_from_unlisted_peer_is_not_believed(start_broker):
    """Only listed peers speak the PROXY protocol: from anyone else the header is just bytes
    that are not MQTT, and the connection is closed without a CONNECT."""
    b = start_broker("[server]\nproxy_protocol = 127.0.0.2\n")
    c = proxied(b, b"PROXY TCP4 127.0.0.9 127.0.0.1 4711 1883\r\n")
    try:
        c.send_raw(m.encode_connect(5, "forged"))
    except m.Closed:
        pass
    c.expect_close(timeout=5)
    assert not b.events("client_connected")
    # The listed peer (127.0.0.2) is believed.
    ok = proxied(b, b"PROXY TCP4 127.0.0.9 127.0.0.1 4711 1883\r\n", source="127.0.0.2")
    ok.connect("via-listed-proxy")
    ev = b.wait_event("client_connected")
    assert ev["remote"] == "127.0.0.9:4711", ev


def test_proxy_protocol_per_address_limit_counts_the_client(start_broker):
    b = start_broker(PROXY_CONFIG + "[auth]\nanonymous = always\n"
                     "[limits]\nmax_connections_per_address = 1\n")
    proxied(b, v2_header("198.51.100.1", 1)).connect("a1")
    proxied(b, v2_header("198.51.100.2", 2)).connect("b1")
    again = proxied(b, v2_header("198.51.100.1", 3))
    assert again.connect("a2", check=False).rc == 0x97


def test_proxy_protocol_before_tls_on_mqtts(start_broker, certs):  # noqa: F811
    """On the MQTT-over-TLS listener the header comes before the TLS handshake; a client
    certificate still names its client."""
    b = tls_broker(start_broker, certs, PROXY_CONFIG, client_cert="optional")
    host, port = tls_listener(b, "mqtts")

    def over_tls(who=None):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"PROXY TCP4 %s 127.0.0.1 4711 %d\r\n" % (INTERNET.encode(), port))
        c = m.RawClient(None, version=5, sock=client_ctx(certs, who).wrap_socket(
            s, server_hostname=host))
        b._clients.append(c)
        return c

    assert_refused_as(b, over_tls(), 5, INTERNET + ":4711")
    c = over_tls("client")
    c.connect("alice-via-proxy")
    ev = b.wait_event("client_connected")
    assert ev["remote"] == INTERNET + ":4711", ev
