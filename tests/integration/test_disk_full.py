"""A data directory that runs out of space: the broker refuses before the disk is
full (min_free_disk), and when the disk does fill up it stops (exit 2) without
losing anything it acknowledged.

Uses a small tmpfs mounted on the test's data directory, so it needs root (the
CI machine runs as root); it fails, never skips, without it.
"""

import os
import subprocess

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

TOPIC = "full/t"
PAYLOAD_BYTES = 64 * 1024


def mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", path],
                   check=True)


def resize_tmpfs(path, size_mb):
    subprocess.run(["mount", "-o", "remount,size=%dm" % size_mb, path], check=True)


@pytest.fixture
def small_disk(tmp_path):
    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (CI does)"
    path = str(tmp_path / "disk")
    mount_tmpfs(path, 12)
    yield path
    subprocess.run(["umount", "-l", path], check=False)


def payload(i):
    head = b"%08d" % i
    return head + bytes([i % 251]) * (PAYLOAD_BYTES - len(head))


def persistent_subscriber(b, client_id):
    c = b.connect_persistent(client_id, 5, clean=True, expiry_s=600)
    assert c.subscribe([(TOPIC, 1)]).rcs == [1]
    c.disconnect()


def publish_until_refused_or_gone(b, limit):
    """Publishes QoS 1 one at a time. Returns (acked indexes, first refusal rc or None,
    connection lost?)."""
    c = b.raw(5)
    c.connect("filler")
    acked = []
    for i in range(limit):
        try:
            pid = c.publish(TOPIC, payload(i), qos=1)
            ack = c.expect(m.PUBACK, timeout=15)
        except (m.Timeout, m.Closed, ConnectionError, OSError):
            return acked, None, True
        assert ack.pid == pid, ack
        if ack.rc >= 0x80:
            return acked, ack.rc, False
        acked.append(i)
    return acked, None, False


def drain(b, client_id, count):
    c = b.connect_persistent(client_id, 5, clean=False, expiry_s=600)
    assert c.connack.session_present
    got = [int(p.payload[:8]) for p in c.publishes(count, timeout=20)]
    return got


def test_low_free_space_refuses_with_quota_exceeded_and_keeps_serving(start_broker, small_disk):
    # 12 MiB disk, refuse below 6 MiB free: the broker must say 0x97 long before ENOSPC.
    b = start_broker(config_text="[limits]\nmin_free_disk = 6291456\n"
                                 "max_queued_bytes = 1000000000\n",
                     data_dir=small_disk)
    persistent_subscriber(b, "reader")
    acked, refused_rc, lost = publish_until_refused_or_gone(b, 400)
    assert not lost, "the broker dropped the connection instead of refusing"
    assert refused_rc == 0x97, "refused with 0x%02x" % refused_rc
    assert acked, "nothing was accepted before the refusal"
    assert b.alive()
    b.wait_event("disk_low", timeout=5)
    # Everything accepted is delivered, in order.
    assert drain(b, "reader", len(acked)) == acked


def test_disk_full_stops_the_broker_and_loses_nothing_acknowledged(start_broker, small_disk):
    # No threshold: writes reach ENOSPC; fail stop (exit 2), then recovery on a bigger disk.
    b = start_broker(config_text="[limits]\nmin_free_disk = 0\n"
                                 "max_queued_bytes = 1000000000\n",
                     data_dir=small_disk)
    persistent_subscriber(b, "reader")
    acked, refused_rc, lost = publish_until_refused_or_gone(b, 400)
    assert refused_rc is None, "refused with 0x%02x although min_free_disk = 0" % (
        refused_rc or 0)
    assert lost, "400 x 64 KiB fitted on a 12 MiB disk?"
    b.wait_exit(2, timeout=15)
    assert b.events("store_failure"), "exit 2 without a store_failure log line"
    assert acked, "the disk filled before anything was acknowledged"
    resize_tmpfs(small_disk, 256)
    b.restart()
    got = drain(b, "reader", len(acked))
    assert got[:len(acked)] == acked, "acknowledged messages lost after disk full"
