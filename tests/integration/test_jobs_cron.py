"""The job scheduler's cron parser (src/jobs/jobs_schedule.c, written by hand) against npm
cron-parser 4 in UTC: for seeded generated expressions (numbers, names, ranges, steps, lists in
every field) and fixed instants (month and year ends, a leap day, the non-leap 2100), the next 20
ticks must be the same, and what one refuses the other refuses.

One documented difference is left out of the generator: for day-of-month and day-of-week,
LedgerMQ follows Vixie cron (a field that starts with '*' is "unrestricted", so "*/2" in
day-of-month with a day-of-week means both must match), while cron-parser treats only a field
covering its whole range as unrestricted. So a generated day field is either "*" or restricted
without starting with '*' and without covering every value; the Vixie cases are unit tests
(tests/unit/test_jobs_schedule.c).
"""

import calendar
import os
import random
import subprocess

import pytest

import jsdeps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT_S = 120
SEED = 17
EXPRESSIONS = 400
TICKS = 20

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
INSTANTS = ["2024-02-28 23:59:00", "2025-12-31 23:59:30", "2026-04-30 12:00:00",
            "2100-02-27 12:00:00"]


def cron_tool():
    path = os.environ.get("LMQ_CRON_TOOL", os.path.join(ROOT, "build", "tests", "cron_tool"))
    if not os.path.exists(path):
        pytest.fail("cron_tool is not built: %s" % path)
    return path


def ms(text):
    return calendar.timegm(__import__("time").strptime(text, "%Y-%m-%d %H:%M:%S")) * 1000


def value(rng, lo, hi, names, base):
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3 and 0 <= v - base < len(names):
        return names[v - base], v
    return str(v), v


def item(rng, lo, hi, names=None, base=0, star=True):
    """One list item; star=False: never starting with '*'. No stepped item but "*/n" in
    day-of-week: cron-parser 4 adds Sunday to them ("2/3" is [0,2,5] there, "5-7/8" is [0,5];
    here, as in Vixie cron, 2,5 and 5)."""
    kinds = ["value", "range"] + ([] if hi == 7 else ["range_step", "value_step"])
    kind = rng.choice((["star", "star_step"] if star else []) + kinds)
    if kind == "star":
        return "*"
    if kind == "star_step":
        return "*/%d" % rng.randint(1, hi - lo + 1)
    a, av = value(rng, lo, hi, names, base)
    if kind == "value":
        return a
    if kind == "value_step":
        return "%s/%d" % (av, rng.randint(1, hi - lo + 1))
    b, bv = value(rng, av, hi, names, base)
    if kind == "range":
        return "%s-%s" % (a, b)
    return "%s-%s/%d" % (a, b, rng.randint(1, hi - lo + 1))


def field(rng, lo, hi, names=None, base=0):
    return ",".join(item(rng, lo, hi, names, base) for _ in range(rng.choice([1, 1, 1, 2, 3])))


def day_field(rng, lo, hi, names=None, base=0):
    """'*' or a restricted list that neither starts with '*' nor covers every value."""
    if rng.random() < 0.4:
        return "*"
    for _ in range(100):
        f = ",".join(item(rng, lo, hi, names, base, star=False)
                     for _ in range(rng.choice([1, 1, 2])))
        if not covers_all(f, lo, hi, names, base):
            return f
    return str(lo)


def covers_all(f, lo, hi, names, base):
    seen = set()
    for it in f.split(","):
        rng_part, _, step = it.partition("/")
        a, _, b = rng_part.partition("-")
        conv = (lambda s: names.index(s) + base if names and s in names else int(s))
        av = conv(a)
        bv = conv(b) if b else (hi if step else av)
        seen.update(range(av, bv + 1, int(step) if step else 1))
    seen = {0 if (hi == 7 and v == 7) else v for v in seen}
    return seen >= set(range(lo, min(hi, 6) + 1 if hi == 7 else hi + 1))


def expressions():
    rng = random.Random(SEED)
    out = ["* * * * *", "0 0 29 2 *", "0 0 31 * *", "59 23 31 12 *", "0 12 * * 7", "*/7 * * * *",
           "0 0 1,15 * mon", "30 4 1-7 jan-mar mon-fri", "0 */6 * * *", "5/15 1-5/2 * * *"]
    while len(out) < EXPRESSIONS:
        out.append(" ".join([field(rng, 0, 59), field(rng, 0, 23), day_field(rng, 1, 31),
                             field(rng, 1, 12, MONTHS, 1), day_field(rng, 0, 7, DAYS, 0)]))
    return out


def run(cmd, lines, cwd=None):
    r = subprocess.run(cmd, input="".join(lines), capture_output=True, text=True,
                       timeout=TIMEOUT_S, cwd=cwd)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == len(lines), (len(out), len(lines), r.stderr[-2000:])
    return out


def test_cron_next_ticks_match_cron_parser():
    node = jsdeps.node()
    lines = ["%s\t%d\t%d\n" % (e, ms(t), TICKS) for e in expressions() for t in INSTANTS]
    ours = run([cron_tool()], lines)
    theirs = run([node, os.path.join(jsdeps.JS_DIR, "cron_next.js")], lines, cwd=jsdeps.JS_DIR)
    compared = refused = 0
    mismatches = []
    for line, a, b in zip(lines, ours, theirs):
        if a.startswith("error") or b.startswith("error"):
            if not (a.startswith("error") and b.startswith("error")):
                mismatches.append((line.strip(), a, b))
            refused += 1
            continue
        compared += 1
        if a != b:
            mismatches.append((line.strip(), a, b))
    assert not mismatches, "%d mismatches, first: %r" % (len(mismatches), mismatches[:5])
    assert compared > 0.9 * len(lines), (compared, refused)


def test_cron_tool_refuses_what_it_should():
    bad = ["61 * * * *", "* * *", "* * * * * *", "5-1 * * * *", "*/0 * * * *", "0 0 30 2 *",
           "0 0 * * 8", "@every 0s", "@every 8d", "@weekly", "foo * * * *"]
    out = run([cron_tool()], ["%s\t0\t1\n" % b for b in bad])
    assert all(o.startswith("error: ") for o in out), list(zip(bad, out))
