"""Command line contract: version, help, and one-line errors with exit code 1.

Every case here fails (or finishes) before the broker would start, so no
ports are opened. Runs the binary named by LEDGERMQ_BIN in a temporary
directory so a default ./data is never created in the source tree.
"""
import json
import os
import re
import subprocess

import pytest

BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
TIMEOUT_S = 60


def run(args, cwd):
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def assert_one_line_error(proc):
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    assert proc.stderr.startswith("ledgermq: "), proc.stderr
    assert proc.stderr.endswith("\n")
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_version_prints_name_and_version(tmp_path):
    proc = run(["version"], tmp_path)
    assert proc.returncode == 0
    assert re.fullmatch(r"ledgermq \d+\.\d+\.\d+\n", proc.stdout), proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize("args", [["help"], ["--help"], ["serve", "--help"]])
def test_help_prints_usage_to_stdout(tmp_path, args):
    proc = run(args, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: ledgermq")
    assert "serve" in proc.stdout and "--mqtt HOST:PORT" in proc.stdout
    assert "--http HOST:PORT" in proc.stdout
    assert proc.stderr == ""


def test_no_arguments_prints_usage_to_stderr(tmp_path):
    proc = run([], tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: ledgermq")


def test_unknown_command_fails_with_usage(tmp_path):
    proc = run(["frobnicate"], tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    first = proc.stderr.splitlines()[0]
    assert first == 'ledgermq: unknown command "frobnicate"'
    assert "usage: ledgermq" in proc.stderr


def test_verify_without_arguments_prints_its_usage_and_exits_1(tmp_path):
    proc = run(["verify"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("usage: ledgermq verify")


@pytest.mark.parametrize("args,needle", [
    (["serve", "--bogus"], "--bogus"),
    (["serve", "--bogus=1"], "--bogus"),
    (["serve", "-d", "x"], "-d"),
    (["serve", "stray"], "stray"),
    (["serve", "--data"], "--data needs a value"),
    (["serve", "--data="], "--data needs a value"),
    (["serve", "--mqtt", "--sync", "off"], "--mqtt needs a value"),
    (["serve", "--config"], "--config needs a value"),
    (["serve", "--config", "a.ini", "--config", "b.ini"], "--config"),
    (["serve", "--mqtt", "1.2.3.4"], "--mqtt"),
    (["serve", "--mqtt=127.0.0.1:65536"], "--mqtt"),
    (["serve", "--mqtt", "::1:1883"], "--mqtt"),
    (["serve", "--mqtt", "bad_host:1883"], "--mqtt"),
    (["serve", "--mqtt", "127.0.0.1:1", "--mqtt", "127.0.0.1:x"], "--mqtt"),
    (["serve", "--sync", "sometimes"], "--sync"),
    (["serve", "--log-level=loud"], "--log-level"),
    (["serve", "--http"], "--http needs a value"),
    (["serve", "--http", "127.0.0.1"], "--http: expected HOST:PORT"),
    (["serve", "--http=127.0.0.1:65536"], "--http"),
    (["serve", "--http", "bad_host:80"], "--http"),
    (["serve", "--http", "127.0.0.1:1,127.0.0.1:2"], "--http"),
    (["version", "extra"], "ledgermq: version: takes no arguments"),
    (["help", "frobnicate"], 'ledgermq: help: unknown command "frobnicate"'),
    (["serve", "--http", "nowhere"], "or none"),
])
def test_bad_flag_is_one_line_error(tmp_path, args, needle):
    proc = run(args, tmp_path)
    assert_one_line_error(proc)
    assert needle in proc.stderr
    assert proc.stderr.startswith("ledgermq: %s: " % args[0]), proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("args,needle", [
    (["--mqtts", "127.0.0.1:0"], "need [tls] cert and key"),
    (["--https=127.0.0.1:0", "--tls-cert", "/nonexistent.pem"], "need [tls] cert and key"),
    (["--tls-client-cert", "required"], "client_cert = required needs [tls] client_ca"),
    (["--tls-client-cert", "sometimes"], "--tls-client-cert: expected none, optional or required"),
    (["--mqtts", "bad_host:8883"], "--mqtts"),
])
def test_tls_settings_are_checked_before_starting(tmp_path, args, needle):
    proc = run(["serve", *args], tmp_path)
    assert_one_line_error(proc)
    assert needle in proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("text,line,needle", [
    ("[limits]\nmax_inflight = zero\n", 2,
     '[limits] max_inflight: expected an integer 1..65535, got "zero"'),
    ("[server]\nsync = off\n\n[limits]\nmax_packet_size = 8\n", 5, "max_packet_size"),
    ("[server]\nmqtt = 127.0.0.1:99999\n", 2, "[server] mqtt"),
    ("[server]\nsync = maybe\n", 2, "[server] sync"),
    ("[server]\nbogus = 1\n", 2, "[server] bogus: unknown key"),
    ("[tls]\ncolour = x\n", 2, "[tls] colour: unknown key"),
    ("[limits]\nmax_connections = 10 # comment\n", 2, "max_connections"),
    ("[server]\nthis is not ini\n", 2, "syntax error"),
])
def test_bad_config_file_names_the_line(tmp_path, text, line, needle):
    path = tmp_path / "config.ini"
    path.write_text(text)
    proc = run(["serve", "--config", str(path)], tmp_path)
    assert_one_line_error(proc)
    assert proc.stderr.startswith(f"ledgermq: serve: {path}:{line}: "), proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "data").exists()


def test_bad_config_file_fails_even_when_flags_are_good(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[server]\nsync = maybe\n")
    proc = run(["serve", "--sync", "off", f"--config={path}"], tmp_path)
    assert_one_line_error(proc)
    assert f"{path}:2:" in proc.stderr


def test_missing_config_file_is_an_error(tmp_path):
    path = tmp_path / "missing.ini"
    proc = run(["serve", "--config", str(path)], tmp_path)
    assert_one_line_error(proc)
    assert str(path) in proc.stderr


def test_data_directory_that_cannot_be_created_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run(["serve", "--data", str(blocker / "sub"), "--mqtt", "127.0.0.1:0"], tmp_path)
    # Made after the listeners are up (docs/OBSERVABILITY.md): one JSON start_failed line.
    assert proc.returncode == 1 and proc.stdout == "", proc
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert len(lines) == 1 and lines[0]["event"] == "start_failed", lines
    assert "data directory" in lines[0]["msg"], lines
