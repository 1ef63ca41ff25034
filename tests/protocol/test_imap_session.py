#!/usr/bin/env python3
"""test_imap_session.py - the IMAP session layer against a real mailaccessd.

Greeting and CAPABILITY before/after STARTTLS and login, LOGIN and
AUTHENTICATE PLAIN (SASL-IR and continuation) over STARTTLS and implicit
TLS, LOGINDISABLED where plaintext is refused, wrong passwords, commands in
the wrong state, ID / ENABLE / NAMESPACE, the parser's limits over raw
sockets (literal bombs, deep lists, NUL, bare CR: the server answers and
survives, other sessions are unaffected), STARTTLS injection, and IDLE
woken by an APPEND from another session.

IDLE is also woken by `mailaccessctl deliver` (another process, through
the cross-process change bus), keeps the connection alive and ends after
imap.idle_timeout.

Run: python3 tests/protocol/test_imap_session.py [test_name ...]
(MA_BUILD_DIR selects the build.)
"""

import base64
import imaplib
import os
import re
import shutil
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, ProtocolError  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

D = None
PW = "Imap pw 7"
USERS = ["cap@example.com", "login@example.com", "sasl@example.com",
         "idle@example.com", "state@example.com", "misc@example.com",
         "bomb@example.com", "lib@example.com", "inject@example.com",
         "tls@example.com"]


def local_address():
    """A non-loopback address of this host (no packet is sent), or None:
    plaintext is always allowed over loopback, so LOGINDISABLED can only be
    seen on another address."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("192.0.2.1", 9))
        addr = s.getsockname()[0]
        s.close()
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


NET = local_address()


def setup():
    global D
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap",
                                       "imap.so")):
        raise harness.Skip("imap.so not built")
    D = harness.Daemon("imap-session", listeners=[
        dict(name="imap", protocol="imap", tls="starttls",
             allow_plaintext_auth=False),
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="imapplain", protocol="imap", tls="none"),
        dict(name="pop3", tls="starttls"),
    ] + ([dict(name="imapnet", protocol="imap", tls="starttls", address=NET)]
         if NET else []), extra="imap {\n  idle_timeout = 30m\n"
             "  autocreate = Drafts:drafts Sent:sent Trash:trash\n"
             "  autocreate_subscribe = yes\n}\n")
    for u in USERS:
        D.add_user(u, PW)
    D.start()


# ------------------------------------------------------------ IMAP client

class Imap:
    """Raw IMAP client: tagged commands, untagged responses collected,
    literals read by their {n} count."""

    def __init__(self, listener="imapplain", timeout=10, greet=True):
        self.listener = listener
        self.sock = socket.create_connection(
            (D.host(listener), D.port(listener)), timeout=timeout)
        l = next(x for x in D.listeners if x["name"] == listener)
        if l.get("tls") == "implicit":
            self.sock = harness.client_context(D.certs).wrap_socket(
                self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.n = 0
        self.greeting = None
        if greet:
            self.greeting = self.line()
            if not self.greeting.startswith(b"* OK"):
                raise ProtocolError("greeting %r" % self.greeting)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("IMAP connection closed by server")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def response(self):
        parts = []
        while True:
            line = self.line()
            parts.append(line)
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                break
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            parts.append(bytes(self.buf[:n]))
            del self.buf[:n]
        return b"".join(parts)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def tag(self):
        self.n += 1
        return b"t%d" % self.n

    def cmd(self, text):
        """Returns (tagged status line without the tag, [untagged])."""
        tag = self.tag()
        if isinstance(text, str):
            text = text.encode()
        self.send(tag + b" " + text + b"\r\n")
        return self.wait(tag)

    def wait(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag + b" "):
                return r[len(tag) + 1:], untagged
            untagged.append(r)

    def ok(self, text):
        st, u = self.cmd(text)
        if not st.startswith(b"OK"):
            raise ProtocolError("%r -> %r" % (text, st))
        return st, u

    def caps(self):
        st, u = self.ok("CAPABILITY")
        line = [x for x in u if x.startswith(b"* CAPABILITY ")]
        assert len(line) == 1, u
        return line[0][len(b"* CAPABILITY "):].decode().split()

    def starttls(self):
        st, u = self.ok("STARTTLS")
        self.sock = harness.client_context(D.certs).wrap_socket(
            self.sock, server_hostname="localhost")
        assert not self.buf

    def login(self, user, pw=PW):
        return self.ok('LOGIN "%s" "%s"' % (user, pw))

    def expect_close(self, timeout=5):
        """The server closes (maybe after a BYE) within timeout; returns
        the lines seen."""
        self.sock.settimeout(timeout)
        seen = []
        try:
            while True:
                seen.append(self.line())
        except (EOFError, ConnectionResetError, ssl.SSLError):
            return seen
        except socket.timeout:
            raise AssertionError("connection still open: %r" % seen)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def alive():
    """A fresh session still gets a greeting and answers NOOP."""
    c = Imap()
    c.ok("NOOP")
    c.close()
    assert D.alive()


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


# ---------------------------------------------------------- greeting/caps

@test
def test_greeting_and_capability_plain_listener():
    c = Imap("imapplain")
    m = re.match(rb"\* OK \[CAPABILITY ([^\]]*)\] mailaccess ready\.$",
                 c.greeting)
    assert m, c.greeting
    caps = m.group(1).decode().split()
    for cap in ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE",
                "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "AUTH=PLAIN"):
        assert cap in caps, (cap, caps)
    assert "STARTTLS" not in caps      # listener has no TLS
    assert "LOGINDISABLED" not in caps  # loopback plaintext allowed
    assert caps == c.caps()
    c.ok("LOGOUT") if False else None
    tag = c.tag()
    c.send(tag + b" LOGOUT\r\n")
    assert c.line() == b"* BYE Logging out"
    assert c.line() == tag + b" OK Logout completed."
    c.expect_close()


@test
def test_capability_starttls_logindisabled():
    if not NET:
        raise harness.Skip("no non-loopback address to test LOGINDISABLED")
    c = Imap("imapnet")
    caps = c.caps()
    assert "STARTTLS" in caps and "LOGINDISABLED" in caps, caps
    assert not [x for x in caps if x.startswith("AUTH=")], caps
    # RFC 3501 6.2.3: LOGIN refused before TLS
    st, _ = c.cmd('LOGIN "cap@example.com" "%s"' % PW)
    assert st.startswith(b"NO [PRIVACYREQUIRED]"), st
    st, _ = c.cmd("AUTHENTICATE PLAIN")
    assert st.startswith(b"NO [PRIVACYREQUIRED]"), st
    c.starttls()
    caps = c.caps()
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
    assert "AUTH=PLAIN" in caps, caps
    st, _ = c.login("cap@example.com")
    m = re.match(rb"OK \[CAPABILITY ([^\]]*)\] Logged in$", st)
    assert m, st
    after = m.group(1).decode().split()
    assert "IDLE" in after and not [x for x in after if x.startswith("AUTH=")]
    assert after == c.caps()
    c.close()


@test
def test_login_implicit_tls_and_wrong_password():
    c = Imap("imaps")
    caps = c.caps()
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps, caps
    t0 = time.monotonic()
    st, _ = c.cmd('LOGIN "login@example.com" "wrong"')
    assert st == b"NO [AUTHENTICATIONFAILED] Authentication failed.", st
    st, _ = c.cmd('LOGIN "nobody@example.com" "wrong"')
    assert st.startswith(b"NO [AUTHENTICATIONFAILED]"), st
    st, _ = c.login("login@example.com")
    assert st.startswith(b"OK [CAPABILITY"), st
    # already logged in
    st, _ = c.cmd('LOGIN "login@example.com" "x"')
    assert st.startswith(b"BAD"), st
    c.close()


@test
def test_login_literals_and_atoms():
    c = Imap("imapplain")
    tag = c.tag()
    user = b"login@example.com"
    c.send(tag + b" LOGIN {%d}\r\n" % len(user))
    assert c.line().startswith(b"+ "), "no continuation"
    c.send(user + b" {%d+}\r\n%s\r\n" % (len(PW), PW.encode()))
    st, _ = c.wait(tag)
    assert st.startswith(b"OK [CAPABILITY"), st
    c.close()


@test
def test_authenticate_plain_sasl_ir_starttls():
    c = Imap("imap")
    c.starttls()
    st, _ = c.ok("AUTHENTICATE PLAIN " + b64("\0sasl@example.com\0" + PW))
    assert st.startswith(b"OK [CAPABILITY"), st
    c.ok("NAMESPACE")
    c.close()


@test
def test_authenticate_plain_continuation_implicit_tls():
    c = Imap("imaps")
    tag = c.tag()
    c.send(tag + b" AUTHENTICATE PLAIN\r\n")
    line = c.line()
    assert line.startswith(b"+"), line
    c.send(b64("\0sasl@example.com\0" + PW) + "\r\n")
    st, _ = c.wait(tag)
    assert st.startswith(b"OK [CAPABILITY"), st
    c.close()


@test
def test_authenticate_cancel_and_bad_mech():
    c = Imap("imaps")
    tag = c.tag()
    c.send(tag + b" AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith(b"+")
    c.send(b"*\r\n")
    st, _ = c.wait(tag)
    assert st.startswith(b"BAD"), st
    st, _ = c.cmd("AUTHENTICATE X-NOPE")
    assert st.startswith(b"NO"), st
    # wrong password through SASL
    st, _ = c.cmd("AUTHENTICATE PLAIN " + b64("\0sasl@example.com\0nope"))
    assert st.startswith(b"NO [AUTHENTICATIONFAILED]"), st
    # AUTHENTICATE LOGIN with continuations
    tag = c.tag()
    c.send(tag + b" AUTHENTICATE LOGIN\r\n")
    assert c.line().startswith(b"+")
    c.send(b64("sasl@example.com") + "\r\n")
    assert c.line().startswith(b"+")
    c.send(b64(PW) + "\r\n")
    st, _ = c.wait(tag)
    assert st.startswith(b"OK"), st
    c.close()


@test
def test_imaplib_login_starttls():
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"))
    m.starttls(ssl_context=harness.client_context(D.certs))
    typ, _ = m.login("lib@example.com", PW)
    assert typ == "OK"
    typ, data = m.namespace()
    assert typ == "OK" and data[0] == b'(("" "/")) NIL NIL', data
    typ, data = m.noop()
    assert typ == "OK"
    m.logout()


# ------------------------------------------------------------ states

@test
def test_commands_in_wrong_state():
    c = Imap()
    for cmd in ("SELECT INBOX", "LIST \"\" *", "NAMESPACE", "IDLE",
                "FETCH 1 FLAGS", "ENABLE IDLE", "CHECK"):
        st, _ = c.cmd(cmd)
        assert st.startswith(b"BAD"), (cmd, st)
    st, _ = c.cmd("FROB")
    assert st.startswith(b"BAD"), st
    st, _ = c.cmd("UID NOOP")
    assert st.startswith(b"BAD"), st
    c.login("state@example.com")
    for cmd in ("FETCH 1 FLAGS", "EXPUNGE", "UID FETCH 1 FLAGS", "CLOSE"):
        st, _ = c.cmd(cmd)
        assert st.startswith(b"BAD") or st.startswith(b"NO"), (cmd, st)
    st, _ = c.cmd("STARTTLS")
    assert st.startswith(b"BAD"), st
    st, _ = c.cmd("AUTHENTICATE PLAIN")
    assert st.startswith(b"BAD"), st
    c.close()


@test
def test_id_enable_namespace():
    c = Imap()
    st, u = c.cmd('ID ("name" "test" "version" "1")')
    assert st.startswith(b"OK"), st
    assert u == [b'* ID ("name" "mailaccess" "version" "1.0")'], u
    st, u = c.ok("ID NIL")
    st, _ = c.cmd('ID ("name")')
    assert st.startswith(b"BAD"), st
    st, _ = c.cmd("ID (" + " ".join(['"f%d" "v"' % i for i in range(31)]) + ")")
    assert st.startswith(b"BAD"), st
    st, _ = c.cmd('ID ("%s" "v")' % ("x" * 31))
    assert st.startswith(b"BAD"), st
    c.login("misc@example.com")
    st, u = c.ok("ENABLE X-UNKNOWN CONDSTORE")
    assert u == [b"* ENABLED"], u
    st, u = c.ok("NAMESPACE")
    assert u == [b'* NAMESPACE (("" "/")) NIL NIL'], u
    st, _ = c.cmd("NOOP extra")
    assert st.startswith(b"BAD"), st
    c.close()


# ------------------------------------------------------- parser abuse

@test
def test_literal_bombs():
    c = Imap()
    # synchronizing and too big: BAD without "+"
    c.send(b"a1 LOGIN {4294967295}\r\n")
    l = c.line()
    assert l.startswith(b"a1 BAD"), l
    c.send(b"a2 LOGIN {999999}\r\n")
    l = c.line()
    assert l.startswith(b"a2 BAD"), l
    c.send(b"a3 LOGIN {-1}\r\n")
    assert c.line().startswith(b"a3 BAD")
    c.send(b"a4 LOGIN {99999999999999999999999}\r\n")
    assert c.line().startswith(b"a4 BAD")
    # too big but non-synchronizing and plausible: skipped, not run
    junk = b"a9 LOGOUT\r\n" * 1000
    c.send(b"a5 LOGIN {%d+}\r\n" % len(junk) + junk + b" x\r\n")
    l = c.line()
    assert l.startswith(b"a5 BAD"), l
    st, _ = c.ok("NOOP")
    c.close()
    # absurd non-synchronizing literal: BYE and close
    c = Imap()
    c.send(b"b1 LOGIN {4294967295+}\r\n")
    seen = c.expect_close()
    assert seen and seen[0].startswith(b"* BYE"), seen
    alive()


@test
def test_bad_input_lines():
    c = Imap()
    c.send(b"c1 NOOP\0\r\n")
    assert c.line().startswith(b"c1 BAD")
    c.send(b"c2 NOOP\rX\r\n")
    assert c.line().startswith(b"c2 BAD")
    c.send(b"c3 ID " + b"(" * 40 + b")" * 40 + b"\r\n")
    assert c.line().startswith(b"c3 BAD")
    c.send(b"c4 ID ((\"a\" \"b\")\r\n")
    assert c.line().startswith(b"c4 BAD")
    c.send(b"c5 ID \"a\"\"b\")\r\n")
    assert c.line().startswith(b"c5 BAD")
    c.send(b"c6 ID \"unterminated\r\n")
    assert c.line().startswith(b"c6 BAD")
    c.send(b"c7 LOGIN " + b"x" * 20000 + b"\r\n")
    assert c.line().startswith(b"c7 BAD")
    c.send(b"+ foo\r\n")
    assert c.line().startswith(b"* BAD")
    c.send(b"c8 ~{5}\r\n")
    assert c.line().startswith(b"c8 BAD")
    # bare LF line endings are accepted
    c.send(b"c9 NOOP\n")
    assert c.line() == b"c9 OK NOOP completed."
    c.ok("NOOP")
    c.close()
    alive()


@test
def test_too_many_bad_commands():
    c = Imap()
    c.send(b"".join(b"x%d BOGUS\r\n" % i for i in range(25)))
    seen = c.expect_close()
    bads = [x for x in seen if b" BAD " in x]
    assert len(bads) >= 19, seen
    assert any(x.startswith(b"* BYE") for x in seen), seen
    alive()


@test
def test_byte_at_a_time_and_pipelining():
    c = Imap()
    data = b'p1 ID ("a" {3}\r\nb c)\r\np2 NOOP\r\np3 CAPABILITY\r\n'
    got = []
    for i in range(len(data)):
        c.send(data[i:i + 1])
        if data[i:i + 1] == b"\n" and i < 20:
            got.append(c.line())   # the "+" for {3}
    assert got and got[0].startswith(b"+"), got
    st, u = c.wait(b"p1")
    assert st.startswith(b"OK"), st
    st, _ = c.wait(b"p2")
    assert st.startswith(b"OK"), st
    st, u = c.wait(b"p3")
    assert st.startswith(b"OK") and u[0].startswith(b"* CAPABILITY"), (st, u)
    c.close()


@test
def test_starttls_injection():
    c = Imap("imap")
    c.send(b"s1 STARTTLS\r\ns2 LOGIN inject@example.com x\r\ns3 NOOP\r\n")
    l = c.line()
    assert l == b"s1 OK Begin TLS negotiation now.", l
    assert not c.buf
    c.sock = harness.client_context(D.certs).wrap_socket(
        c.sock, server_hostname="localhost")
    # nothing pipelined before the handshake was run
    c.sock.settimeout(1)
    try:
        extra = c.sock.recv(1000)
    except socket.timeout:
        extra = b""
    assert extra == b"", extra
    c.sock.settimeout(10)
    caps = c.caps()
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps, caps
    st, _ = c.cmd("STARTTLS")
    assert st.startswith(b"BAD"), st
    c.close()


# ------------------------------------------------------------------ IDLE

@test
def test_idle_wakeup_by_append():
    a = Imap()
    a.login("idle@example.com")
    st, u = a.cmd("SELECT INBOX")
    if not st.startswith(b"OK"):
        raise harness.Skip("SELECT not available yet: %r" % st)
    tag = a.tag()
    a.send(tag + b" IDLE\r\n")
    assert a.line() == b"+ idling"
    b = Imap()
    b.login("idle@example.com")
    msg = b"From: a@example.org\r\nSubject: idle\r\n\r\nhello\r\n"
    t0 = time.monotonic()
    tagb = b.tag()
    b.send(tagb + b" APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    st, _ = b.wait(tagb)
    assert st.startswith(b"OK"), st
    a.sock.settimeout(1.0)
    line = a.line()
    assert re.match(rb"\* \d+ EXISTS", line), line
    assert time.monotonic() - t0 < 1.0
    a.sock.settimeout(10)
    a.send(b"DONE\r\n")
    st, _ = a.wait(tag)
    assert st == b"OK Idle completed.", st
    # IDLE in authenticated state, ended by something that is not DONE
    b.ok("NOOP")
    tag = b.tag()
    b.send(tag + b" IDLE\r\n")
    assert b.line() == b"+ idling"
    b.send(b"NOTDONE\r\n")
    st, _ = b.wait(tag)
    assert st.startswith(b"BAD"), st
    b.ok("NOOP")
    a.close()
    b.close()


@test
def test_idle_wakeup_by_deliver_cross_process():
    """`mailaccessctl deliver` runs in another process: the wake-up travels
    over the cross-process change bus (state_dir/bus)."""
    a = Imap()
    a.login("idle@example.com")
    st, _ = a.cmd("SELECT INBOX")
    if not st.startswith(b"OK"):
        raise harness.Skip("SELECT not available yet: %r" % st)
    tag = a.tag()
    a.send(tag + b" IDLE\r\n")
    assert a.line() == b"+ idling"
    t0 = time.monotonic()
    D.deliver("idle@example.com", b"From: x@example.org\nSubject: d\n\nbody\n")
    a.sock.settimeout(1.0 + (time.monotonic() - t0))
    line = a.line()
    assert re.match(rb"\* \d+ EXISTS", line), line
    a.sock.settimeout(10)
    a.send(b"DONE\r\n")
    st, _ = a.wait(tag)
    assert st == b"OK Idle completed.", st
    a.close()


@test
def test_idle_keepalive_and_timeout():
    """IDLE sends "* OK Still here" (core idle timeout 4s here: every 2s)
    and ends after imap.idle_timeout (6s) with BYE."""
    d = harness.Daemon("imap-idle-timeout", listeners=[
        dict(name="imapplain", protocol="imap", tls="none"),
        dict(name="pop3", tls="none")],  # the harness always writes pop3 { }
        limits={"idle_timeout": "4s"},
        extra="imap {\n  idle_timeout = 6s\n}\n")
    d.add_user("keep@example.com", PW)
    d.start()
    s = socket.create_connection(("127.0.0.1", d.port("imapplain")), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b'a LOGIN "keep@example.com" "%s"\r\n' % PW.encode())
    assert f.readline().startswith(b"a OK")
    s.sendall(b"b IDLE\r\n")
    assert f.readline() == b"+ idling\r\n"
    t0 = time.monotonic()
    lines = []
    while True:
        l = f.readline()
        if not l:
            break
        lines.append(l)
    took = time.monotonic() - t0
    assert lines.count(b"* OK Still here\r\n") >= 2, lines
    assert lines[-1].startswith(b"* BYE"), lines
    assert 5 <= took < 9, took
    s.close()
    d.stop()


@test
def test_autocreate_settings():
    """imap.autocreate (this daemon: Drafts Sent Trash) shows at login."""
    c = Imap()
    c.login("tls@example.com")
    st, u = c.ok('LIST "" "*"')
    names = b"\n".join(u)
    for name, attr in ((b"Drafts", b"\\Drafts"), (b"Sent", b"\\Sent"),
                       (b"Trash", b"\\Trash")):
        line = [x for x in u if x.endswith(b" " + name) or
                x.endswith(b' "' + name + b'"')]
        assert line and attr in line[0], (name, names)
    assert b"Junk" not in names, names
    st, u = c.ok('LSUB "" "*"')
    assert any(x.endswith(b"Drafts") or x.endswith(b'"Drafts"') for x in u), u
    c.close()


@test
def test_bad_imap_settings_refused():
    for bad, key in (("autocreate = Foo:bogus", "autocreate"),
                     ("autocreate = a/../b", "autocreate"),
                     ("idle_timeout = soon", "idle_timeout"),
                     ("autocreate_subscribe = maybe", "autocreate_subscribe"),
                     ("frobnicate = 1", "frobnicate")):
        d = harness.Daemon("imap-badconf", listeners=[
            dict(name="imapplain", protocol="imap", tls="none"),
            dict(name="pop3", tls="none")],
            extra="imap {\n  %s\n}\n" % bad)
        try:
            d.start(retries=1)
        except harness.DaemonError:
            pass
        else:
            raise AssertionError("daemon started with %r" % bad)
        log = d.log_text()
        assert key in log and "mailaccess.conf:" in log, log[-500:]
        harness._daemons.remove(d)
        shutil.rmtree(d.dir, ignore_errors=True)


@test
def test_big_append_literal_and_limit():
    """APPEND literals up to limits.max_message_size arrive whole, in
    pieces; one over it is refused before the client sends it."""
    c = Imap()
    c.login("misc@example.com")
    body = b"From: a@example.org\r\nSubject: big\r\n\r\n" + \
        (b"x" * 998 + b"\r\n") * 300
    tag = c.tag()
    c.send(tag + b" APPEND INBOX {%d}\r\n" % len(body))
    assert c.line().startswith(b"+ "), "no continuation"
    for i in range(0, len(body), 7000):
        c.send(body[i:i + 7000])
    c.send(b"\r\n")
    st, _ = c.wait(tag)
    assert st.startswith(b"OK"), st
    st, _ = c.cmd("APPEND INBOX {%d}" % (64 * 1024 * 1024 + 1))
    assert st.startswith(b"BAD"), st
    st, _ = c.cmd("STATUS INBOX (MESSAGES)")
    assert st.startswith(b"OK"), st
    c.close()


@test
def test_other_sessions_unaffected_by_abuse():
    good = Imap()
    good.login("bomb@example.com")
    bad = Imap()
    bad.send(b"z1 LOGIN {8000+}\r\n" + b"A" * 8000 + b"\r\n")
    bad.send(b"z2 ID " + b"(" * 33 + b"\r\n")
    good.ok("NOOP")
    bad.close()
    good.ok("NOAMESPACE".replace("OA", "A"))
    good.close()
    alive()


if __name__ == "__main__":
    harness.main(setup=setup)
