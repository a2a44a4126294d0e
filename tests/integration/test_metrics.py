"""GET /metrics as a Prometheus server and a Grafana user expect it (docs/OBSERVABILITY.md
"Metrics"): the exact content type, HELP and TYPE for every family, the standard process_*
metrics, ledgermq_build_info and uptime, a commit latency histogram with 0.1 ms .. 10 s buckets,
authentication failures by reason; and contrib/grafana/ledgermq.json queries only metrics a
running broker serves.
"""

import base64
import hashlib
import json
import os
import re
import time
import urllib.request

import pytest

import mqttraw

pytestmark = pytest.mark.ledgermq_only

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
           "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                         "grafana", "ledgermq.json")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def http_broker(start_broker, *args):
    return start_broker(extra_args=["--http", "127.0.0.1:0"] + list(args))


def get(b, path):
    addr = b.events("ready")[-1]["http"][0]
    with urllib.request.urlopen("http://%s%s" % (addr, path), timeout=10) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def parse(text):
    """{family: {"help": str, "type": str}}, [(name, labels, value)]."""
    families, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, "two HELP lines for %s" % name
            families[name] = {"help": help_text}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in families and "type" not in families[name], line
            families[name]["type"] = kind
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            samples.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return families, samples


def family_of(name, families):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and families.get(name[:-len(suffix)], {}).get("type") == \
                "histogram":
            return name[:-len(suffix)]
    return name


def value(samples, name, labels=""):
    got = [v for n, l, v in samples if n == name and l == labels]
    assert len(got) == 1, (name, labels, got)
    return got[0]


def test_metrics_text_is_exact_prometheus_format(start_broker):
    b = http_broker(start_broker)
    ctype, text = get(b, "/metrics")
    assert ctype == CONTENT_TYPE
    families, samples = parse(text)
    for name, fam in families.items():
        assert fam["help"].strip() and fam.get("type") in ("counter", "gauge", "histogram"), name
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
    for name, _, _ in samples:
        assert family_of(name, families) in families, "sample without HELP/TYPE: %s" % name


def test_process_build_and_uptime_metrics(start_broker):
    before = time.time()
    b = http_broker(start_broker)
    _, text = get(b, "/metrics")
    _, samples = parse(text)
    _, version = get(b, "/version")
    assert value(samples, "ledgermq_build_info",
                 '{version="%s"}' % json.loads(version)["version"]) == 1
    assert 0 <= value(samples, "ledgermq_uptime_seconds") < 120
    start = value(samples, "process_start_time_seconds")
    assert before - 60 < start <= time.time() + 1, (before, start)
    assert value(samples, "process_resident_memory_bytes") > 1 << 20
    assert value(samples, "process_virtual_memory_bytes") >= \
        value(samples, "process_resident_memory_bytes")
    assert value(samples, "process_cpu_seconds_total") >= 0
    with open("/proc/%d/limits" % b.proc.pid) as f:
        soft = [line.split()[3] for line in f if line.startswith("Max open files")][0]
    assert value(samples, "process_max_fds") == float(soft)
    fds = len(os.listdir("/proc/%d/fd" % b.proc.pid))
    assert abs(value(samples, "process_open_fds") - fds) <= 3, fds


def test_commit_latency_histogram_has_the_usual_buckets(start_broker):
    b = http_broker(start_broker)
    c = b.connect("metrics-commits", version=5)
    for i in range(20):
        c.publish_acked("m/t/%d" % i, b"%d" % i, qos=1, retain=True)  # stored: a commit each
    _, text = get(b, "/metrics")
    families, samples = parse(text)
    assert families["ledgermq_store_commit_seconds"]["type"] == "histogram"
    buckets = [(l, v) for n, l, v in samples if n == "ledgermq_store_commit_seconds_bucket"]
    assert [l for l, _ in buckets] == ['{le="%s"}' % le for le in BUCKETS]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), counts  # cumulative
    commits = value(samples, "ledgermq_store_commits_total")
    assert commits >= 1 and counts[-1] == commits
    assert value(samples, "ledgermq_store_commit_seconds_count") == commits
    assert value(samples, "ledgermq_store_batches_total") >= commits  # one or more per commit


def test_auth_failures_are_counted_by_reason(start_broker, tmp_path):
    salt = os.urandom(16)
    h = hashlib.scrypt(b"pw", salt=salt, n=16, r=1, p=1, dklen=32)
    pw = tmp_path / "passwd"
    pw.write_text("alice:$scrypt$N=16,r=1,p=1$%s$%s\n" % (base64.b64encode(salt).decode(),
                                                          base64.b64encode(h).decode()))
    b = http_broker(start_broker, "--password-file", str(pw))
    for _ in range(2):
        c = b.raw(5)
        assert c.connect("m-bad", username="alice", password=b"nope", check=False).rc == 0x86
        c.close()
    b.wait_event("security", pred=lambda e: e.get("kind") == "bad_password")
    deadline = time.monotonic() + 5
    while b.metric("ledgermq_auth_failures_total", '{reason="bad_password"}') < 2:
        assert time.monotonic() < deadline, "bad_password not counted twice"
        time.sleep(0.1)
    assert b.metric("ledgermq_auth_failures_total", '{reason="bad_token"}') == 0
    assert b.metric("ledgermq_security_events_total", '{kind="bad_password"}') == 2


def dashboard_exprs(doc):
    out = []
    for p in doc["panels"]:
        out.extend(t["expr"] for t in p.get("targets", []))
    for v in doc["templating"]["list"]:
        if v["type"] == "query":
            out.append(v["definition"])
    return out


def test_grafana_dashboard_queries_only_served_metrics(start_broker):
    with open(DASHBOARD) as f:
        doc = json.load(f)
    assert [v["name"] for v in doc["templating"]["list"] if v["type"] == "datasource"] == \
        ["datasource"]
    assert doc["uid"] and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    b = http_broker(start_broker)
    c = b.connect("metrics-dash", version=5)
    c.publish_acked("d/t", b"x", qos=1)
    _, text = get(b, "/metrics")
    _, samples = parse(text)
    served = {n for n, _, _ in samples}
    used = set()
    for expr in dashboard_exprs(doc):
        used.update(re.findall(r"\b((?:ledgermq|process)_[a-z0-9_]+)", expr))
    assert len(used) >= 30, used
    missing = sorted(used - served)
    assert not missing, "the dashboard queries metrics /metrics does not serve: %s" % missing
