"""docs/BENCHMARKS.md is written by three scripts: scripts/bench.py writes the whole page (the
MQTT brokers side by side) and keeps, at its end, the blocks the other benchmarks wrote;
scripts/bench-ledger.py and scripts/bench-data.py each replace their own block. A block runs
from "<!-- bench:NAME -->" to "<!-- /bench:NAME -->"."""

import os
import re

BLOCK_RE = re.compile(r"<!-- bench:([\w-]+) -->\n.*?<!-- /bench:\1 -->\n", re.S)


def blocks(path):
    """The blocks in the file at path, in order, as text (empty when there is no file)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [m.group(0) for m in BLOCK_RE.finditer(f.read())]


def write_block(path, name, markdown):
    """Replaces block name in the file at path (or appends it) with markdown."""
    block = "<!-- bench:%s -->\n%s\n<!-- /bench:%s -->\n" % (name, markdown.rstrip("\n"), name)
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    pattern = re.compile(r"<!-- bench:%s -->\n.*?<!-- /bench:%s -->\n" % (re.escape(name),
                                                                            re.escape(name)), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(text)
