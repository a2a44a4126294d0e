#!/usr/bin/env node
// MQTT.js round trip against a broker: what a Node application using the most common JS MQTT
// client would see. One subscriber and one publisher client on a unique topic prefix:
//   - COUNT messages at each of QoS 0, 1 and 2 (one of the QoS 1 messages is BIG_BYTES long),
//     each must arrive exactly once, in publish order per QoS, with its payload intact and at
//     the QoS it was sent with (the subscription is QoS 2, so no downgrade);
//   - a retained message, received by a client that subscribes after it was published, with
//     the retain flag set (then cleared again);
//   - MQTT 5 only: a user property on a PUBLISH reaches the subscriber unchanged.
// Prints one JSON line on stdout ({"ok":true,...} or {"ok":false,"error":...}) and exits 0 only
// on success (1: a check failed, 2: bad usage, 3: overall timeout).
//
// usage: node mqttjs_roundtrip.js URL [--protocol 4|5] [--ca FILE] [--count N]
//                                     [--big-bytes N] [--timeout-ms N]
//   URL: mqtt://HOST:PORT, mqtts://HOST:PORT, ws://HOST:PORT/mqtt or wss://HOST:PORT/mqtt

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { usage, parseArgs: parseCommandLine } = require(path.join(__dirname, 'cli_args.js'));

const mqtt = require(path.join(__dirname, 'node_modules', 'mqtt'));

const COUNT_MAX = 10000;
const BIG_BYTES_MAX = 16 * 1024 * 1024;
// After the last expected message, how long to keep listening for duplicates.
const DUPLICATE_GRACE_MS = 300;
const QOS_LEVELS = [0, 1, 2];

function parseArgs(argv) {
    const opts = parseCommandLine(argv,
        { protocol: 5, ca: null, count: 20, bigBytes: 256 * 1024, timeoutMs: 30000 },
        { '--protocol': 'protocol', '--count': 'count', '--big-bytes': 'bigBytes',
          '--timeout-ms': 'timeoutMs' },
        { '--ca': 'ca' });
    if (!/^(mqtts?|wss?):\/\//.test(opts.url)) {
        usage('URL must be mqtt://, mqtts://, ws:// or wss://');
    }
    if (opts.protocol !== 4 && opts.protocol !== 5) usage('--protocol must be 4 or 5');
    if (opts.count < 1 || opts.count > COUNT_MAX) usage('--count must be 1..' + COUNT_MAX);
    if (opts.bigBytes < 64 || opts.bigBytes > BIG_BYTES_MAX) usage('--big-bytes out of range');
    if (opts.timeoutMs < 1) usage('--timeout-ms must be positive');
    return opts;
}

// The payload of message `seq` at `qos`: a header naming both, padded to `size` bytes with a
// pattern derived from them, so a payload cut, mixed up or corrupted on the way is noticed.
function makePayload(qos, seq, size) {
    const head = Buffer.from(JSON.stringify({ qos, seq }) + '\n');
    const out = Buffer.alloc(Math.max(size, head.length));
    head.copy(out);
    for (let i = head.length; i < out.length; i++) out[i] = (i * 31 + seq * 7 + qos) & 0xff;
    return out;
}

function connect(opts, clientId) {
    const o = {
        clientId,
        protocolVersion: opts.protocol,
        clean: true,
        reconnectPeriod: 0, // a dropped connection is a failure here, not something to hide
        connectTimeout: opts.timeoutMs,
        keepalive: 30,
    };
    if (opts.ca !== null) {
        o.ca = fs.readFileSync(opts.ca);
        o.rejectUnauthorized = true;
    }
    return new Promise((resolve, reject) => {
        const c = mqtt.connect(opts.url, o);
        const onError = (err) => {
            c.end(true);
            reject(new Error(clientId + ': connect failed: ' + err.message));
        };
        c.once('error', onError);
        c.once('connect', (connack) => {
            c.removeListener('error', onError);
            c.on('error', (err) => fail(clientId + ': ' + err.message));
            c.on('close', () => {
                if (!c.lmqClosing) fail(clientId + ': connection closed by the broker');
            });
            resolve({ client: c, connack });
        });
    });
}

let finished = false;
const clients = [];
// What the run is doing and has received, for the timeout message.
const progress = { stage: 'connect', received: null };

function finish(code, result) {
    if (finished) return;
    finished = true;
    process.stdout.write(JSON.stringify(result) + '\n');
    for (const c of clients) {
        c.lmqClosing = true;
        c.end(true);
    }
    process.exitCode = code;
    // Sockets closed above; do not wait for anything else that might still hang.
    setTimeout(() => process.exit(code), 200).unref();
}

function fail(msg) {
    finish(1, { ok: false, error: msg });
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

async function subscribeChecked(client, topic, qos) {
    const granted = await client.subscribeAsync(topic, { qos });
    if (!Array.isArray(granted) || granted.length !== 1 || granted[0].qos !== qos) {
        throw new Error('SUBACK for ' + topic + ' granted ' + JSON.stringify(granted) +
                        ', asked for QoS ' + qos);
    }
}

// Publishes COUNT messages per QoS (interleaved) and checks what the subscriber got.
async function checkQosStreams(opts, pub, received, prefix) {
    const bigSeq = Math.floor(opts.count / 2);
    const sent = {};
    const waits = [];
    for (const q of QOS_LEVELS) sent[q] = [];
    for (let seq = 0; seq < opts.count; seq++) {
        for (const q of QOS_LEVELS) {
            const size = (q === 1 && seq === bigSeq) ? opts.bigBytes : 32;
            const payload = makePayload(q, seq, size);
            sent[q].push(payload);
            // Not awaited one by one: keeps several QoS 1/2 flows in flight at once.
            waits.push(pub.publishAsync(prefix + '/q' + q, payload, { qos: q }));
        }
    }
    await Promise.all(waits);
    const total = opts.count * QOS_LEVELS.length;
    while (received.stream.length < total) await sleep(10);
    await sleep(DUPLICATE_GRACE_MS);
    const got = { 0: [], 1: [], 2: [] };
    for (const m of received.stream) {
        const q = Number(m.topic.slice(m.topic.lastIndexOf('/q') + 2));
        if (!(q in got)) throw new Error('message on unexpected topic ' + m.topic);
        if (m.qos !== q) throw new Error('message sent at QoS ' + q + ' arrived at QoS ' + m.qos);
        got[q].push(m.payload);
    }
    const counts = {};
    for (const q of QOS_LEVELS) {
        counts[q] = got[q].length;
        if (got[q].length !== opts.count) {
            throw new Error('QoS ' + q + ': received ' + got[q].length + ' messages, sent ' +
                            opts.count + ' (seqs ' + got[q].map(headSeq).join(',') + ')');
        }
        for (let i = 0; i < opts.count; i++) {
            if (!got[q][i].equals(sent[q][i])) {
                throw new Error('QoS ' + q + ': message #' + i + ' is seq ' + headSeq(got[q][i]) +
                                ' (' + got[q][i].length + ' bytes), expected seq ' + i + ' (' +
                                sent[q][i].length + ' bytes)');
            }
        }
    }
    return { received: counts, big_bytes: opts.bigBytes };
}

function receivedCounts(received) {
    const counts = { 0: 0, 1: 0, 2: 0 };
    if (received === null) return counts;
    for (const m of received.stream) {
        const q = m.topic.slice(m.topic.lastIndexOf('/q') + 2);
        if (q in counts) counts[q]++;
    }
    return counts;
}

function headSeq(buf) {
    try {
        return JSON.parse(buf.slice(0, buf.indexOf(10)).toString()).seq;
    } catch (e) {
        return '?';
    }
}

// A retained message reaches a client that subscribes after it was published.
async function checkRetained(opts, pub, prefix, runId) {
    const topic = prefix + '/retained';
    const payload = Buffer.from('retained-' + runId);
    await pub.publishAsync(topic, payload, { qos: 1, retain: true });
    const { client: late } = await connect(opts, 'lmqjs-late-' + runId);
    clients.push(late);
    const arrived = new Promise((resolve) => late.once('message', (t, p, packet) =>
        resolve({ t, p, retain: packet.retain })));
    await subscribeChecked(late, topic, 1);
    const m = await arrived;
    if (m.t !== topic || !m.p.equals(payload) || m.retain !== true) {
        throw new Error('retained: got ' + JSON.stringify({ topic: m.t, payload: m.p.toString(),
                                                           retain: m.retain }));
    }
    // Clear it, so a broker reused by another run does not keep it forever.
    await pub.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
    late.lmqClosing = true;
    await late.endAsync();
    return true;
}

// MQTT 5: user properties on a PUBLISH are forwarded unchanged, in order.
async function checkUserProperty(pub, received, prefix, runId) {
    const topic = prefix + '/props';
    const props = { userProperties: { origin: 'mqtt.js', run: runId } };
    const before = received.props.length;
    await pub.publishAsync(topic, 'with-props', { qos: 1, properties: props });
    while (received.props.length === before) await sleep(10);
    const got = (received.props[before].properties || {}).userProperties;
    if (!got || got.origin !== 'mqtt.js' || got.run !== runId) {
        throw new Error('user property: sent ' + JSON.stringify(props.userProperties) +
                        ', received ' + JSON.stringify(got === undefined ? null : got));
    }
    return true;
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const timer = setTimeout(() => finish(3, { ok: false,
        error: 'timed out after ' + opts.timeoutMs + ' ms during ' + progress.stage +
            ' (received per QoS so far: ' + JSON.stringify(receivedCounts(progress.received)) +
            ')' }), opts.timeoutMs);
    const started = Date.now();
    const runId = crypto.randomBytes(6).toString('hex');
    const prefix = 'lmq-js/' + runId;
    const received = { stream: [], props: [] };
    progress.received = received;

    const { client: sub } = await connect(opts, 'lmqjs-sub-' + runId);
    clients.push(sub);
    sub.on('message', (topic, payload, packet) => {
        const entry = { topic, payload, qos: packet.qos, properties: packet.properties };
        if (topic.endsWith('/props')) received.props.push(entry);
        else received.stream.push(entry);
    });
    await subscribeChecked(sub, prefix + '/+', 2);
    const { client: pub } = await connect(opts, 'lmqjs-pub-' + runId);
    clients.push(pub);

    progress.stage = 'QoS 0/1/2 streams';
    const result = await checkQosStreams(opts, pub, received, prefix);
    progress.stage = 'retained round trip';
    result.retained_ok = await checkRetained(opts, pub, prefix, runId);
    progress.stage = 'user property';
    result.user_property_ok = opts.protocol === 5
        ? await checkUserProperty(pub, received, prefix, runId) : null;
    clearTimeout(timer);
    finish(0, Object.assign({ ok: true, url: opts.url, protocol: opts.protocol,
                              count: opts.count, elapsed_ms: Date.now() - started }, result));
}

main().catch((err) => fail(err.message));
