#!/usr/bin/env python3
"""e2e_pop3.py - the pop3 engineer's end-to-end scratch checks.

Runs a real mailaccessd (via tests/protocol/harness.py: temp config, LMDB
store, passwd users, mail delivered with mailaccessctl) and drives it with
poplib and raw sockets. The official suite is tests/protocol/test_pop3.py;
this one covers the pop3.so details behind it: UIDL presets on the wire,
exact replies, line limits, parked RETR under a client that does not read,
timeout and shutdown lines, the config check of `pop3 { }`.

Run: MA_BUILD_DIR=/work/main/build-pop3 python3 proto-pop3/tests/e2e_pop3.py
"""

import os
import poplib
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "protocol"))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

D = None
PW = "pw with spaces"
USERS = ["a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "g@x", "h@x"]


def mk(subject, body=b"hello\n"):
    return b"From: s@x\nSubject: " + subject.encode() + b"\n\n" + body


def setup():
    global D
    D = harness.Daemon("pop3e2e")
    for u in USERS:
        D.add_user(u, PW)
    D.start()


def session(user, listener="pop3plain"):
    c = D.connect(listener)
    c.login(user, PW)
    return c


@test(timeout=60)
def test_poplib_flow_and_bytes():
    user = "a@x"
    tricky = (b"Subject: dots\n\n.\n..\n.leading\nmiddle.\n.\r\n"
              b"8bit: \xc3\xa4\xff\x80\n\nlast line without newline")
    D.deliver(user, mk("one"))
    D.deliver(user, tricky)
    p = poplib.POP3("127.0.0.1", D.port("pop3plain"), timeout=10)
    assert p.getwelcome() == b"+OK mailaccess ready."
    p.user(user)
    p.pass_(PW)
    n, size = p.stat()
    assert n == 2
    resp, lines, octets = p.retr(2)
    want = crlf(tricky)
    if not want.endswith(b"\r\n"):
        want += b"\r\n"
    got = b"\r\n".join(lines) + b"\r\n"
    assert got == want, (got, want)
    resp, uidls, _ = p.uidl()
    assert all(re.fullmatch(rb"\d+ [0-9a-f]{16}", u) for u in uidls), uidls
    p.quit()
    # the raw bytes, stuffed, with the announced size
    with session(user) as c:
        r = c.ok("RETR 2")
        # deliver ends the last line with CRLF; the size is what is stored
        assert r == "+OK %d octets" % len(want), r
        raw = c.read_multi_raw()
        assert raw.startswith(b"Subject: dots\r\n\r\n..\r\n...\r\n..leading\r\n"
                              b"middle.\r\n..\r\n"), raw[:80]
        assert raw.endswith(b"last line without newline\r\n.\r\n")
        c.quit()


@test(timeout=60)
def test_dele_quit_and_drop():
    user = "b@x"
    for i in range(5):
        D.deliver(user, mk("m%d" % i))
    with session(user) as c:
        before = c.lines("UIDL")
        c.ok("DELE 2")
        c.ok("DELE 4")
        assert c.err("RETR 2") == "-ERR message 2 already deleted"
        assert c.ok("STAT").startswith("+OK 3 ")
        c.sock.close()  # drop: nothing goes
    time.sleep(0.3)
    with session(user) as c:
        assert c.lines("UIDL") == before
        c.ok("DELE 2")
        c.ok("DELE 4")
        assert c.ok("QUIT") == "+OK Logging out, 2 messages deleted."
    time.sleep(0.3)
    with session(user) as c:
        after = [l.split()[1] for l in c.lines("UIDL")]
        assert after == [before[i].split()[1] for i in (0, 2, 4)], (after, before)
        c.quit()


@test(timeout=60)
def test_stls_poplib():
    user = "c@x"
    D.deliver(user, mk("tls"))
    p = poplib.POP3("127.0.0.1", D.port("pop3"), timeout=10)
    caps = p.capa()
    assert "STLS" in caps and "PIPELINING" in caps and "UIDL" in caps, caps
    p.stls(context=harness.client_context(D.certs))
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps, caps
    assert caps.get("IMPLEMENTATION") == ["mailaccess"], caps
    p.user(user)
    p.pass_(PW)
    assert p.stat()[0] == 1
    p.quit()


@test(timeout=60)
def test_pipelined_with_unread_output():
    user = "d@x"
    big = b"Subject: big\n\n" + (b".x" * 40 + b"\n") * 40000   # ~3.3 MB
    D.deliver(user, big)
    D.deliver(user, mk("small"))
    c = D.connect("pop3plain")
    c.send("USER %s\r\nPASS %s\r\nRETR 1\r\nRETR 2\r\nDELE 2\r\nSTAT\r\n"
           "QUIT\r\n" % (user, PW))
    time.sleep(1.0)  # do not read: the server must park, not buffer 3 MB
    assert c.resp().startswith("+OK")
    assert c.resp() == "+OK Logged in."
    assert c.resp() == "+OK %d octets" % len(crlf(big))
    assert c.read_multi() == crlf(big)
    assert c.resp().startswith("+OK")
    assert c.read_multi() == crlf(mk("small"))
    assert c.resp() == "+OK message 2 deleted"
    assert c.resp() == "+OK 1 %d" % len(crlf(big))
    assert c.resp() == "+OK Logging out, 1 messages deleted."
    assert c.read_until_eof(5) == b""


@test(timeout=60)
def test_line_limits_and_errors():
    with D.connect("pop3plain") as c:
        # 253 text + CRLF = 255 octets: parsed (unknown command)
        assert c.cmd("X" * 253) == "-ERR Unknown command."
        assert c.cmd("X" * 254) == "-ERR Line too long"
        c.send("NOOP\x00\r\n")
        assert c.resp() == "-ERR NUL byte in command"
        c.send(b"CAPA\nQUIT\n")  # bare LF
        assert c.resp() == "+OK Capability list follows"
        c.read_multi()
        assert c.resp() == "+OK Logging out."
    with D.connect("pop3plain") as c:
        c.send("BAD\r\n" * 12)
        data = c.read_until_eof(5)
        assert data.count(b"-ERR Unknown command.\r\n") == 9, data
        assert data.endswith(b"-ERR Too many bad commands, closing connection\r\n")


@test(timeout=60)
def test_in_use():
    user = "e@x"
    with session(user) as c:
        with D.connect("pop3plain") as c2:
            c2.ok("USER " + user)
            assert c2.err("PASS " + PW).startswith("-ERR [IN-USE]")
        c.quit()
    time.sleep(0.2)
    with session(user) as c:
        c.quit()


@test(timeout=120)
def test_uidl_presets_and_config_errors():
    for preset, pattern in (("cyrus", rb"1 \d+\.1"), ("courier", rb"1 \d+-1"),
                            ("mailaccess", rb"1 00000001[0-9a-f]{8}"),
                            ("%v:%Xu", rb"1 \d+:1")):
        d = harness.Daemon("pop3uidl", pop3={"uidl_format": preset,
                                             "login_delay": 60,
                                             "expire": 30})
        d.add_user("u@x", PW)
        d.deliver("u@x", mk("u"))
        d.start()
        try:
            with d.connect("pop3plain") as c:
                caps = c.lines("CAPA")
                assert "LOGIN-DELAY 60" in caps and "EXPIRE 30" in caps, caps
                c.login("u@x", PW)
                r = c.ok("UIDL 1")
                assert re.fullmatch(rb"\+OK " + pattern, r.encode()), (preset, r)
                c.quit()
        finally:
            d.stop()
            assert not d.problems(), d.problems()
    for bad in ("%v", "a b %u", "%061u%v"):
        d = harness.Daemon("pop3bad", pop3={"uidl_format": bad})
        r = subprocess.run([harness.daemon_path(), "-t", "-c", d.conf_path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=d.env, timeout=30)
        out = r.stdout.decode(errors="replace")
        assert r.returncode != 0, (bad, out)
        assert re.search(r"mailaccess\.conf:\d+: pop3: uidl_format:", out), out


@test(timeout=60)
def test_timeout_and_shutdown_lines():
    d = harness.Daemon("pop3idle", limits={"idle_timeout": "1s"})
    d.add_user("u@x", PW)
    d.start()
    try:
        with d.connect("pop3plain") as c:
            assert c.read_until_eof(10) == b"-ERR Autologout; idle for too long\r\n"
        c = d.connect("pop3plain")
        c.login("u@x", PW)
        d.proc.send_signal(15)
        assert c.read_until_eof(10) == b"-ERR Server shutting down\r\n"
        d.proc.wait(15)  # one SIGTERM only: stop() would send another
    finally:
        d.stop()
        assert not d.problems(), d.problems()


def teardown():
    D.stop()
    probs = D.problems()
    assert not probs, probs


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
