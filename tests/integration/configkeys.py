"""Every key serve's configuration parser knows, per section: [limits] from config.c's table,
the others from the parser's own "unknown key (expected ...)" messages. Shared by the tests that
check the README's INI example and etc/ledgermq.conf name every key."""

import os
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SECTIONS = ("server", "tls", "auth", "http", "data", "events", "bots", "webhook", "plugins",
            "plugin", "admin", "seal",
            "chain")
TIMEOUT_S = 60


def config_keys(binary, tmp_path):
    with open(os.path.join(ROOT, "src", "core", "config.c")) as f:
        keys = {"limits": set(re.findall(r'CONFIG_LIMIT\("(\w+)"', f.read()))}
    assert len(keys["limits"]) > 30, keys
    for section in SECTIONS:
        path = tmp_path / ("%s.ini" % section)
        # [webhook.NAME] and [plugin.NAME] sections share their keys: asked as [webhook.x]...
        name = {"webhook": "webhook.x", "plugin": "plugin.x"}.get(section, section)
        path.write_text("[%s]\nno_such_key = 1\n" % name)
        p = subprocess.run([binary, "serve", "--config", str(path)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
        m = re.search(r"unknown key \(expected (.*)\)", p.stderr)
        assert m, p.stderr
        keys[section] = set(re.split(r", | or ", m.group(1)))
    return keys
