// Command lines of the MQTT.js test programs: one URL plus `--name value` options. A usage
// error prints {"ok": false, "error": "usage: ..."} as the one JSON line and exits 2.
'use strict';

function usage(msg) {
    process.stdout.write(JSON.stringify({ ok: false, error: 'usage: ' + msg }) + '\n');
    process.exit(2);
}

// defaults: the options object (url: null is set from the one positional argument);
// ints / strs: flag -> option name, for non-negative integers / strings.
function parseArgs(argv, defaults, ints, strs) {
    const opts = Object.assign({ url: null }, defaults);
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a in ints || a in strs) {
            if (i + 1 >= argv.length) usage(a + ' needs a value');
            const v = argv[++i];
            if (a in ints) {
                if (!/^[0-9]+$/.test(v)) usage(a + ' needs a non-negative integer, not ' + v);
                opts[ints[a]] = Number(v);
            } else {
                opts[strs[a]] = v;
            }
        } else if (a.startsWith('--')) {
            usage('unknown option ' + a);
        } else if (opts.url === null) {
            opts.url = a;
        } else {
            usage('more than one URL');
        }
    }
    if (opts.url === null) usage('URL missing');
    return opts;
}

module.exports = { usage, parseArgs };
