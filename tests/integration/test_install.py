"""Packaging (issue 15, item 10): `cmake --install` (what `make install PREFIX=... DESTDIR=...`
runs) into a temporary DESTDIR puts the binary, libledgermq.a, its header, ledgermq.pc, a man
page per command, the example config and the systemd unit where README "Install" says; each
of them works from there: the installed binary runs and serves with the installed config, a C
program compiles and links against the installed library with pkg-config's flags, every page
renders without warnings, and systemd-analyze verify accepts the unit.

The build directory is the directory of LEDGERMQ_BIN (build/ledgermq)."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

import configkeys

BIN = os.path.abspath(os.environ.get("LEDGERMQ_BIN", "../../build/ledgermq"))
BUILD = os.path.dirname(BIN)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PREFIX = "/usr/local"
COMMANDS = ["serve", "passwd", "keygen", "send", "listen", "token", "verify", "revoke",
            "validate", "bench", "version", "help"]
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """DESTDIR/usr/local after `cmake --install BUILD --prefix /usr/local` with DESTDIR set."""
    dest = tmp_path_factory.mktemp("destdir")
    env = dict(os.environ, DESTDIR=str(dest))
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", PREFIX], env=env,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stdout + p.stderr
    return dest / PREFIX.lstrip("/")


def test_install_puts_every_file_where_the_readme_says(root):
    expected = ["bin/ledgermq", "lib/libledgermq.a", "include/ledgermq/ledgermq.h",
                "lib/pkgconfig/ledgermq.pc", "share/man/man1/ledgermq.1",
                "share/doc/ledgermq/ledgermq.conf", "share/doc/ledgermq/ledgermq.service",
                "share/doc/ledgermq/LICENSE", "share/doc/ledgermq/README.md"]
    expected += ["share/man/man1/ledgermq-%s.1" % c for c in COMMANDS]
    for rel in expected:
        assert (root / rel).is_file(), rel
    assert os.access(root / "bin/ledgermq", os.X_OK)
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    install = readme[readme.index("\n## Install\n"):]
    install = install[:install.index("\n## ", 5)]
    for rel in ("bin/ledgermq", "lib/libledgermq.a", "include/ledgermq/ledgermq.h",
                "lib/pkgconfig/ledgermq.pc", "share/man/man1", "share/doc/ledgermq"):
        assert rel in install, ("README \"Install\" does not say where", rel)


def test_installed_binary_runs(root, tmp_path):
    p = subprocess.run([str(root / "bin/ledgermq"), "version"], capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"ledgermq \d+\.\d+\.\d+\n", p.stdout), p.stdout


def config_keys(tmp_path):
    return configkeys.config_keys(BIN, tmp_path)


def test_example_config_names_every_key(root, tmp_path):
    """Set or commented out (';key = ...'), every key the parser knows is in the example."""
    found, section = {}, None
    for line in (root / "share/doc/ledgermq/ledgermq.conf").read_text().splitlines():
        m = re.match(r";?\[(\w+)(?:\.[\w-]+)?\]", line)  # [webhook.NAME]: "webhook"
        if m:
            section = m.group(1)
        m = re.match(r";?(\w+)\s*=", line)
        if m:
            found.setdefault(section, set()).add(m.group(1))
    for section, keys in config_keys(tmp_path).items():
        missing = keys - found.get(section, set())
        assert not missing, ("[%s] keys missing from etc/ledgermq.conf" % section, missing)
    assert "queue_overflow" in found, found.keys()


def test_installed_binary_serves_with_the_installed_config(root, tmp_path):
    """The example config as installed (flags move the listeners to free ports and the data
    into tmp: flags win over the file); /healthz answers."""
    proc = subprocess.Popen(
        [str(root / "bin/ledgermq"), "serve", "--config",
         str(root / "share/doc/ledgermq/ledgermq.conf"), "--data", str(tmp_path / "data"),
         "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    lines, ready = [], None
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ready is None:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ready":
                ready = ev
        assert ready is not None, "".join(lines)
        url = "http://%s/healthz" % ready["http"][0]
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    assert r.status == 200
                    break
            except urllib.error.HTTPError as e:  # 503 while still starting
                assert e.code == 503, e
                time.sleep(0.1)
        else:
            pytest.fail("/healthz never answered 200")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, "".join(lines) + err


C_PROGRAM = r"""
#include <ledgermq/ledgermq.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    struct lmq_client_options opts;
    struct lmq_client *c = NULL;
    char err[256];
    (void)argc;
    memset(&opts, 0, sizeof opts);
    opts.key_file = argv[1];
    opts.state_dir = argv[2];
    opts.mqtt_host = "127.0.0.1";
    opts.mqtt_port = 1;
    opts.http_host = "127.0.0.1";
    opts.http_port = 1;
    int rc = lmq_client_open(&opts, &c, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", lmq_client_strerror(rc), err);
        return 1;
    }
    printf("%s\n", lmq_client_id(c));
    lmq_client_close(c);
    return 0;
}
"""


def test_c_program_builds_against_the_installed_library(root, tmp_path):
    env = dict(os.environ, PKG_CONFIG_PATH=str(root / "lib/pkgconfig"))
    p = subprocess.run(["pkg-config", "--cflags", "--libs", "ledgermq"], env=env,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    flags = p.stdout.split()
    assert "-lledgermq" in flags, flags
    assert any(f.startswith("-I") and os.path.samefile(f[2:], root / "include") for f in flags)
    (tmp_path / "app.c").write_text(C_PROGRAM)
    p = subprocess.run(["cc", "-Wall", "-Werror", "-o", "app", "app.c", *flags],
                       cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([str(root / "bin/ledgermq"), "keygen", "--out", "id.json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    key_id = p.stdout.strip()
    p = subprocess.run(["./app", "id.json", "state"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == key_id
    assert (tmp_path / "state" / "client.db").is_file()


@pytest.mark.parametrize("page", ["ledgermq"] + ["ledgermq-" + c for c in COMMANDS])
def test_man_page_renders_and_is_the_help_text(root, page):
    path = root / "share/man/man1" / (page + ".1")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="100")
    if shutil.which("groff"):
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)], env=env,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
        assert p.returncode == 0 and p.stderr == "", p.stderr
    if not shutil.which("man"):
        pytest.skip("no man (man-db) to render with")
    p = subprocess.run(["man", "-l", str(path)], env=env, capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert re.search(r"^NAME\n +%s - \S" % re.escape(page), p.stdout, re.M), p.stdout[:300]
    # One source of truth: every line of the --help text is in the page (whitespace aside).
    args = ["help"] if page == "ledgermq" else [page.split("-", 1)[1], "--help"]
    text = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=TIMEOUT_S).stdout
    rendered = " ".join(p.stdout.split())
    for line in text.splitlines():
        line = " ".join(line.removeprefix("usage: ").split())
        if line and not re.fullmatch(r"[a-z ]+:", line):
            assert line in rendered, (page, line)


def test_systemd_unit_verifies(root, tmp_path):
    """systemd-analyze verify on the installed unit, its ExecStart pointed at the installed
    binary (verify checks that it exists) and MANPATH at the installed pages (verify runs man
    for Documentation=man:...)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze (Debian's systemd; scripts/install-deps.sh installs it)")
    unit = (root / "share/doc/ledgermq/ledgermq.service").read_text()
    for key in ("DynamicUser=yes", "StateDirectory=ledgermq", "ProtectSystem=strict",
                "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "Restart=on-failure",
                "ExecReload=/bin/kill -HUP $MAINPID", "Type=exec"):
        assert "\n" + key + "\n" in unit, key
    assert "ExecStart=%s/bin/ledgermq serve " % PREFIX in unit
    unit = unit.replace("ExecStart=%s/bin/ledgermq" % PREFIX,
                        "ExecStart=%s" % (root / "bin/ledgermq"))
    (tmp_path / "ledgermq.service").write_text(unit)
    env = dict(os.environ, MANPATH=str(root / "share/man"), SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ledgermq.service")],
                       env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ledgermq.service" not in p.stdout + p.stderr, p.stdout + p.stderr
