#!/usr/bin/env node
// MQTT.js receiving topic aliases from a broker (MQTT 5): a subscriber that advertises a Topic
// Alias Maximum, and a publisher that sends ROUNDS rounds over TOPICS long topic names (no
// aliases of its own). MQTT.js resolves the aliases itself (and disconnects on an alias it was
// never told about or above its maximum); every message's payload names the topic it was
// published on, so each one is checked against the topic MQTT.js hands to the application.
// Prints one JSON line ({"ok":true,"received":N,"alias_only":N,"alias_set":N} or
// {"ok":false,"error":...}); exits 0 only on success (1: a check failed, 2: usage, 3: timeout).
//
// usage: node mqttjs_topic_alias.js URL [--ca FILE] [--alias-max N] [--topics N] [--rounds N]
//                                       [--timeout-ms N]

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { usage, parseArgs: parseCommandLine } = require(path.join(__dirname, 'cli_args.js'));

const mqtt = require(path.join(__dirname, 'node_modules', 'mqtt'));

function parseArgs(argv) {
    const opts = parseCommandLine(argv,
        { ca: null, aliasMax: 8, topics: 4, rounds: 10, timeoutMs: 30000 },
        { '--alias-max': 'aliasMax', '--topics': 'topics', '--rounds': 'rounds',
          '--timeout-ms': 'timeoutMs' },
        { '--ca': 'ca' });
    if (opts.topics < 1 || opts.topics > 1000 || opts.rounds < 1 || opts.rounds > 1000) {
        usage('--topics and --rounds must be 1..1000');
    }
    return opts;
}

const opts = parseArgs(process.argv.slice(2));
const prefix = 'lmq-js-alias/' + crypto.randomBytes(6).toString('hex');
const topics = [];
for (let i = 0; i < opts.topics; i++) {
    topics.push(prefix + '/' + i + '/' + 'long-topic-name-'.repeat(8));
}
const total = opts.topics * opts.rounds;
const clients = [];
let finished = false;

function finish(code, result) {
    if (finished) return;
    finished = true;
    process.stdout.write(JSON.stringify(result) + '\n');
    for (const c of clients) c.end(true);
    setTimeout(() => process.exit(code), 50).unref();
}

function fail(error) {
    finish(1, { ok: false, error: String(error) });
}

setTimeout(() => finish(3, { ok: false, error: 'timed out after ' + opts.timeoutMs + ' ms' }),
           opts.timeoutMs).unref();

function connect(clientId, properties) {
    const o = { clientId, protocolVersion: 5, clean: true, reconnectPeriod: 0,
                connectTimeout: 10000, properties };
    if (opts.ca !== null) o.ca = fs.readFileSync(opts.ca);
    const c = mqtt.connect(opts.url, o);
    clients.push(c);
    c.on('error', (e) => fail(clientId + ': ' + e.message));
    c.on('disconnect', (p) => fail(clientId + ': DISCONNECT ' + JSON.stringify(p)));
    c.on('close', () => { if (!finished) fail(clientId + ': connection closed'); });
    return c;
}

const sub = connect('lmq-js-alias-sub-' + process.pid, { topicAliasMaximum: opts.aliasMax });
let received = 0, aliasOnly = 0, aliasSet = 0;
sub.on('message', (topic, payload, packet) => {
    const m = JSON.parse(payload.toString());
    if (topic !== m.topic) {
        fail('message ' + m.i + ' published on ' + m.topic + ' arrived on ' + topic);
        return;
    }
    if (m.i !== received) {
        fail('message ' + m.i + ' arrived in position ' + received);
        return;
    }
    const alias = packet.properties && packet.properties.topicAlias;
    if (alias !== undefined) {
        if (alias < 1 || alias > opts.aliasMax) {
            fail('alias ' + alias + ' outside 1..' + opts.aliasMax);
            return;
        }
        if (packet.topic.length === 0) aliasOnly++; else aliasSet++;
    }
    received++;
    if (received === total) {
        finish(0, { ok: true, received, alias_only: aliasOnly, alias_set: aliasSet });
    }
});
sub.on('connect', () => {
    sub.subscribe(prefix + '/#', { qos: 1 }, (err) => {
        if (err) {
            fail('subscribe: ' + err.message);
            return;
        }
        const pub = connect('lmq-js-alias-pub-' + process.pid, {});
        pub.on('connect', async () => {
            try {
                for (let i = 0; i < total; i++) {
                    const topic = topics[i % opts.topics];
                    await pub.publishAsync(topic, JSON.stringify({ topic, i }), { qos: 1 });
                }
            } catch (e) {
                fail('publish: ' + e.message);
            }
        });
    });
});
