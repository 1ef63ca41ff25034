#!/usr/bin/env python3
"""test_pop3.py - POP3 against a real mailaccessd (issue 2).

One daemon with three loopback listeners (STLS, implicit TLS, plaintext),
an LMDB store and a passwd file; mail goes in with `mailaccessctl deliver`
and comes back over POP3 (RFC 1939, 2449 CAPA, 2595 STLS, 5034 SASL,
3206 response codes). Each test uses its own user, so sessions never meet
unless a test wants them to ([IN-USE]).

Run: python3 tests/protocol/test_pop3.py [test_name ...]
(MA_BUILD_DIR selects the build, default build-asan.)
"""

import os
import poplib
import re
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, crlf, b64  # noqa: E402

D = None          # the daemon
PW = "Secret-pw 1"  # every user's password (has a space: PASS takes the rest of the line)

USERS = [
    "demo@example.com", "stls@example.com", "pops@example.com",
    "plain@example.com", "sasl@example.com", "bytes@example.com",
    "big@example.com", "stat@example.com", "uidl@example.com",
    "dele@example.com", "drop@example.com", "rset@example.com",
    "state@example.com", "pipe@example.com", "inuse@example.com",
    "slow@example.com", "fast@example.com", "inject@example.com",
    "logger@example.com", "badpw@example.com", "alive@example.com",
    "snap@example.com", "conc@example.com", "soup@example.com",
]

SIMPLE = (b"From: sender@example.org\nTo: demo@example.com\n"
          b"Subject: hello\nMessage-ID: <1@example.org>\n\nHello there.\n")


def setup():
    global D
    D = harness.Daemon("pop3")
    for u in USERS:
        D.add_user(u, PW)
    D.start()


def teardown():
    pass


def session(user, listener="pop3plain"):
    """A logged-in raw client."""
    c = D.connect(listener)
    c.login(user, PW)
    return c


def mk(subject, body=b"body line\n"):
    return (b"From: a@example.org\nTo: b@example.com\nSubject: "
            + subject.encode() + b"\n\n" + body)


def expect_eof_or_err(c, timeout=5):
    """After abuse: the server answers -ERR or closes, within timeout."""
    c.sock.settimeout(timeout)
    try:
        line = c.readline()
    except (EOFError, ConnectionResetError):
        return None
    except socket.timeout:
        raise AssertionError("no answer within %ss" % timeout)
    assert line.startswith(b"-ERR"), line[:200]
    return line


def assert_alive():
    assert D.alive(), "daemon died; log tail:\n" + D.log_tail()
    with D.connect("pop3plain", timeout=5) as c:
        assert c.greeting.startswith(b"+OK"), c.greeting
        c.login("alive@example.com", PW)
        assert c.cmd("NOOP").startswith("+OK")
        c.quit()


# ------------------------------------------------------------ greeting, CAPA

@test()
def test_greeting():
    for name in ("pop3", "pop3s", "pop3plain"):
        with D.connect(name) as c:
            assert c.greeting.startswith(b"+OK"), (name, c.greeting)
            assert c.greeting.endswith(b"\r\n")
            assert c.quit().startswith("+OK")


def _capa_names(lines):
    return [l.split(" ")[0].upper() for l in lines]


@test()
def test_capa_before_tls_offers_stls():
    with D.connect("pop3") as c:
        capa = c.capa()
        names = _capa_names(capa)
        for want in ("STLS", "USER", "UIDL", "TOP", "PIPELINING",
                     "RESP-CODES", "AUTH-RESP-CODE"):
            assert want in names, (want, capa)
        # loopback listener: plaintext auth allowed, so SASL is offered
        sasl = [l.upper().split() for l in capa if l.upper().startswith("SASL")]
        assert sasl and "PLAIN" in sasl[0] and "LOGIN" in sasl[0], capa


@test()
def test_capa_after_stls_has_no_stls():
    with D.connect("pop3") as c:
        c.stls()
        capa = c.capa()
        names = _capa_names(capa)
        assert "STLS" not in names, capa
        for want in ("USER", "UIDL", "TOP", "PIPELINING", "RESP-CODES"):
            assert want in names, (want, capa)
        sasl = [l.upper().split() for l in capa if l.upper().startswith("SASL")]
        assert sasl and "PLAIN" in sasl[0], capa


@test()
def test_capa_implicit_and_plain_listener_have_no_stls():
    for name in ("pop3s", "pop3plain"):
        with D.connect(name) as c:
            names = _capa_names(c.capa())
            assert "STLS" not in names, (name, names)
            assert "USER" in names, (name, names)


@test()
def test_capa_after_login():
    with session("demo@example.com", "pop3s") as c:
        names = _capa_names(c.capa())
        assert "STLS" not in names
        for want in ("UIDL", "TOP", "PIPELINING"):
            assert want in names, (want, names)
        c.quit()


@test()
def test_stls_unavailable_on_plain_and_implicit():
    for name in ("pop3plain", "pop3s"):
        with D.connect(name) as c:
            c.err("STLS")
            assert c.cmd("CAPA").startswith("+OK")  # still usable
            c.read_multi()


@test()
def test_stls_twice_and_after_login_refused():
    with D.connect("pop3") as c:
        c.stls()
        c.err("STLS")
        c.login("stls@example.com", PW)
        c.err("STLS")
        c.quit()


# ------------------------------------------------------------------ logins

@test()
def test_login_stls_poplib():
    D.deliver("stls@example.com", SIMPLE)
    p = poplib.POP3("127.0.0.1", D.port("pop3"), timeout=10)
    try:
        assert p.getwelcome().startswith(b"+OK")
        assert p.stls(context=harness.client_context()).startswith(b"+OK")
        assert isinstance(p.sock, ssl.SSLSocket)
        p.user("stls@example.com")
        assert p.pass_(PW).startswith(b"+OK")
        n, size = p.stat()
        assert n >= 1 and size > 0, (n, size)
        resp, lines, octets = p.retr(n)
        assert b"\r\n".join(lines) + b"\r\n" == crlf(SIMPLE)
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


@test()
def test_login_implicit_tls_poplib():
    D.deliver("pops@example.com", SIMPLE)
    p = poplib.POP3_SSL("127.0.0.1", D.port("pop3s"), timeout=10,
                        context=harness.client_context())
    try:
        assert p.getwelcome().startswith(b"+OK")
        p.user("pops@example.com")
        assert p.pass_(PW).startswith(b"+OK")
        assert p.stat()[0] == 1
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


@test()
def test_implicit_tls_rejects_untrusted_hostname():
    # The test CA signed the cert for localhost only.
    ctx = harness.client_context()
    s = socket.create_connection(("127.0.0.1", D.port("pop3s")), timeout=10)
    try:
        try:
            ctx.wrap_socket(s, server_hostname="not-localhost.example")
        except ssl.SSLCertVerificationError:
            return
        raise AssertionError("certificate accepted for a wrong name")
    finally:
        s.close()


@test()
def test_user_pass_plaintext_on_loopback():
    # Loopback listener without TLS: plaintext auth allowed by design
    # (DESIGN.md: refused unless loopback or allowed by the admin).
    with D.connect("pop3plain") as c:
        assert c.ok("USER plain@example.com").startswith("+OK")
        assert c.ok("PASS " + PW).startswith("+OK")
        assert c.ok("STAT")
        c.quit()


@test()
def test_auth_plain_with_initial_response():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN " + b64("\0sasl@example.com\0" + PW))
        assert r.startswith("+OK"), r
        assert c.ok("STAT")
        c.quit()


@test()
def test_auth_plain_without_initial_response():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN")
        assert r.startswith("+"), r
        assert not r.startswith("+OK"), r
        r = c.cmd(b64("\0sasl@example.com\0" + PW))
        assert r.startswith("+OK"), r
        c.quit()


@test()
def test_auth_plain_with_authzid_equal_to_user():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN " + b64("sasl@example.com\0sasl@example.com\0" + PW))
        assert r.startswith("+OK"), r
        c.quit()


@test(timeout=60)
def test_auth_plain_other_authzid_refused():
    # No proxy authorization: valid credentials of sasl@ must not open
    # someone else's mailbox.
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN " + b64("demo@example.com\0sasl@example.com\0" + PW))
        assert r.startswith("-ERR"), r
        assert c.cmd("STAT").startswith("-ERR")


@test()
def test_auth_login():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("+ "), r
        r = c.cmd(b64("sasl@example.com"))
        assert r.startswith("+ ") or r == "+", r
        r = c.cmd(b64(PW))
        assert r.startswith("+OK"), r
        assert c.ok("STAT")
        c.quit()


@test()
def test_auth_cancel_and_bad_mechanism():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN")
        assert r.startswith("+"), r
        c.err("*")
        c.err("AUTH NOSUCHMECH")
        c.err("AUTH PLAIN !!!notbase64!!!")
        # the session still works
        r = c.cmd("AUTH PLAIN " + b64("\0sasl@example.com\0" + PW))
        assert r.startswith("+OK"), r
        c.quit()


@test()
def test_auth_without_mechanism_lists_mechanisms():
    # RFC 5034 keeps the RFC 1734 form: "AUTH" alone lists mechanisms
    # (many clients probe with it); -ERR is also allowed.
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH")
        if r.startswith("+OK"):
            mechs = [l.upper() for l in c.read_multi().decode().split()]
            assert "PLAIN" in mechs, mechs
        else:
            assert r.startswith("-ERR"), r
        assert c.cmd("CAPA").startswith("+OK")
        c.read_multi()


@test(timeout=60)
def test_wrong_password_auth_code_and_delay():
    with D.connect("pop3s") as c:
        c.ok("USER badpw@example.com")
        t0 = time.monotonic()
        r = c.cmd("PASS wrong-password")
        dt = time.monotonic() - t0
        assert r.startswith("-ERR [AUTH]"), r
        assert dt >= 0.8, "failure answered after %.2fs, want >= auth_fail_delay (1s)" % dt
        # RFC 1939: after a failed PASS the client may start again
        c.ok("USER badpw@example.com")
        r = c.cmd("PASS " + PW)
        assert r.startswith("+OK"), r
        c.quit()
    with D.connect("pop3s") as c:
        t0 = time.monotonic()
        r = c.cmd("AUTH PLAIN " + b64("\0badpw@example.com\0nope"))
        dt = time.monotonic() - t0
        assert r.startswith("-ERR [AUTH]"), r
        assert dt >= 0.8, dt


@test(timeout=90)
def test_lockout_after_repeated_failures():
    d = harness.Daemon("pop3-lockout", listeners=[dict(name="plain", tls="none")],
                       limits={"auth_fail_delay": "1s", "auth_fail_max_delay": "1s",
                               "auth_fail_lockout": 3, "auth_fail_window": "5m"})
    d.add_user("lock@example.com", PW)
    d.start()
    try:
        with d.connect("plain", timeout=15) as c:
            for i in range(3):
                c.ok("USER lock@example.com")
                r = c.cmd("PASS wrong %d" % i)
                assert r.startswith("-ERR [AUTH]"), r
            # locked out now: even the right password is refused
            c.ok("USER lock@example.com")
            r = c.cmd("PASS " + PW)
            assert r.startswith("-ERR [AUTH]"), r
        with d.connect("plain", timeout=15) as c:
            r = c.cmd("AUTH PLAIN " + b64("\0lock@example.com\0" + PW))
            assert r.startswith("-ERR"), r
    finally:
        assert d.stop() == 0


@test(timeout=60)
def test_unknown_user_same_answer_as_wrong_password():
    with D.connect("pop3s") as c:
        r = c.cmd("USER nobody-here@example.com")
        assert r.startswith("+OK"), "USER must not reveal unknown users: %r" % r
        r = c.cmd("PASS whatever")
        assert r.startswith("-ERR [AUTH]"), r


# ---------------------------------------------------------- message bytes

EDGE_MESSAGES = [
    ("dots", b"Subject: dots\n\n.\n..\n...\n.leading dot\nmiddle . dot\n. \n.\r\nend\n"),
    ("lone-dot-last", b"Subject: lone dot last\n\nx\n.\n"),
    ("8bit", b"Subject: 8bit\nContent-Type: text/plain; charset=utf-8\n"
             b"Content-Transfer-Encoding: 8bit\n\n" + "gr\u00fc\u00dfe \u2603\n".encode()
             + bytes(range(0x80, 0x100)) + b"\n"),
    ("crlf-input", b"Subject: crlf\r\nX-A: 1\r\n\r\nline one\r\nline two\r\n"),
    ("lf-input", b"Subject: lf\nX-A: 1\n\nline one\nline two\n"),
    ("no-final-newline", b"Subject: no newline\n\nlast line without newline"),
    ("empty-body", b"Subject: empty body\n\n"),
    ("long-line", b"Subject: long\n\n" + b"x" * 20000 + b"\n"),
    ("blank-lines", b"Subject: blanks\n\n\n\n\nafter blanks\n\n"),
]


def expected_retr(msg):
    """What RETR must return: CRLF lines; a last line without newline gets
    the CRLF that ends it on the wire (RFC 1939 3)."""
    m = crlf(msg)
    if not m.endswith(b"\r\n"):
        m += b"\r\n"
    return m


@test(timeout=120)
def test_retr_byte_identical():
    user = "bytes@example.com"
    for name, msg in EDGE_MESSAGES:
        D.deliver(user, msg)
    with session(user) as c:
        n = int(c.ok("STAT").split()[1])
        assert n == len(EDGE_MESSAGES), n
        sizes = {}
        for line in c.lines("LIST"):
            i, s = line.split()
            sizes[int(i)] = int(s)
        for i, (name, msg) in enumerate(EDGE_MESSAGES, 1):
            r, body = c.multi("RETR %d" % i)
            want = expected_retr(msg)
            assert body == want, "%s: got %r want %r" % (name, body[:300], want[:300])
            stored = crlf(msg)
            assert sizes[i] in (len(stored), len(want)), (name, sizes[i], len(stored))
        c.quit()


@test(timeout=300)
def test_10mb_message():
    user = "big@example.com"
    line = b"0123456789abcdefghijklmnopqrstuvwxyz .. 0123456789 ABCDEFGHIJKLMNOP\n"
    body = bytearray()
    i = 0
    while len(body) < 10 * 1024 * 1024:
        body += (b"." if i % 7 == 0 else b"") + line
        i += 1
    msg = b"Subject: ten megabytes\n\n" + bytes(body)
    D.deliver(user, msg)
    with session(user, "pop3s") as c:
        st = c.ok("STAT").split()
        assert st[1] == "1", st
        assert int(st[2]) == len(crlf(msg)), (st, len(crlf(msg)))
        t0 = time.monotonic()
        r, got = c.multi("RETR 1")
        assert got == crlf(msg), "10 MB message differs (len %d vs %d)" % (len(got), len(crlf(msg)))
        print("    10 MB RETR over TLS: %.2fs" % (time.monotonic() - t0))
        c.quit()


# ------------------------------------------------------ STAT LIST UIDL TOP

TOP_MSG = (b"From: a@example.org\nTo: stat@example.com\nSubject: top\n\n"
           b"b1\nb2\n.b3\nb4\nb5\n")


@test(timeout=60)
def test_stat_list_uidl_top():
    user = "stat@example.com"
    msgs = [mk("one"), mk("two", b"a\nb\n"), TOP_MSG]
    for m in msgs:
        D.deliver(user, m)
    sizes = [len(crlf(m)) for m in msgs]
    with session(user) as c:
        r = c.ok("STAT")
        assert re.fullmatch(r"\+OK \d+ \d+", r), r
        assert r == "+OK %d %d" % (len(msgs), sum(sizes)), (r, sizes)
        assert c.lines("LIST") == ["%d %d" % (i, s) for i, s in enumerate(sizes, 1)]
        assert c.ok("LIST 2") == "+OK 2 %d" % sizes[1]
        uidls = c.lines("UIDL")
        assert [u.split()[0] for u in uidls] == ["1", "2", "3"], uidls
        ids = [u.split()[1] for u in uidls]
        assert len(set(ids)) == 3
        assert c.ok("UIDL 3") == "+OK 3 " + ids[2]
        head = b"From: a@example.org\r\nTo: stat@example.com\r\nSubject: top\r\n\r\n"
        r, body = c.multi("TOP 3 0")
        assert body == head, body
        r, body = c.multi("TOP 3 2")
        assert body == head + b"b1\r\nb2\r\n", body
        r, body = c.multi("TOP 3 3")
        assert body == head + b"b1\r\nb2\r\n.b3\r\n", body
        r, body = c.multi("TOP 3 100")
        assert body == crlf(TOP_MSG), body
        c.quit()


@test(timeout=60)
def test_uidl_dovecot_format_and_stable():
    user = "uidl@example.com"
    for i in range(3):
        D.deliver(user, mk("uidl %d" % i))

    def get():
        with session(user) as c:
            u = [l.split()[1] for l in c.lines("UIDL")]
            c.quit()
        return u
    first = get()
    assert len(first) == 3
    for u in first:
        # uidl_format = dovecot: Dovecot's "%08Xu%08Xv", UID then
        # UIDVALIDITY; Dovecot's %X modifier prints lowercase hex.
        assert re.fullmatch(r"[0-9a-f]{16}", u), u
    uids = [int(u[:8], 16) for u in first]
    vals = {u[8:] for u in first}
    assert len(vals) == 1 and int(vals.pop(), 16) != 0, first
    assert uids == sorted(uids) and len(set(uids)) == 3 and uids[0] >= 1, uids
    assert get() == first, "UIDL changed between sessions"
    D.deliver(user, mk("later"))
    second = get()
    assert second[:3] == first, (first, second)
    assert int(second[3][:8], 16) > uids[-1]
    assert second[3][8:] == first[0][8:]


@test(timeout=60)
def test_uidl_custom_format():
    d = harness.Daemon("pop3-uidlfmt", listeners=[dict(name="plain", tls="none")],
                       pop3={"uidl_format": "%u.%v"})
    d.add_user("fmt@example.com", PW)
    d.deliver("fmt@example.com", mk("a"))
    d.deliver("fmt@example.com", mk("b"))
    d.start()
    try:
        with d.connect("plain") as c:
            c.login("fmt@example.com", PW)
            ids = [l.split()[1] for l in c.lines("UIDL")]
            c.quit()
        m = [re.fullmatch(r"(\d+)\.(\d+)", u) for u in ids]
        assert all(m), ids
        uids = [int(x.group(1)) for x in m]
        assert 1 <= uids[0] < uids[1], ids
        assert m[0].group(2) == m[1].group(2) and int(m[0].group(2)) > 0, ids
    finally:
        assert d.stop() == 0


# ------------------------------------------------------- DELE QUIT RSET

def uidls(c):
    return [l.split()[1] for l in c.lines("UIDL")]


@test(timeout=60)
def test_dele_quit_removes_exactly_marked():
    user = "dele@example.com"
    for i in range(5):
        D.deliver(user, mk("dele %d" % i, ("n=%d\n" % i).encode()))
    with session(user) as c:
        before = uidls(c)
        assert len(before) == 5
        assert c.ok("DELE 2")
        assert c.ok("DELE 4")
        c.err("DELE 2")            # already deleted
        c.err("RETR 2")
        c.err("LIST 4")
        r = c.ok("STAT")
        assert r.split()[1] == "3", r  # STAT excludes deleted messages
        assert [l.split()[0] for l in c.lines("LIST")] == ["1", "3", "5"]
        r = c.quit()
        assert r.startswith("+OK"), r
    time.sleep(0.2)
    with session(user) as c:
        after = uidls(c)
        assert after == [before[0], before[2], before[4]], (before, after)
        r, body = c.multi("RETR 2")   # renumbered: old 3
        assert b"n=2" in body, body
        c.quit()


@test(timeout=60)
def test_dele_then_drop_connection_removes_nothing():
    user = "drop@example.com"
    for i in range(3):
        D.deliver(user, mk("drop %d" % i))
    c = session(user)
    before = uidls(c)
    c.ok("DELE 1")
    c.ok("DELE 3")
    c.sock.close()  # no QUIT: RFC 1939 6, no UPDATE state
    time.sleep(0.5)
    with session(user) as c2:
        assert uidls(c2) == before
        c2.quit()


@test(timeout=60)
def test_rset_unmarks():
    user = "rset@example.com"
    for i in range(3):
        D.deliver(user, mk("rset %d" % i))
    with session(user) as c:
        before = uidls(c)
        c.ok("DELE 1")
        c.ok("DELE 2")
        assert c.ok("STAT").split()[1] == "1"
        c.ok("RSET")
        assert c.ok("STAT").split()[1] == "3"
        c.ok("RETR 1")
        c.read_multi()
        c.ok("DELE 3")
        c.quit()
    time.sleep(0.2)
    with session(user) as c:
        assert uidls(c) == before[:2]
        c.quit()


@test(timeout=60)
def test_quit_in_authorization_state():
    with D.connect("pop3plain") as c:
        r = c.cmd("QUIT")
        assert r.startswith("+OK"), r
        assert c.read_until_eof(5) == b""


@test(timeout=60)
def test_snapshot_at_login():
    # POP3 sees the INBOX as it was at login (DESIGN.md); mail delivered
    # during the session appears in the next one and survives its QUIT.
    user = "snap@example.com"
    D.deliver(user, mk("snap old"))
    with session(user) as c:
        before = c.ok("STAT")
        old_ids = uidls(c)
        D.deliver(user, mk("snap new", b"new\n"))
        assert c.ok("STAT") == before
        assert uidls(c) == old_ids
        c.ok("DELE 1")
        c.quit()
    time.sleep(0.2)
    with session(user) as c:
        ids = uidls(c)
        assert len(ids) == 1 and ids[0] not in old_ids, (old_ids, ids)
        assert c.multi("RETR 1")[1] == crlf(mk("snap new", b"new\n"))
        c.quit()


@test(timeout=120)
def test_concurrent_deliveries():
    user = "conc@example.com"
    n = 12
    procs = []
    for i in range(n):
        p = subprocess.Popen([harness.ctl_path(), "-c", D.conf_path, "deliver", user],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=D.env)
        procs.append((i, p))
    for i, p in procs:
        p.stdin.write(mk("conc %d" % i, ("n=%d\n" % i).encode()))
        p.stdin.close()
    for i, p in procs:
        err = p.stderr.read().decode(errors="replace")
        assert p.wait(60) == 0, (i, p.returncode, err)
        assert not harness.sanitizer_report(err), err
    with session(user) as c:
        assert int(c.ok("STAT").split()[1]) == n
        ids = uidls(c)
        assert len(set(ids)) == n
        bodies = sorted(c.multi("RETR %d" % i)[1] for i in range(1, n + 1))
        assert bodies == sorted(crlf(mk("conc %d" % i, ("n=%d\n" % i).encode()))
                                for i in range(n))
        c.quit()


@test(timeout=120)
def test_restart_and_kill9_keep_acknowledged_writes():
    d = harness.Daemon("pop3-restart", listeners=[dict(name="plain", tls="none")])
    user = "restart@example.com"
    d.add_user(user, PW)
    for i in range(4):
        d.deliver(user, mk("restart %d" % i))
    d.start()
    with d.connect("plain") as c:
        c.login(user, PW)
        ids = uidls(c)
        c.ok("DELE 2")
        assert c.quit().startswith("+OK")  # acknowledged: must be durable
    d.proc.kill()  # kill -9: no clean shutdown
    d.proc.wait(10)
    d.start()
    try:
        with d.connect("plain") as c:
            c.login(user, PW)
            assert uidls(c) == [ids[0], ids[2], ids[3]], ids
            c.quit()
        assert d.stop() == 0
        d.start()
        with d.connect("plain") as c:
            c.login(user, PW)
            assert uidls(c) == [ids[0], ids[2], ids[3]], ids
            c.quit()
    finally:
        assert d.stop() == 0


# ------------------------------------------------------ wrong state / args

@test(timeout=60)
def test_wrong_state_and_bad_arguments():
    user = "state@example.com"
    D.deliver(user, mk("state"))
    with D.connect("pop3plain") as c:
        for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1",
                    "RSET", "PASS " + PW):
            c.err(cmd)
        c.ok("USER " + user)
        c.ok("PASS " + PW)
        for cmd in ("USER " + user, "PASS " + PW, "STLS",
                    "AUTH PLAIN " + b64("\0%s\0%s" % (user, PW)),
                    "RETR 0", "RETR 2", "RETR -1", "RETR abc", "RETR",
                    "RETR 1 2", "LIST 99", "LIST 0", "DELE 99", "DELE",
                    "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP 99 1", "UIDL 99",
                    "RETR 99999999999999999999", "LIST 4294967297",
                    "XYZZY", ""):
            r = c.cmd(cmd)
            assert r.startswith("-ERR"), (cmd, r)
            # a +OK in between: servers may hang up after a run of errors
            assert c.ok("NOOP")
        assert c.ok("STAT") == "+OK 1 %d" % len(crlf(mk("state")))
        c.quit()


@test(timeout=60)
def test_lowercase_commands():
    # RFC 1939 3: keywords are case-insensitive.
    user = "state@example.com"
    with D.connect("pop3plain") as c:
        c.ok("user " + user)
        c.ok("pass " + PW)
        c.ok("stat")
        c.ok("NoOp")
        c.quit()


# ----------------------------------------------------------------- pipelining

@test(timeout=60)
def test_pipelining():
    user = "pipe@example.com"
    m = mk("pipe", b"pipelined\n")
    D.deliver(user, m)
    D.deliver(user, m)
    with D.connect("pop3s") as c:
        c.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\n"
               "TOP 2 0\r\nNOOP\r\nDELE 9\r\nNOOP\r\n" % (user, PW))
        assert c.resp().startswith("+OK")
        assert c.resp().startswith("+OK")
        assert c.resp() == "+OK 2 %d" % (2 * len(crlf(m)))
        assert c.resp().startswith("+OK")
        assert c.read_multi() == b"1 %d\r\n2 %d\r\n" % (len(crlf(m)), len(crlf(m)))
        assert c.resp().startswith("+OK 1 ")
        assert c.resp().startswith("+OK")
        assert c.read_multi() == crlf(m)
        assert c.resp().startswith("+OK")
        assert c.read_multi() == crlf(m).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        assert c.resp().startswith("+OK")
        assert c.resp().startswith("-ERR")
        assert c.resp().startswith("+OK")
        c.quit()


@test(timeout=60)
def test_pipelining_byte_at_a_time():
    # The parser must resume on partial lines.
    user = "pipe@example.com"
    with D.connect("pop3plain") as c:
        for b in ("USER %s\r\nPASS %s\r\nSTAT\r\n" % (user, PW)).encode():
            c.send(bytes([b]))
        assert c.resp().startswith("+OK")
        assert c.resp().startswith("+OK")
        assert c.resp().startswith("+OK 2 ")
        c.quit()


# --------------------------------------------------------------- IN-USE

@test(timeout=60)
def test_second_session_in_use():
    user = "inuse@example.com"
    a = session(user)
    try:
        with D.connect("pop3plain") as b:
            b.ok("USER " + user)
            r = b.cmd("PASS " + PW)
            assert r.startswith("-ERR [IN-USE]"), r
        with D.connect("pop3s") as b:
            r = b.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, PW)))
            assert r.startswith("-ERR [IN-USE]"), r
    finally:
        a.quit()
    time.sleep(0.3)
    with session(user) as b:  # released after QUIT
        b.quit()
    c = session(user)
    c.sock.close()            # released after a dropped connection too
    time.sleep(0.5)
    with session(user) as b:
        b.quit()


# ---------------------------------------------------------------- bad input

@test(timeout=60)
def test_100kb_line():
    with D.connect("pop3plain") as c:
        c.send(b"USER " + b"A" * 100000 + b"\r\n")
        line = expect_eof_or_err(c)
        if line is not None:
            # if the server kept the conn, it resynced at the next line
            try:
                r = c.cmd("CAPA")
            except (EOFError, ConnectionResetError, BrokenPipeError):
                r = None  # it answered -ERR and hung up: fine too
            assert r is None or r.startswith("+OK") or r.startswith("-ERR"), r
    assert_alive()


@test(timeout=60)
def test_100kb_line_after_login():
    user = "state@example.com"
    with session(user) as c:
        c.send(b"LIST " + b"9" * 100000 + b"\r\n")
        if expect_eof_or_err(c) is not None:
            try:
                r = c.cmd("NOOP")
                assert r.startswith("+OK") or r.startswith("-ERR"), r
                c.quit()
            except (EOFError, ConnectionResetError, BrokenPipeError):
                pass
    assert_alive()


@test(timeout=60)
def test_nul_bytes_and_control_characters():
    with D.connect("pop3plain") as c:
        for bad in (b"NO\x00OP\r\n", b"\x00\r\n", b"USER a\x00b\r\n",
                    b"\xff\xfe\xfd\r\n", b"CAPA\rX\r\n", b"\r\n"):
            c.send(bad)
            try:
                line = c.readline()
            except (EOFError, ConnectionResetError):
                break
            assert line.startswith(b"-ERR") or line.startswith(b"+OK"), (bad, line)
            if bad.startswith(b"USER") and line.startswith(b"+OK"):
                # a user name with a NUL must never log in
                r = c.cmd("PASS " + PW)
                assert r.startswith("-ERR"), r
    assert_alive()


@test(timeout=60)
def test_unknown_commands():
    with D.connect("pop3plain") as c:
        closed = False
        for i in range(30):
            try:
                r = c.cmd("BOGUS%d arg" % i)
            except (EOFError, ConnectionResetError, BrokenPipeError):
                closed = True  # too many bad commands: allowed to hang up
                break
            assert r.startswith("-ERR"), r
        if not closed:
            assert c.cmd("CAPA").startswith("+OK")
            c.read_multi()
    assert_alive()


@test(timeout=60)
def test_line_without_crlf_then_close():
    c = D.connect("pop3plain")
    c.send(b"USER half-a-comm")
    c.sock.shutdown(socket.SHUT_WR)
    data = c.read_until_eof(5)
    assert b"+OK" not in data, data
    c.close()
    assert_alive()


GARBAGE = [
    b"GET / HTTP/1.0\r\n\r\n" + b"\x00" * 2000,   # not a TLS record type
    b"\x16\x03\x01\xff\xff" + b"\x00" * 100,       # record over 2^14+2048
    b"\x16\x03\x01\x00\x10" + b"\xff" * 16 + b"\x00" * 100,  # bad handshake msg
]


@test(timeout=60)
def test_tls_garbage_on_implicit_port():
    # Garbage that is invalid at once (random bytes may look like the
    # start of a long record, which a server rightly waits for).
    for junk in GARBAGE:
        s = socket.create_connection(("127.0.0.1", D.port("pop3s")), timeout=10)
        try:
            s.sendall(junk)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError("server kept a garbage TLS connection "
                                     "open: %r" % junk[:8])
        finally:
            s.close()
    # plaintext POP3 on the TLS port: also dropped
    s = socket.create_connection(("127.0.0.1", D.port("pop3s")), timeout=10)
    try:
        s.sendall(b"USER x\r\nPASS y\r\n")
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
    finally:
        s.close()
    assert_alive()


@test(timeout=60)
def test_tls_hello_on_plain_port_and_garbage_after_stls():
    # A TLS ClientHello on a plaintext port: -ERR lines or a close.
    raw = socket.create_connection(("127.0.0.1", D.port("pop3plain")), timeout=10)
    try:
        raw.recv(1024)
        ctx = harness.client_context()
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
            raise AssertionError("TLS handshake succeeded on a plaintext listener")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
    finally:
        raw.close()
    # garbage instead of a handshake after STLS
    for junk in GARBAGE:
        with D.connect("pop3") as c:
            c.ok("STLS")
            c.send(junk)
            c.read_until_eof(10)
    assert_alive()


@test(timeout=60)
def test_stls_pipelined_plaintext_discarded():
    user = "inject@example.com"
    with D.connect("pop3") as c:
        # RFC 2595 / CVE-2011-0411 style injection: everything after STLS
        # in the same packet must be thrown away.
        c.send("STLS\r\nUSER %s\r\n" % user)
        r = c.resp()
        assert r.startswith("+OK"), r
        c.sock = harness.client_context().wrap_socket(c.sock, server_hostname="localhost")
        c.buf = bytearray()
        r = c.cmd("PASS " + PW)
        assert r.startswith("-ERR"), "injected USER survived STLS: %r" % r
        c.login(user, PW)
        c.quit()
    with D.connect("pop3") as c:
        c.send("STLS\r\nCAPA\r\n")
        assert c.resp().startswith("+OK")
        c.sock = harness.client_context().wrap_socket(c.sock, server_hostname="localhost")
        c.buf = bytearray()
        # The only answer over TLS must be QUIT's: nothing from the CAPA.
        r = c.cmd("QUIT")
        rest = c.read_until_eof(5)
        assert r.startswith("+OK") and rest == b"", (r, rest)
        assert "STLS" not in r and "USER" not in r, r


@test(timeout=120)
def test_slow_reader_does_not_block_others():
    slow, fast = "slow@example.com", "fast@example.com"
    big = b"Subject: slow\n\n" + (b"y" * 1000 + b"\n") * 10000
    D.deliver(slow, big)
    D.deliver(fast, mk("fast"))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", D.port("pop3plain")))
    s.recv(1024)
    s.sendall(("USER %s\r\nPASS %s\r\n" % (slow, PW)).encode())
    got = b""
    while got.count(b"\r\n") < 2:
        got += s.recv(1024)
    s.sendall(b"RETR 1\r\n")  # and never read
    time.sleep(1.0)
    try:
        for i in range(3):
            t0 = time.monotonic()
            with D.connect("pop3s", timeout=5) as c:
                c.login(fast, PW)
                r, body = c.multi("RETR 1")
                assert body == crlf(mk("fast"))
                c.quit()
            dt = time.monotonic() - t0
            assert dt < 3, "another session took %.2fs while one client stalls" % dt
    finally:
        s.close()
    time.sleep(0.3)
    assert_alive()
    with session(slow) as c:  # the stalled session released the mailbox
        c.quit()


@test(timeout=120)
def test_random_command_soup():
    # A small deterministic fuzzer: valid verbs with odd arguments, random
    # bytes, pipelined in odd-sized writes, in both states. Whatever the
    # answers, the daemon must stay up (ASan watches every step) and the
    # mailbox must be unchanged afterwards (no QUIT ever follows a DELE).
    import random
    rnd = random.Random(20261122)
    user = "soup@example.com"
    D.deliver(user, TOP_MSG)
    D.deliver(user, EDGE_MESSAGES[0][1])
    verbs = ["USER", "PASS", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET",
             "TOP", "UIDL", "CAPA", "AUTH", "APOP", "STLS", "UTF8", "LANG",
             "XTND", ""]
    args = ["", "1", "0", "-1", "99999999999999999999", "1 1", "1 -5", "*",
            "=", "PLAIN", "LOGIN", "PLAIN =", "AAAA", "%s%s%s", "\t", " ",
            "\xff\xfe", "1 2 3 4 5 6 7 8 9 10 11 12", "x" * 300]
    with session(user) as c:
        before = uidls(c)
        c.quit()
    for round_ in range(6):
        s = socket.create_connection(("127.0.0.1", D.port("pop3plain")), timeout=10)
        try:
            s.recv(512)
            if round_ % 2:
                s.sendall(("USER %s\r\nPASS %s\r\n" % (user, PW)).encode())
            data = bytearray()
            for i in range(150):
                if i % 5 == 4:
                    # a +OK now and then, so the bad-command limit (10 in
                    # a row) does not end the round early
                    data += b"CAPA\r\n"
                    continue
                if rnd.random() < 0.1:
                    data += bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 40)))
                    data += b"\r\n"
                else:
                    line = "%s %s" % (rnd.choice(verbs), rnd.choice(args))
                    if rnd.random() < 0.5:
                        line = line.lower()
                    data += line.encode("utf-8", "surrogateescape") + \
                        rnd.choice([b"\r\n", b"\n", b"\r\n"])
            data = data.replace(b"QUIT", b"QU1T").replace(b"quit", b"qu1t")
            data = data.replace(b"STLS", b"ST1S").replace(b"stls", b"st1s")
            pos = 0
            while pos < len(data):
                n = rnd.randint(1, 700)
                try:
                    s.sendall(bytes(data[pos:pos + n]))
                except (BrokenPipeError, ConnectionResetError):
                    break  # hung up on us (too many bad commands): fine
                pos += n
            s.settimeout(0.5)
            try:
                while s.recv(65536):
                    pass
            except (socket.timeout, ConnectionResetError):
                pass
        finally:
            s.close()
    time.sleep(0.3)
    assert_alive()
    with session(user) as c:
        assert uidls(c) == before
        c.quit()


@test(timeout=60)
def test_many_connections_at_once():
    conns = []
    try:
        for i in range(40):
            conns.append(D.connect("pop3plain", timeout=10))
        for c in conns:
            assert c.greeting.startswith(b"+OK")
    finally:
        for c in conns:
            c.close()
    assert_alive()


@test(timeout=60)
def test_abrupt_disconnects_mid_command():
    for listener in ("pop3plain", "pop3s", "pop3"):
        for payload in (b"US", b"USER x", b"USER x\r\nPA", b"CAPA\r\n"):
            c = D.connect(listener)
            c.send(payload)
            c.sock.close()
    # TLS handshake abandoned halfway
    s = socket.create_connection(("127.0.0.1", D.port("pop3s")), timeout=5)
    s.sendall(b"\x16\x03\x01\x00\xa0\x01\x00\x00\x9c\x03\x03")
    s.close()
    time.sleep(0.3)
    assert_alive()


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@test(timeout=90)
def test_listener_on_ipv4_and_ipv6_loopback():
    if not ipv6_loopback():
        raise harness.Skip("no ::1 on this machine")
    d = harness.Daemon("pop3-dualstack", listeners=[
        dict(name="both", tls="implicit", address="127.0.0.1, ::1"),
        dict(name="v6", tls="starttls", address="::1"),
    ])
    d.add_user("v6@example.com", PW)
    d.deliver("v6@example.com", mk("v6"))
    d.start()
    try:
        for host in ("127.0.0.1", "::1"):
            with d.connect("both", host=host) as c:
                c.login("v6@example.com", PW)
                assert c.multi("RETR 1")[1] == crlf(mk("v6"))
                c.quit()
        with d.connect("v6") as c:
            c.stls()
            c.login("v6@example.com", PW)
            c.quit()
    finally:
        assert d.stop() == 0


@test(timeout=90)
def test_idle_timeout_closes_stalled_clients():
    d = harness.Daemon("pop3-idle", listeners=[
        dict(name="plain", tls="none"), dict(name="tls", tls="implicit")],
        limits={"idle_timeout": "2s"})
    d.add_user("idle@example.com", PW)
    d.start()
    try:
        t0 = time.monotonic()
        silent = socket.create_connection(("127.0.0.1", d.port("tls")), timeout=15)
        partial = socket.create_connection(("127.0.0.1", d.port("tls")), timeout=15)
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello
        c = d.connect("plain", timeout=15)
        c.login("idle@example.com", PW)
        for s in (silent, partial):
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            s.close()
        data = c.read_until_eof(15)
        assert data == b"" or data.startswith(b"-ERR"), data
        dt = time.monotonic() - t0
        assert dt < 12, "stalled clients closed after %.1fs with idle_timeout=2s" % dt
        with d.connect("plain") as c2:  # and the server still serves
            c2.login("idle@example.com", PW)
            c2.quit()
    finally:
        assert d.stop() == 0


# ------------------------------------------------------- log, pid, alive

@test(timeout=60)
def test_session_summary_log_line():
    user = "logger@example.com"
    D.deliver(user, mk("log me"))
    D.deliver(user, mk("log me too"))
    with session(user) as c:
        c.ok("DELE 1")
        c.quit()
    time.sleep(0.5)
    lines = [l for l in D.log_text().splitlines() if user in l]
    assert lines, "no log line names %s" % user
    assert any("sid=" in l for l in lines), lines
    # one line per session when it ends: who, how, and what it did
    summary = [l for l in lines if "session end" in l and "user=" + user in l]
    assert summary, "no session summary line for %s:\n%s" % (user, "\n".join(lines))
    assert "tls=" in summary[-1] and "reason=" in summary[-1], summary[-1]
    assert re.search(r"\bdel=1\b", summary[-1]), summary[-1]


@test()
def test_pid_file():
    with open(D.pid_path) as f:
        pid = int(f.read().strip())
    assert pid == D.proc.pid, (pid, D.proc.pid)


@test()
def test_daemon_still_alive():
    assert_alive()


@test(timeout=90)
def test_sigterm_clean_exit():
    d = harness.Daemon("pop3-sigterm")
    d.add_user("t@example.com", PW)
    d.start()
    idle = d.connect("pop3plain")
    busy = d.connect("pop3s")
    busy.login("t@example.com", PW)
    t0 = time.monotonic()
    rc = d.stop(timeout=15)
    dt = time.monotonic() - t0
    assert rc == 0, "exit code %s; log:\n%s" % (rc, d.log_tail())
    assert dt < 10, dt
    # open sessions were told or closed, not left hanging
    for c in (idle, busy):
        data = c.read_until_eof(5)
        assert data == b"" or data.startswith(b"-ERR") or data.startswith(b"+OK"), data
        c.close()
    assert not os.path.exists(d.pid_path) or True  # removing it is optional


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
