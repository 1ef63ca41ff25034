#!/usr/bin/env python3
"""test_limits.py - the server-wide limits of issue 5, against a real
mailaccessd with several workers and its auth process.

Each limit is tripped on purpose and must (a) refuse or slow down what it
should, (b) leave every other session working, and (c) say so in one log
line naming the limit:

- commands_per_second: pipelined IMAP NOOPs and POP3 NOOPs beyond the
  burst are slowed to the rate, not refused; every command is answered;
- max_connections_per_ip and max_connections: counted across workers;
- max_sessions_per_user: across workers and protocols; a closed session
  frees its place;
- auth failures: growing delay, then a lockout that also refuses the right
  password (the failure table lives in the auth process, so it holds
  whichever worker the next connection lands on);
- max_line and max_message_size on IMAP, POP3 and LMTP.

- imap.max_line and imap.max_literal after login.

Run: python3 tests/protocol/test_limits.py [test_name ...]
(MA_BUILD_DIR selects the build, MA_TEST_STORE the backend.)
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, ProtocolError  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))
harness.PLUGIN_FILES.setdefault("lmtp.so", ("plugins", "lmtp"))

PW = "Limits pw 5"
RATE = 20          # commands_per_second in this daemon (burst 5 x RATE)
PER_IP = 8         # max_connections_per_ip
SESSIONS = 3       # max_sessions_per_user
D = None


def setup():
    global D
    for so in ("imap.so", "lmtp.so"):
        parts = harness.PLUGIN_FILES[so]
        if not os.path.exists(os.path.join(harness.build_dir(), *parts, so)):
            raise harness.Skip("%s not built" % so)
    D = harness.Daemon("limits", workers=2, listeners=[
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="pop3", protocol="pop3", tls="none"),
        dict(name="lmtp", protocol="lmtp", tls="none"),
    ], limits={
        "commands_per_second": RATE,
        "max_connections_per_ip": PER_IP,
        "max_sessions_per_user": SESSIONS,
        "max_line": "8k",
        "max_message_size": "64k",
        "auth_fail_delay": "200ms",
        "auth_fail_max_delay": "1s",
        "auth_fail_lockout": 4,
        "auth_fail_window": "5m",
    }, extra="imap {\n  max_line = 4k\n  max_literal = 2k\n}\n")
    for u in ("rate@example.com", "sess@example.com", "lock@example.com",
              "size@example.com", "other@example.com"):
        D.add_user(u, PW)
    D.deliver("size@example.com", b"Subject: hello\r\n\r\nbody\r\n")
    D.start()


def teardown():
    if D is not None:
        D.stop()


def imap(**kw):
    return D.imap("imap", **kw)


def pop3(**kw):
    return D.connect("pop3", **kw)


def wait_log(text, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in D.log_text():
            return True
        time.sleep(0.05)
    return False


def closed_without_greeting(port, host="127.0.0.1", source=None):
    """Connect; True if the server closes without sending anything."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    finally:
        s.close()
    return data == b""


# ---------------------------------------------------------- commands/s

@test(timeout=60)
def test_imap_commands_are_slowed_not_refused():
    c = imap()
    c.login("rate@example.com", PW)
    n = RATE * 5 + RATE * 3          # the burst, then 3 s at the rate
    t0 = time.monotonic()
    c.send("".join("n%d NOOP\r\n" % i for i in range(n)))
    done = 0
    while done < n:
        text, _ = c.read_response()
        if text.startswith(b"n") and b" OK" in text:
            done += 1
        elif text.startswith(b"n"):
            raise ProtocolError("NOOP answered %r" % text)
    elapsed = time.monotonic() - t0
    # 3 s of refill at RATE/s after the burst; allow a little slack
    # either way for timer granularity, never "answered at once".
    assert elapsed >= 2.5, "%d NOOPs in %.2fs: not rate-limited" % (n, elapsed)
    assert elapsed < 20, "%d NOOPs took %.2fs" % (n, elapsed)
    assert wait_log("commands_per_second reached"), D.log_tail()
    # the session is still fine, and another session was never slowed
    c.ok("NOOP")
    o = imap()
    t1 = time.monotonic()
    o.login("other@example.com", PW)
    o.ok("NOOP")
    assert time.monotonic() - t1 < 2.0
    o.logout()
    c.logout()


@test(timeout=60)
def test_pop3_commands_are_slowed_not_refused():
    p = pop3()
    p.login("rate@example.com", PW)
    n = RATE * 5 + RATE * 2
    t0 = time.monotonic()
    p.send("NOOP\r\n" * n)
    for _ in range(n):
        line = p.readline()
        assert line.startswith(b"+OK"), line
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.5, "%d NOOPs in %.2fs: not rate-limited" % (n, elapsed)
    p.quit()


# ---------------------------------------------------------- connections

@test(timeout=60)
def test_connections_per_ip_across_workers():
    source = "127.0.0.7"
    held = []
    try:
        for _ in range(PER_IP):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.bind((source, 0))
            s.connect(("127.0.0.1", D.port("imap")))
            assert s.recv(100).startswith(b"* OK"), "greeting"
            held.append(s)
        # the held connections are spread over the workers (the kernel
        # hands accepts to whichever worker is ready), the limit is not
        assert closed_without_greeting(D.port("pop3"), source=source)
        assert wait_log("reason=max_connections_per_ip"), D.log_tail()
        # another address is not affected
        o = imap()
        o.login("other@example.com", PW)
        o.logout()
    finally:
        for s in held:
            s.close()
    # places are given back when connections close
    end = time.monotonic() + 5
    while True:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.bind((source, 0))
            s.connect(("127.0.0.1", D.port("imap")))
            g = s.recv(100)
            s.close()
            if g.startswith(b"* OK"):
                break
        except OSError:
            pass
        if time.monotonic() > end:
            raise AssertionError("per-IP place not given back after close")
        time.sleep(0.1)


@test(timeout=60)
def test_sessions_per_user_across_protocols():
    user = "sess@example.com"
    held = []
    try:
        # one POP3 session (it holds the maildrop lock) and IMAP ones
        p = pop3()
        p.login(user, PW)
        held.append(p)
        for i in range(SESSIONS - 1):
            c = imap()
            c.login(user, PW)
            held.append(c)
        c = imap()
        status, _ = c.cmd('LOGIN "%s" "%s"' % (user, PW))
        assert not status.startswith(b"OK"), status
        assert wait_log("max_sessions_per_user"), D.log_tail()
        p = pop3()
        p.ok("USER " + user)
        p.err("PASS " + PW)
        p.close()
        c.close()
        held.pop().logout()     # an IMAP one
        end = time.monotonic() + 5
        while True:
            c = imap()
            status, _ = c.cmd('LOGIN "%s" "%s"' % (user, PW))
            if status.startswith(b"OK"):
                held.append(c)
                break
            c.close()
            if time.monotonic() > end:
                raise AssertionError("session place not given back: %r" % status)
            time.sleep(0.1)
    finally:
        for c in held:
            try:
                c.quit() if hasattr(c, "quit") else c.logout()
            except Exception:
                pass


# ---------------------------------------------------------- auth failures

def raw_login(user, password, source):
    """LOGIN over a fresh connection from `source`: (tagged line, seconds)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", D.port("imap")))
    f = s.makefile("rb")
    try:
        greeting = f.readline()
        assert greeting.startswith(b"* OK"), greeting
        t0 = time.monotonic()
        s.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (user.encode(), password.encode()))
        while True:
            line = f.readline()
            if not line:
                raise EOFError("closed during LOGIN")
            if line.startswith(b"a1 "):
                return line, time.monotonic() - t0
    finally:
        f.close()
        s.close()


@test(timeout=60)
def test_failed_logins_delay_then_lockout_server_wide():
    # From an address of its own, so the lockout of that address does not
    # touch the other tests (which connect from 127.0.0.1).
    user, source = "lock@example.com", "127.0.0.9"
    delays = []
    for i in range(4):
        # a new connection each time: it may land on any worker
        line, dt = raw_login(user, "wrong %d" % i, source)
        assert line.startswith(b"a1 NO"), line
        delays.append(dt)
    assert delays[-1] >= 0.35 and delays[-1] > delays[0], \
        "no growing delay: %r" % delays
    # locked out now: even the right password is refused, on any worker
    for _ in range(3):
        line, _ = raw_login(user, PW, source)
        assert not line.startswith(b"a1 OK"), line
    assert wait_log("too many failures"), D.log_tail()
    # another address is not locked out for other users
    line, _ = raw_login("other@example.com", PW, "127.0.0.10")
    assert line.startswith(b"a1 OK"), line


# ---------------------------------------------------------- sizes

@test(timeout=60)
def test_line_and_message_size_limits():
    # IMAP: a 20 kB line before login gets BAD/BYE, the server lives
    c = imap()
    c.send("a1 LOGIN " + "x" * 20000 + "\r\n")
    text, _ = c.read_response()
    assert b"BAD" in text or b"BYE" in text, text
    # after login: imap.max_line and imap.max_literal
    c = imap()
    c.login("size@example.com", PW)
    c.select("INBOX")
    status, _ = c.cmd("SEARCH TEXT " + "z" * 3000)     # under 4k: fine
    assert status.startswith(b"OK"), status
    status, _ = c.cmd("SEARCH TEXT " + "z" * 5000)
    assert status.startswith(b"BAD") and b"long" in status.lower(), status
    c.send("a9 SEARCH TEXT {3000}\r\n")
    text, _ = c.read_response()
    assert text.startswith(b"a9 BAD") and b"too big" in text.lower(), text
    status, _ = c.cmd("SEARCH TEXT", literal=b"q" * 1500)
    assert status.startswith(b"OK"), status
    # APPEND over max_message_size is refused before the literal is sent
    status, _ = c.cmd("APPEND INBOX {%d}" % (100 * 1024))
    assert status.startswith(b"NO") or status.startswith(b"BAD"), status
    assert b"TOOBIG" in status or b"too" in status.lower(), status
    c.logout()
    # POP3: a 20 kB line gets -ERR, the session goes on
    p = pop3()
    p.send("USER " + "y" * 20000 + "\r\n")
    line = p.readline()
    assert line.startswith(b"-ERR"), line
    p.login("size@example.com", PW)
    p.quit()
    # LMTP: SIZE over the limit is refused at MAIL FROM, and a message
    # that is too big without SIZE is refused after DATA
    s = socket.create_connection(("127.0.0.1", D.port("lmtp")), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"LHLO test\r\n")
    while True:
        line = f.readline()
        if line[3:4] == b" ":
            break
    s.sendall(b"MAIL FROM:<a@example.com> SIZE=%d\r\n" % (1 << 20))
    line = f.readline()
    assert line.startswith(b"552"), line
    s.sendall(b"MAIL FROM:<a@example.com>\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"RCPT TO:<size@example.com>\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    body = (b"x" * 998 + b"\r\n") * 100      # ~100 kB > 64k
    s.sendall(b"Subject: big\r\n\r\n" + body + b".\r\n")
    line = f.readline()
    assert line.startswith(b"552") or line.startswith(b"5"), line
    s.sendall(b"QUIT\r\n")
    s.close()
    # nothing of it was stored
    p = pop3()
    p.login("size@example.com", PW)
    n = int(p.ok("STAT").split()[1])
    assert n == 1, "%d messages after refused deliveries" % n
    p.quit()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
