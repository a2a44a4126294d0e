#!/usr/bin/python3
"""An onboarding bot for LedgerMQ, written from docs/PROTOCOL.md alone ("Identities and
guaranteed delivery", "Objects", "Events and webhooks" > "Bots" and "Validator bots").

What it does, for each event it follows on id/<bot>/events:
  1. a `com.example.Hello` object sent to the bot (an `envelope.accepted` event whose envelope
     goes to the bot) -> it sends the sender a `com.example.form_request` envelope:
         {"form": "com.example.Onboarding", "hello": "<link of the hello>", "name": "<name>"}
  2. a `com.example.Onboarding` object sent to the bot by someone it asked -> it checks the
     form (the server already validated it against the model; the bot checks its own rules:
     status "submitted", a country it serves, an e-mail with one "@") and sends back a
     `com.example.approval` envelope:
         {"form": "<link of the form>", "status": "approved"}
     or {"form": "<link>", "status": "rejected", "errors": ["...", ...]}
Everything else is skipped. After handling an event it acknowledges it ({"ack":N}), so a
restart resumes after it; an event handled but not yet acknowledged when the bot stops is
handled again (its answer is sent twice: at least once).

It is also ready to be the validator of `com.example.Onboarding`: it subscribes to
id/<bot>/validate and answers each request with the same form check, {"request":N,
"accept":true} or {"request":N,"accept":false,"reason":"country"} (the failed fields). With
`[bots] validators = com.example.Onboarding:<bot id>` in the server's config a bad form is then
refused before it is accepted (the sender gets a reject with reason "bot:country"), and only good
forms reach step 2.

Run it against `make run` (which loads examples/models, com.example.Hello among them):
    ./build/ledgermq keygen bot.key.json             # prints the bot's id
    # add "[bots]\\nids = <that id>" to a config file and start with --config FILE (and
    # "validators = com.example.Onboarding:<that id>" to make it the form's validator)
    /usr/bin/python3 examples/bots/onboarding.py --key bot.key.json --state bot.state.json

Needs paho-mqtt (1.6) and cryptography (python3-paho-mqtt, python3-cryptography on Debian).
"""

import argparse
import base64
import collections
import hashlib
import json
import os
import queue
import sys
import time
import urllib.request

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

TIMEOUT_S = 30
COUNTRIES = {"DE", "FR", "CH", "NL", "GB"}  # the bot's own rule: where it onboards


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value):
    """RFC 8785 (JCS) for what this bot sends and checks: objects, arrays, strings, integers,
    booleans, null. (Floats would need the ECMAScript number form: refused.)"""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canonical(k) + ":" + canonical(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in "\b\t\n\f\r":
                out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
            elif ord(ch) < 0x20:
                out.append("\\u%04x" % ord(ch))
            else:
                out.append(ch)
        return "".join(out) + '"'
    if value is True or value is False or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int) and abs(value) < 2 ** 53:
        return str(value)
    raise ValueError("cannot canonicalize %r" % (value,))


def link(envelope):
    return hashlib.sha256(canonical(envelope).encode()).hexdigest()


def verify(envelope):
    """True when the envelope's key matches `from` and its signature verifies."""
    try:
        pub = b64url_decode(envelope["key"])
        if hashlib.sha256(pub).hexdigest() != envelope["from"]:
            return False
        unsigned = {k: v for k, v in envelope.items() if k != "sig"}
        Ed25519PublicKey.from_public_bytes(pub).verify(b64url_decode(envelope["sig"]),
                                                       canonical(unsigned).encode())
        return True
    except Exception:  # any malformed member: not verified
        return False


class Bot:
    def __init__(self, args):
        with open(args.key) as f:
            jwk = json.load(f)  # {"crv","d","id","kty","x"} as `ledgermq keygen` writes it
        self.key = Ed25519PrivateKey.from_private_bytes(b64url_decode(jwk["d"]))
        self.pub = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)
        self.id = hashlib.sha256(self.pub).hexdigest()
        self.http = args.http
        self.state_path = args.state
        self.state = {"seq": 0, "prev": "", "asked": {}}  # asked: customer id -> hello link
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                self.state = json.load(f)
        self.base = "id/%s/" % self.id
        self.messages = queue.Queue()
        self.backlog = collections.deque()
        self.handled = 0  # the last event id handled in this run
        self.answers = 0
        self.max_answers = args.max_answers
        host, port = args.mqtt.rsplit(":", 1)
        self.client = mqtt.Client(client_id="onboarding-" + self.id[:16], protocol=mqtt.MQTTv5)
        self.client.username_pw_set(self.id, self.login())
        connected = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p=None: connected.put(rc.value)
        self.client.on_subscribe = lambda c, u, mid, codes, p=None: connected.put(
            [getattr(x, "value", x) for x in codes])
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic[len(self.base):], json.loads(m.payload)))
        self.client.connect(host, int(port), clean_start=True)
        self.client.loop_start()
        if connected.get(timeout=TIMEOUT_S) != 0:
            sys.exit("onboarding: CONNECT refused")
        self.client.subscribe([(self.base + leaf, 1)
                               for leaf in ("events", "events/sync", "ack", "reject",
                                            "validate")])
        if any(code >= 0x80 for code in connected.get(timeout=TIMEOUT_S)):
            sys.exit("onboarding: SUBSCRIBE refused (is this id in [bots] ids?)")

    def post(self, path, body):
        req = urllib.request.Request("http://%s%s" % (self.http, path), json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            return json.loads(r.read())

    def login(self):
        nonce = self.post("/auth/challenge", {"pub": b64url(self.pub)})["nonce"]
        sig = self.key.sign(("ledgermq-auth-v1:" + nonce).encode())
        return self.post("/auth/token", {"pub": b64url(self.pub), "nonce": nonce,
                                         "sig": b64url(sig)})["token"]

    def save_state(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    def publish(self, leaf, body):
        info = self.client.publish(self.base + leaf, canonical(body), qos=1)
        info.wait_for_publish(TIMEOUT_S)

    def next(self):
        """The next message: one set aside by wait() first, else from the connection."""
        if self.backlog:
            return self.backlog.popleft()
        return self.messages.get(timeout=None if self.max_answers is None else TIMEOUT_S)

    def wait(self, leaves):
        """The next message on one of leaves; the others met meanwhile wait, in order."""
        while True:
            leaf, body = self.messages.get(timeout=TIMEOUT_S)
            if leaf in leaves:
                return leaf, body
            self.backlog.append((leaf, body))

    def send(self, to, type_, body):
        """Sends an envelope as the bot and waits for its ack (a reject stops the bot)."""
        now = time.time()
        env = {"from": self.id, "key": b64url(self.pub), "to": to,
               "seq": self.state["seq"] + 1, "prev": self.state["prev"],
               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) +
               ".%09dZ" % int((now % 1) * 1e9),
               "type": type_, "body": body}
        env["sig"] = b64url(self.key.sign(canonical(env).encode()))
        self.publish("outbox", env)
        leaf, answer = self.wait({"ack", "reject"})
        if leaf == "reject":
            sys.exit("onboarding: envelope rejected: %s" % json.dumps(answer))
        self.state["seq"], self.state["prev"] = env["seq"], link(env)

    def check_form(self, form):
        errors = []
        if form.get("status") != "submitted":
            errors.append("status: expected submitted")
        if form.get("country") not in COUNTRIES:
            errors.append("country: not served (%s)" % ", ".join(sorted(COUNTRIES)))
        if str(form.get("email", "")).count("@") != 1:
            errors.append("email: expected one @")
        return errors

    def validate(self, request):
        """A validator request: the verdict on the envelope by the form check (requests for
        other types, if the server were configured so, are accepted)."""
        env = request.get("envelope", {})
        body = env.get("body", {}) if isinstance(env.get("body"), dict) else {}
        verdict = {"request": request["request"], "accept": True}
        form = "com.example.Onboarding"
        if env.get("type") == form or body.get("_t") == form:
            errors = self.check_form(body)
            if errors:
                verdict = {"request": request["request"], "accept": False,
                           "reason": ",".join(e.split(":")[0] for e in errors)}
        self.publish("validate/verdict", verdict)

    def handle(self, event):
        """Acts on one event; True when it answered something."""
        if event.get("type") != "envelope.accepted":
            return False
        env = event["data"]["envelope"]
        if env.get("to") != self.id or not verify(env):
            return False
        body, sender = env.get("body", {}), env["from"]
        if body.get("_t") == "com.example.Hello":
            self.send(sender, "com.example.form_request",
                      {"form": "com.example.Onboarding", "hello": event["data"]["link"],
                       "name": body.get("name", "")})
            self.state["asked"][sender] = event["data"]["link"]
        elif body.get("_t") == "com.example.Onboarding" and sender in self.state["asked"]:
            errors = self.check_form(body)
            answer = {"form": event["data"]["link"],
                      "status": "rejected" if errors else "approved"}
            if errors:
                answer["errors"] = errors
            self.send(sender, "com.example.approval", answer)
            if not errors:
                del self.state["asked"][sender]
        else:
            return False
        return True

    def run(self):
        self.publish("events/resync", {})  # after the stored position
        while self.max_answers is None or self.answers < self.max_answers:
            leaf, body = self.next()
            if leaf == "validate":
                self.validate(body)
                continue
            if leaf not in ("events", "events/sync"):
                continue  # an ack or reject outside send(): nothing to do
            if leaf == "events/sync":
                if "error" in body:
                    sys.exit("onboarding: %s" % body["error"])
                if body["more"]:
                    self.publish("events/resync", {"after": body["last"]})
                continue
            if body["id"] <= self.handled:
                continue  # at least once: seen already
            if self.handle(body):
                self.answers += 1
            self.handled = body["id"]
            self.save_state()  # the chain (seq, prev) before the event is acknowledged
            self.publish("events/ack", {"ack": body["id"]})
        self.client.disconnect()
        self.client.loop_stop()


def main():
    ap = argparse.ArgumentParser(description="LedgerMQ onboarding bot (docs/PROTOCOL.md, Bots)")
    ap.add_argument("--key", required=True, help="the bot's key file (ledgermq keygen)")
    ap.add_argument("--state", required=True, help="where the bot keeps its chain (JSON)")
    ap.add_argument("--http", default="127.0.0.1:8080", help="the broker's HTTP address")
    ap.add_argument("--mqtt", default="127.0.0.1:1883", help="the broker's MQTT address")
    ap.add_argument("--max-answers", type=int, default=None,
                    help="stop after this many answers (tests); default: run until killed")
    Bot(ap.parse_args()).run()


if __name__ == "__main__":
    main()
