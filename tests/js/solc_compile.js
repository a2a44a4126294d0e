// Compiles one Solidity source with npm solc (the version in package-lock.json) for the tests:
// stdin {"source": "...", "contract": "Name"}; stdout {"bytecode": "0x...", "abi": [...]}.
// EVM version shanghai: what ganache 7 runs. Exit 1 with the compiler's errors on stderr when it does not compile.
"use strict";
const solc = require("solc");

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
    const req = JSON.parse(input);
    const out = JSON.parse(
        solc.compile(
            JSON.stringify({
                language: "Solidity",
                sources: { "c.sol": { content: req.source } },
                settings: { evmVersion: "shanghai", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
            }),
        ),
    );
    const errors = (out.errors || []).filter((e) => e.severity === "error");
    if (errors.length > 0) {
        process.stderr.write(errors.map((e) => e.formattedMessage).join("\n"));
        process.exit(1);
    }
    const c = out.contracts["c.sol"][req.contract];
    process.stdout.write(JSON.stringify({ bytecode: "0x" + c.evm.bytecode.object, abi: c.abi }));
});
