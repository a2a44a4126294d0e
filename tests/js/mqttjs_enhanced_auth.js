#!/usr/bin/env node
// MQTT.js logs an identity in with MQTT 5 enhanced authentication "ledgermq-ed25519"
// (docs/PROTOCOL.md "Login over MQTT"), with node's own Ed25519:
//   - CONNECT with properties.authenticationMethod and authenticationData (the raw 32-byte public
//     key); the server's AUTH 0x18 reaches MQTT.js's handleAuth hook, which answers AUTH 0x18 with
//     the signature of "ledgermq-mqtt-auth-v1\n" || server id || nonce || client id;
//   - the CONNACK carries the method; the identity may subscribe to its own id/<me>/inbox and not
//     to another's (SUBACK 0x87, which MQTT.js reports as an error);
//   - after --reauth-ms, a re-authentication: AUTH 0x19 (MQTT.js has no public call to start one,
//     so the packet is written with the client's internal _sendPacket), whose AUTH 0x18 goes
//     through the same handleAuth hook, then the server's AUTH 0x00;
//   - the connection is still usable --hold-ms after CONNACK (a PINGREQ-free round trip: a QoS 1
//     publish to itself), past the lifetime the first login gave.
// Prints one JSON line on stdout ({"ok":true,...} or {"ok":false,"error":...}) and exits 0 only
// on success (1: a check failed, 2: bad usage, 3: overall timeout).
//
// usage: node mqttjs_enhanced_auth.js mqtt://HOST:PORT --seed HEX32 --server-id HEX64
//             [--client-id ID] [--reauth-ms N] [--hold-ms N] [--timeout-ms N]

'use strict';

const crypto = require('crypto');
const path = require('path');
const { usage, parseArgs: parseCommandLine } = require(path.join(__dirname, 'cli_args.js'));

const mqtt = require(path.join(__dirname, 'node_modules', 'mqtt'));

const METHOD = 'ledgermq-ed25519';
const PREFIX = Buffer.from('ledgermq-mqtt-auth-v1\n', 'ascii');
const CONTINUE = 0x18;
const REAUTHENTICATE = 0x19;

function parseArgs(argv) {
    const opts = parseCommandLine(argv,
        { seed: null, serverId: null, clientId: 'mqttjs-ea', reauthMs: 2500, holdMs: 5500,
          timeoutMs: 20000 },
        { '--reauth-ms': 'reauthMs', '--hold-ms': 'holdMs', '--timeout-ms': 'timeoutMs' },
        { '--seed': 'seed', '--server-id': 'serverId', '--client-id': 'clientId' });
    if (!/^mqtt:\/\//.test(opts.url)) usage('URL mqtt://HOST:PORT missing');
    if (!/^[0-9a-f]{64}$/.test(opts.seed || '')) usage('--seed must be 64 hex digits');
    if (!/^[0-9a-f]{64}$/.test(opts.serverId || '')) usage('--server-id must be 64 hex digits');
    if (opts.holdMs <= opts.reauthMs) usage('--hold-ms must be after --reauth-ms');
    return opts;
}

// The identity's key from its 32-byte seed (a JWK needs the public half: derive it first).
function identityKey(seedHex) {
    const seed = Buffer.from(seedHex, 'hex');
    // PKCS#8 for an Ed25519 seed: a fixed 16-byte header then the 32 bytes (RFC 8410).
    const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
    const priv = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    const pub = crypto.createPublicKey(priv).export({ format: 'jwk' });
    const raw = Buffer.from(pub.x, 'base64url');
    return { priv, pub: raw, id: crypto.createHash('sha256').update(raw).digest('hex') };
}

function main() {
    const opts = parseArgs(process.argv.slice(2));
    const key = identityKey(opts.seed);
    const result = { ok: false, identity: key.id };
    let client = null;
    const finish = (ok, error) => {
        result.ok = ok;
        if (error) result.error = String(error);
        process.stdout.write(JSON.stringify(result) + '\n');
        if (client) client.end(true);
        process.exit(ok ? 0 : (error === 'timeout' ? 3 : 1));
    };
    setTimeout(() => finish(false, 'timeout'), opts.timeoutMs).unref();

    let reauthDone = null;
    client = mqtt.connect(opts.url, {
        protocolVersion: 5,
        clientId: opts.clientId,
        reconnectPeriod: 0,
        keepalive: 0,
        properties: { authenticationMethod: METHOD, authenticationData: key.pub },
    });
    // Every AUTH from the server comes here: 0x18 carries a nonce to sign, 0x00 ends a
    // re-authentication.
    client.handleAuth = (packet, callback) => {
        const props = packet.properties || {};
        if (packet.reasonCode === 0) {
            result.reauth_rc = 0;
            if (reauthDone) reauthDone();
            callback();
            return;
        }
        if (packet.reasonCode !== CONTINUE || !Buffer.isBuffer(props.authenticationData) ||
            props.authenticationData.length !== 32) {
            callback(new Error('unexpected AUTH ' + JSON.stringify(packet)));
            return;
        }
        const msg = Buffer.concat([PREFIX, Buffer.from(opts.serverId, 'ascii'),
                                   props.authenticationData, Buffer.from(opts.clientId, 'utf8')]);
        const sig = crypto.sign(null, msg, key.priv);
        result.challenges = (result.challenges || 0) + 1;
        callback(null, { cmd: 'auth', reasonCode: CONTINUE,
                         properties: { authenticationMethod: METHOD, authenticationData: sig } });
    };
    client.on('error', (e) => finish(false, 'error: ' + e.message));
    client.on('disconnect', (p) => finish(false, 'DISCONNECT ' + p.reasonCode));
    client.once('connect', (connack) => {
        const t0 = Date.now();
        result.connack_method = (connack.properties || {}).authenticationMethod;
        const inbox = 'id/' + key.id + '/inbox';
        const other = 'id/' + '0'.repeat(64) + '/inbox';
        client.subscribe(inbox, { qos: 1 }, (err, granted) => {
            if (err) return finish(false, 'subscribe: ' + err.message);
            result.granted = granted.map((g) => g.qos);
            // MQTT.js reports a SUBACK failure code as an error ("Subscribe error: <reason>").
            client.subscribe(other, { qos: 1 }, (err2) => {
                result.other_inbox = err2 ? err2.message : 'granted';
            });
            setTimeout(() => {
                reauthDone = () => {
                    const wait = Math.max(0, opts.holdMs - (Date.now() - t0));
                    setTimeout(() => roundTrip(t0), wait);
                };
                client._sendPacket({ cmd: 'auth', reasonCode: REAUTHENTICATE,
                                     properties: { authenticationMethod: METHOD } });
            }, opts.reauthMs);
        });
    });
    const roundTrip = (t0) => {
        const topic = 'ea/' + opts.clientId;
        client.subscribe(topic, { qos: 1 }, (err) => {
            if (err) return finish(false, 'subscribe: ' + err.message);
            client.once('message', (t, payload) => {
                result.alive_after_ms = Date.now() - t0;
                finish(payload.toString() === 'still here', null);
            });
            client.publish(topic, 'still here', { qos: 1 });
        });
    };
}

main();
