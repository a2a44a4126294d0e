"""GET /graphiql (docs/PROTOCOL.md "GraphiQL"): GraphiQL bundled at build time (web/graphiql)
into one page compiled into the server. Headless Chromium (chromium.py, over the DevTools pipe)
opens it with a user's token, sets a query in GraphiQL's editor, clicks the run button and finds
the object's values in the result pane; every request the page makes goes to the broker's own
origin, and the page's Content-Security-Policy (checked against the inline script's hash) is not
violated. A screenshot of the result is checked to be a PNG; LMQ_UPDATE_SCREENSHOT=1 also copies
it to docs/img/graphiql.png."""

import base64
import hashlib
import json
import os
import re
import shutil
import urllib.parse
import urllib.request

import pytest

import chromium
import dataclient as dc
import ledgerclient as lc
from test_browser import png_size
from test_graphql_data import ROOT

pytestmark = pytest.mark.ledgermq_only

PAGE_WAIT_S = 30
SCREENSHOT_DOC = os.path.join(ROOT, "docs", "img", "graphiql.png")
MEMO = "graphiql-rent-march"
QUERY = ("{\n  rl_com_example_Payment(filter: {currency: {EQ: CHF}}) {\n    edges {\n"
         "      node {\n        amount\n        currency\n        memo\n      }\n    }\n  }\n}\n")
# CodeMirror (GraphiQL 4's editor) hangs its instance on its wrapper element.
EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
RESULT = ("(document.querySelector('.graphiql-response .CodeMirror') || {CodeMirror: null})"
          ".CodeMirror")
# Collected from the first script the document runs: the page's own CSP violations.
CSP_PROBE = ("window.__cspViolations = [];"
             "document.addEventListener('securitypolicyviolation', e => window.__cspViolations"
             ".push(e.violatedDirective + ' ' + e.blockedURI));")


def example_models():
    models = {}
    for name in os.listdir(os.path.join(ROOT, "examples", "models")):
        with open(os.path.join(ROOT, "examples", "models", name)) as f:
            models[name] = json.load(f)
    return models


@pytest.fixture
def broker(start_broker, tmp_path):
    """The example models (what `make run` loads); Alice sends Bob one CHF payment."""
    def make(extra_ini=""):
        b = dc.start(start_broker, tmp_path, example_models(), extra_ini)
        alice, bob = lc.Identity(), lc.Identity()
        sa = dc.session(b, alice)
        dc.send(sa, bob.id, {"_t": "com.example.Payment", "amount": 4200, "currency": "CHF",
                             "memo": MEMO})
        sa.close()
        b.token_bob = lc.login(b.http_addr, bob)
        return b
    return make


def http(b, method, path="/graphiql"):
    req = urllib.request.Request("http://%s%s" % (b.http_addr, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=lc.TIMEOUT_S) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def run_query(tmp_path, b, token=None, screenshot=None):
    """Opens /graphiql (with ?token= when given), sets QUERY in the editor, clicks run and
    returns (result pane text, page state, every URL the page requested, CSP violations,
    the Authorization headers of the page's POSTs to /graphql)."""
    origin = "http://%s" % b.http_addr
    url = origin + "/graphiql" + ("?" + urllib.parse.urlencode({"token": token}) if token else "")
    with chromium.Chromium(tmp_path / "chromium", window_size=(1280, 720)) as ch:
        ch.keep_events = {"Network.requestWillBeSent"}
        ch.call("Network.enable", session=True)
        ch.call("Page.addScriptToEvaluateOnNewDocument", session=True, source=CSP_PROBE)
        ch.navigate(url)
        # The schema arrives by introspection: the docs button is enabled, the editor is there.
        ch.wait_for("!!document.querySelector('.graphiql-query-editor .CodeMirror')"
                    " && location.pathname === '/graphiql'", timeout_s=PAGE_WAIT_S)
        ch.evaluate("%s.setValue(%s)" % (EDITOR, json.dumps(QUERY)))
        ch.evaluate("document.querySelector('.graphiql-execute-button').click()")
        text = ch.wait_for("(%s && %s.getValue()) || ''" % (RESULT, RESULT), PAGE_WAIT_S)
        state = ch.evaluate("({search: location.search, stored: sessionStorage.getItem("
                            "'ledgermq.graphiql.token'), title: document.title, "
                            "csp: window.__cspViolations})")
        if screenshot is not None:
            ch.evaluate("document.activeElement && document.activeElement.blur()")
            with open(screenshot, "wb") as f:
                f.write(ch.screenshot())
        # GraphiQL's introspection of the live schema worked: the docs list the model's types.
        ch.evaluate("document.querySelector('.graphiql-sidebar button[aria-label*="
                    "\"Documentation\"]').click()")
        state["docs"] = ch.wait_for("(document.querySelector('.graphiql-doc-explorer') || {})"
                                    ".innerText || ''", PAGE_WAIT_S)
        requests = [e["params"]["request"] for e in ch.events]
    urls = [r["url"] for r in requests]
    auth = [r["headers"].get("Authorization") for r in requests
            if r["url"] == origin + "/graphql" and r["method"] == "POST"]
    return json.loads(text), state, urls, auth


def assert_same_origin(b, urls):
    origin = "http://%s/" % b.http_addr
    assert urls and urls[0].startswith(origin + "graphiql"), urls
    others = [u for u in urls if not u.startswith(origin) and not u.startswith("data:")]
    assert not others, "the page requested another origin: %r" % others
    assert origin + "graphql" in urls, urls  # it did reach the broker


def test_graphiql_runs_a_query_through_the_ui_with_the_users_token(broker, tmp_path):
    b = broker()
    shot = str(tmp_path / "graphiql.png")

    result, state, urls, auth = run_query(tmp_path, b, token=b.token_bob, screenshot=shot)

    assert "errors" not in result, result
    nodes = [e["node"] for e in result["data"]["rl_com_example_Payment"]["edges"]]
    assert nodes == [{"amount": 4200, "currency": "CHF", "memo": MEMO}], nodes
    assert state["title"] == "LedgerMQ GraphiQL"
    # The token left the address bar for this tab's sessionStorage, and went out as a header.
    assert state["search"] == "" and state["stored"] == b.token_bob, state
    assert auth and set(auth) == {"Bearer " + b.token_bob}, auth
    assert state["csp"] == [], state["csp"]
    assert "com_example_Payment" in state["docs"], state["docs"]
    assert_same_origin(b, urls)
    assert b.token_bob not in b.log_text(), "the token is in the broker's log"

    width, height = png_size(shot)
    assert (width, height) == (1280, 720) and os.path.getsize(shot) > 10000
    if os.environ.get("LMQ_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.dirname(SCREENSHOT_DOC), exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT_DOC)


def test_graphiql_without_a_token_shows_the_servers_refusal(broker, tmp_path):
    """Control: the value on the page comes from the token (Bob's: the payment was sent to him),
    not from the page. Without one the server answers 401 and the pane shows it."""
    b = broker()

    result, state, urls, auth = run_query(tmp_path, b)

    assert "data" not in result and result["errors"], result
    assert MEMO not in json.dumps(result)
    assert auth and set(auth) == {None}, auth
    assert state["stored"] is None and state["csp"] == [], state
    assert_same_origin(b, urls)


def test_graphiql_without_a_token_reads_on_loopback_with_graphql_auth_off(broker, tmp_path):
    b = broker("graphql_auth = false\n")

    result, _, urls, _ = run_query(tmp_path, b)

    nodes = [e["node"] for e in result["data"]["rl_com_example_Payment"]["edges"]]
    assert nodes == [{"amount": 4200, "currency": "CHF", "memo": MEMO}], result
    assert_same_origin(b, urls)


def csp_directives(value):
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_graphiql_is_one_page_under_a_strict_csp(broker):
    b = broker()
    status, headers, body = http(b, "GET")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = csp_directives(headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"] and csp["connect-src"] == ["'self'"], csp
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"], csp
    # Exactly one script, inline, allowed by its hash (no 'unsafe-inline', no 'unsafe-eval').
    page = body.decode("ascii")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert len(scripts) == 1 and scripts[0][0] == "", [s[0] for s in scripts]
    digest = base64.b64encode(hashlib.sha256(scripts[0][1].encode()).digest()).decode()
    assert csp["script-src"] == ["'sha256-%s'" % digest], csp["script-src"]
    # Nothing to load from anywhere: no src= or href= or stylesheet link in the markup.
    assert not re.search(r"<(link|img|iframe)\b|\ssrc=", page.split("<script>")[0]), page[:500]
    assert 500_000 < len(body) < 4 * 1024 * 1024

    status, head_headers, head_body = http(b, "HEAD")
    assert status == 200 and head_body == b""
    assert head_headers["Content-Security-Policy"] == headers["Content-Security-Policy"]
    assert int(head_headers["Content-Length"]) == len(body)

    for method in ("POST", "PUT", "DELETE"):
        status, h, _ = http(b, method)
        assert status == 405 and h["Allow"] == "GET, HEAD", (method, status)
    assert http(b, "GET", "/graphiql/")[0] == 404
    assert http(b, "GET", "/graphiqlx")[0] == 404
