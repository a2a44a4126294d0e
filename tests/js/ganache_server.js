// A ganache (npm) node for the Ethereum tests (tests/integration/ganache.py): deterministic
// accounts from a fixed mnemonic, instant mining, on 127.0.0.1 and a free port. Prints one JSON
// line {"port": N, "accounts": [...], "keys": [...]} (keys: the accounts' private keys) once it
// listens. Stops by itself when stdin closes (the test process went away), on SIGTERM, or after
// --max-seconds.
//   node ganache_server.js [--chain-id N] [--accounts N] [--max-seconds N] [--block-time S]
"use strict";
const ganache = require("ganache");

const MNEMONIC = "test test test test test test test test test test test junk";
const args = process.argv.slice(2);
function opt(name, dflt) {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
}

async function main() {
    const blockTime = opt("--block-time", 0);
    const server = ganache.server({
        chain: { chainId: opt("--chain-id", 1337) },
        wallet: { mnemonic: MNEMONIC, totalAccounts: opt("--accounts", 5) },
        miner: blockTime > 0 ? { blockTime } : { instamine: "eager" },
        logging: { quiet: true },
    });
    await server.listen(0, "127.0.0.1");
    const accounts = await server.provider.request({ method: "eth_accounts", params: [] });
    const initial = server.provider.getInitialAccounts();
    const keys = accounts.map((a) => initial[a].secretKey);
    process.stdout.write(JSON.stringify({ port: server.address().port, accounts, keys }) + "\n");
    const stop = () => server.close().finally(() => process.exit(0));
    process.stdin.on("end", stop);
    process.stdin.on("error", stop);
    process.stdin.resume();
    process.on("SIGTERM", stop);
    setTimeout(stop, opt("--max-seconds", 600) * 1000).unref();
}

main().catch((e) => {
    process.stderr.write("ganache_server: " + (e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
});
