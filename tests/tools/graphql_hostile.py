#!/usr/bin/env python3
"""What hostile GraphQL documents cost (docs/SECURITY.md "GraphQL requests"): runs each through
graphql_tool (the test schema, limits far above the defaults) and prints the wall time and the
first words of the answer. A measurement, not a test.

Usage: python3 tests/tools/graphql_hostile.py build/tests/graphql_tool
"""

import json
import subprocess
import sys
import time

BYTES = 60000


def documents():
    yield "many_ops", "".join("query Q%d { hero { name } }\n" % i for i in range(2000))[:BYTES]
    yield "fragment_chain", ("{ hero { ...F0 } }\n" + "".join(
        "fragment F%d on Person { ...F%d }\n" % (i, i + 1) for i in range(1500))
        + "fragment F1500 on Person { name }")
    yield "same_key", "{ " + " ".join("hero { name }" for _ in range(4000)) + " }"
    yield "conflicts", "{ " + " ".join("hero { x: name x: id }" for _ in range(2000)) + " }"
    yield "fragment_fan_out", ("{ hero { " + " ".join("...F" for _ in range(5000))
                               + " } } fragment F on Person { "
                               + " ".join("a%d: name" % i for i in range(300)) + " }")
    yield "exponential_fragments", ("{ hero { ...A0 } }\n" + "".join(
        "fragment A%d on Person { ...A%d ...A%d }\n" % (i, i + 1, i + 1) for i in range(40))
        + "fragment A40 on Person { name }")
    yield "many_variables", ("query (" + " ".join("$v%d: Int" % i for i in range(3000))
                             + ") { echo(i: 1) }")
    yield "long_list", "{ echo(l: [" + ", ".join("1" for _ in range(25000)) + "]) }"


def main():
    tool = sys.argv[1]
    for name, doc in documents():
        start = time.monotonic()
        r = subprocess.run([tool], input=json.dumps({"query": doc}) + "\n",
                           capture_output=True, text=True, timeout=60)
        ms = (time.monotonic() - start) * 1000
        print("%-22s %6d bytes %7.1f ms  %s" % (name, len(doc), ms, r.stdout[:90].strip()))


if __name__ == "__main__":
    main()
