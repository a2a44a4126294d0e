// The chain follower's catch-up walk done by ethers.js 6 (scripts/bench-chain.py): from block 0
// to the node's head, batch blocks at a time, every header (eth_getBlockByNumber, all of a range
// issued at once so JsonRpcProvider sends them as one JSON-RPC batch, with its default batching
// options) checked to link to the one before, then eth_getLogs over the same range for one
// address. Keeps nothing but counts. Prints one JSON line:
//   {"blocks": N, "logs": M, "seconds": S, "head": H, "ranges": R}
// where seconds runs from the first request (eth_blockNumber) to the last range's logs.
// STALL_MS: JsonRpcProvider's batchStallTime (how long it waits to gather a batch; ethers'
// default 10 when not given).
//   node chain_walk.js URL ADDRESS BATCH_BLOCKS [CHAIN_ID [STALL_MS]]
"use strict";
const { JsonRpcProvider, Network } = require("ethers");

const RANGES_MAX = 1000000; // a bound on the walk: 1e6 ranges is far past any bench chain

async function main() {
    const [url, address, batchArg, chainArg, stallArg] = process.argv.slice(2);
    const batch = Number(batchArg);
    const stall = stallArg === undefined ? 10 : Number(stallArg);
    if (!url || !/^0x[0-9a-fA-F]{40}$/.test(address || "") || !(batch >= 1 && batch <= 1000) ||
        !(stall >= 0 && stall <= 1000)) {
        throw new Error(
            "usage: node chain_walk.js URL ADDRESS BATCH_BLOCKS(1..1000) [CHAIN_ID [STALL_MS]]");
    }
    // A static network: no eth_chainId before every request (the follower asks once too).
    const network = Network.from(Number(chainArg || 1337));
    const provider = new JsonRpcProvider(url, network, {
        staticNetwork: network,
        batchStallTime: stall,
        batchMaxCount: Math.max(batch, 100), // ethers' default 100, or the whole range
    });
    const t0 = process.hrtime.bigint();
    const head = await provider.getBlockNumber();
    let blocks = 0;
    let logs = 0;
    let ranges = 0;
    let parent = null;
    for (let first = 0; first <= head; first += batch) {
        if (++ranges > RANGES_MAX) throw new Error("too many ranges");
        const last = Math.min(first + batch - 1, head);
        const asks = [];
        for (let n = first; n <= last; n++) asks.push(provider.getBlock(n));
        const got = await Promise.all(asks);
        for (const b of got) {
            if (b === null) throw new Error("a block below the head is missing");
            if (parent !== null && b.parentHash !== parent) {
                throw new Error("block " + b.number + " does not link to its parent");
            }
            parent = b.hash;
            blocks++;
        }
        const found = await provider.getLogs({ address, fromBlock: first, toBlock: last });
        logs += found.length;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    provider.destroy();
    process.stdout.write(JSON.stringify({ blocks, logs, seconds, head, ranges }) + "\n");
}

main().catch((e) => {
    process.stderr.write("chain_walk: " + (e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
});
