"""Chain follower measurements for docs/BENCHMARKS.md (not a test: run it by path,
`cd tests/integration && LEDGERMQ_BIN=$PWD/../../build/ledgermq /usr/bin/python3 -m pytest -q -s
bench_chain_catchup.py`). Against ganache (instant mining): catch-up of 2,000 blocks from block 0
with headers only, then again with a watch on a contract that emitted 300 logs (blocks/s, logs/s,
from the broker's ready line to the stored tip at the node's head), then block-to-inbox latency
of 20 transfers one at a time with poll_ms = 100 (from eth_sendTransaction's answer: the block
is mined, to the notification on the watcher's MQTT session)."""

import sqlite3
import statistics
import time

import dataclient as dc
import ledgerclient as lc
from ganache import start_ganache
from test_chain_follow import (TRANSFER_INITCODE, chain_envelopes, config, send_env, server_id,
                               stored_headers)

LOGS = 300
EMPTY_BLOCKS = 1700


def catch_up(b, head):
    t0 = time.monotonic()
    while not stored_headers(b) or stored_headers(b)[-1][0] < head:
        time.sleep(0.01)
    return time.monotonic() - t0


def test_chain_catch_up_and_notification_latency(start_broker):
    g = start_ganache()
    try:
        _, contract = g.deploy(TRANSFER_INITCODE)
        for i in range(LOGS):
            g.send_tx(to=contract, data="0x" + "00" * 31 + "01" + "%064x" % i)
        g.mine(EMPTY_BLOCKS)
        head = g.block_number()
        b = dc.ready_addresses(start_broker(config(g, start_block=0, batch_blocks=100)))
        t = catch_up(b, head)
        print("\nheaders only: %d blocks in %.2f s = %.0f blocks/s" % (head + 1, t, (head + 1) / t))
        # The same walk with the watch stored: the watch goes in, the headers out, restart at 0.
        s = dc.session(b, lc.Identity())
        assert send_env(s, server_id(b), {"address": contract}, "ledgermq.chain.watch")[0] == "ack"
        s.close()
        b.terminate()
        conn = sqlite3.connect("%s/ledgermq.db" % b.data_dir)
        conn.execute("DELETE FROM chain_headers")
        conn.commit()
        conn.close()
        b.restart()
        t = catch_up(b, head)
        logs = len([x for x in chain_envelopes(b) if x[0] == "ledgermq.chain.log"])
        assert logs == LOGS, logs
        print("with a watch: %d blocks, %d logs notified in %.2f s = %.0f blocks/s, %.0f logs/s"
              % (head + 1, logs, t, (head + 1) / t, logs / t))
        b.terminate()
        b2 = dc.ready_addresses(start_broker(config(g, poll_ms=100)))
        ident = lc.Identity()
        s = dc.session(b2, ident)
        assert send_env(s, server_id(b2), {"address": contract}, "ledgermq.chain.watch")[0] == "ack"
        lat = []
        for i in range(20):
            g.send_tx(to=contract, data="0x" + "00" * 31 + "02" + "%064x" % i)
            t0 = time.monotonic()
            while s.expect("inbox", timeout=10)["envelope"]["type"] != "ledgermq.chain.log":
                pass  # a confirmed notice of an earlier transfer
            lat.append((time.monotonic() - t0) * 1000)
        s.close()
        print("block to inbox, poll_ms = 100: p50 %.0f ms, max %.0f ms (20 transfers)"
              % (statistics.median(lat), max(lat)))
    finally:
        g.stop()
