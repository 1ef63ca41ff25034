#!/usr/bin/env python3
"""test_lmtp.py - LMTP delivery (RFC 2033, 3030, 1870, 2920) against a real
mailaccessd, over TCP and a UNIX socket listener.

Mail goes in with Python's smtplib.LMTP, swaks (when installed) and a raw
client (per-recipient replies after DATA, pipelining, abuse), and comes
back out over POP3 RETR and IMAP FETCH, byte for byte: our Return-Path:
and Received: lines, then exactly the octets the client sent.

Run: python3 tests/lmtp/test_lmtp.py [test_name ...]
(MA_BUILD_DIR selects the build, default build-asan.)
"""

import imaplib
import os
import re
import shutil
import smtplib
import socket
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

harness.PLUGIN_FILES.setdefault("lmtp.so", ("plugins", "lmtp"))

D = None
PW = "Secret-pw 1"
SOCK = None
MAX_MSG = 256 * 1024

USERS = ["good@example.com", "unix@example.com", "multi1@example.com",
         "multi2@example.com", "detail@example.com", "bdat@example.com",
         "pipe@example.com", "dots@example.com", "eight@example.com",
         "swaks@example.com", "rset@example.com", "big@example.com",
         "Canon@example.com", "tls@example.com"]


def setup():
    global D, SOCK
    if not os.path.exists(os.path.join(harness.build_dir(), "plugins",
                                       "lmtp", "lmtp.so")):
        raise harness.Skip("lmtp.so not built")
    D = harness.Daemon("lmtp", listeners=[
        dict(name="pop3plain", tls="none"),
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="lmtp", protocol="lmtp", tls="none"),
        dict(name="lmtptls", protocol="lmtp", tls="starttls"),
    ], limits={"max_message_size": MAX_MSG}, extra="")
    SOCK = os.path.join(D.dir, "lmtp.sock")
    D.extra = ("listener lmtpunix {\n  protocol = lmtp\n  path = %s\n"
               "  mode = 0600\n}\n\nlmtp {\n  recipient_delimiter = +\n}\n"
               % SOCK)
    D.write_config()
    for u in USERS:
        D.add_user(u, PW)
    D.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(SOCK) and time.monotonic() < deadline:
        time.sleep(0.05)


def teardown():
    pass


# ------------------------------------------------------------ raw client

class Lmtp:
    """Raw LMTP over TCP or a UNIX socket: exact replies, pipelining."""

    def __init__(self, unix=False, timeout=10, lhlo=True):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(SOCK)
        else:
            self.sock = socket.create_connection(
                ("127.0.0.1", D.port("lmtp")), timeout=timeout)
        self.buf = bytearray()
        self.greeting = self.reply()
        assert self.greeting[0].startswith("220 "), self.greeting
        if lhlo:
            r = self.cmd("LHLO client.example.org")
            assert r[-1].startswith("250 "), r

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                l = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return l.decode("utf-8", "replace")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed by server")
            self.buf += chunk

    def reply(self):
        """One (multi-line) reply as a list of lines."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def one(self, line):
        return self.cmd(line)[-1]

    def eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stuff(msg):
    """CRLF + dot-stuffing + terminator, as a client sends DATA."""
    out = []
    for l in crlf(msg).split(b"\r\n")[:-1]:
        out.append((b"." + l) if l.startswith(b".") else l)
    return b"\r\n".join(out) + b"\r\n.\r\n"


def mk(subject, body=b"body line\n", to=b"x@example.com"):
    return (b"From: sender@example.org\nTo: " + to + b"\nSubject: "
            + subject.encode() + b"\nMessage-ID: <" + subject.encode()
            + b"@example.org>\n\n" + body)


# --------------------------------------------------------- reading back

def pop3_messages(user):
    """Every INBOX message of user, as RETR returns it."""
    c = D.connect("pop3plain")
    try:
        c.login(user, PW)
        n = int(c.ok("STAT").split()[1])
        out = []
        for i in range(1, n + 1):
            _, body = c.multi("RETR %d" % i)
            out.append(body)
        c.quit()
        return out
    finally:
        c.close()


def imap_messages(user, box="INBOX"):
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"), timeout=10)
    try:
        m.login(user, PW)
        typ, _ = m.select('"%s"' % box, readonly=True)
        assert typ == "OK", typ
        typ, data = m.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        out = []
        for u in uids:
            typ, d = m.uid("FETCH", u, "(BODY.PEEK[])")
            assert typ == "OK", (typ, d)
            out.append(d[0][1])
        m.logout()
        return out
    finally:
        try:
            m.shutdown()
        except Exception:
            pass


def imap_create(user, box):
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"), timeout=10)
    try:
        m.login(user, PW)
        typ, d = m.create(box)
        assert typ == "OK", (typ, d)
        m.logout()
    finally:
        try:
            m.shutdown()
        except Exception:
            pass


TRACE_RE = re.compile(
    rb"\AReturn-Path: <(?P<from>[^>]*)>\r\n"
    rb"Received: from (?P<helo>\S+) \((?P<ip>[^)]*)\)\r\n"
    rb"\tby \S+ \(mailaccess\) with LMTP id \S+;\r\n"
    rb"\t\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n")


def split_trace(stored):
    """(match, rest): our trace lines and the message behind them."""
    m = TRACE_RE.match(stored)
    assert m, "no trace header at the top: %r" % stored[:300]
    return m, stored[m.end():]


def check_stored(stored, sender, original, ip=b"127.0.0.1", helo=None):
    m, rest = split_trace(stored)
    assert m.group("from") == sender.encode(), m.group("from")
    assert m.group("ip") == ip, m.group("ip")
    if helo:
        assert m.group("helo") == helo.encode(), m.group("helo")
    assert rest == crlf(original), (rest[:200], crlf(original)[:200])


# ---------------------------------------------------------------- tests

@test()
def test_greeting_and_lhlo_capabilities():
    c = Lmtp(lhlo=False)
    r = c.cmd("LHLO client.example.org")
    caps = [l[4:] for l in r[1:]]
    for cap in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING"):
        assert cap in caps, r
    assert "SIZE %d" % MAX_MSG in caps, r
    assert "STARTTLS" not in caps, r  # listener has tls = none
    assert c.one("QUIT").startswith("221 2.0.0"), "quit"
    assert c.eof()


@test()
def test_helo_ehlo_refused():
    c = Lmtp(lhlo=False)
    assert c.one("HELO x").startswith("500 5.5.1"), "HELO"
    assert c.one("EHLO x").startswith("500 5.5.1"), "EHLO"
    assert c.one("MAIL FROM:<a@b>").startswith("503 5.5.1"), "MAIL before LHLO"
    assert c.one("LHLO x").startswith("250 "), "LHLO"
    c.close()


@test()
def test_noop_vrfy_rset_sequence():
    c = Lmtp()
    assert c.one("NOOP").startswith("250 2.0.0")
    assert c.one("VRFY good@example.com").startswith("252 ")
    assert c.one("RCPT TO:<good@example.com>").startswith("503 5.5.1")
    assert c.one("DATA").startswith("503 5.5.1")
    assert c.one("MAIL FROM:<a@example.org>").startswith("250 2.1.0")
    assert c.one("MAIL FROM:<a@example.org>").startswith("503 5.5.1")
    assert c.one("DATA").startswith("503 5.5.1"), "DATA without recipients"
    c.close()


@test()
def test_smtplib_delivery_pop3_and_imap_byte_identical():
    msg = mk("good", b"Hello.\nSecond line.\n\nLast.\n")
    # bytes go out as they are: smtplib only fixes line ends of str
    with smtplib.LMTP("127.0.0.1", D.port("lmtp"), timeout=10) as s:
        refused = s.sendmail("sender@example.org", ["good@example.com"], crlf(msg))
        assert refused == {}, refused
    pops = pop3_messages("good@example.com")
    assert len(pops) == 1, len(pops)
    check_stored(pops[0], "sender@example.org", msg)
    imaps = imap_messages("good@example.com")
    assert imaps == pops, (imaps, pops)


@test()
def test_unix_socket_delivery():
    st = os.stat(SOCK)
    assert stat.S_ISSOCK(st.st_mode), st
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    msg = mk("unix")
    with smtplib.LMTP(SOCK, timeout=10) as s:
        assert s.sendmail("u@example.org", ["unix@example.com"], crlf(msg)) == {}
    pops = pop3_messages("unix@example.com")
    assert len(pops) == 1
    check_stored(pops[0], "u@example.org", msg, ip=b"unix")
    c = Lmtp(unix=True)
    assert c.one("NOOP").startswith("250 ")
    c.close()


@test()
def test_starttls_then_delivery():
    msg = crlf(mk("tls"))
    with smtplib.LMTP("127.0.0.1", D.port("lmtptls"), timeout=10) as s:
        s.ehlo("client.example.org")
        assert s.has_extn("starttls"), s.esmtp_features
        s.starttls(context=harness.client_context(D.certs))
        s.ehlo("client.example.org")
        assert not s.has_extn("starttls"), "STARTTLS offered twice"
        assert s.sendmail("t@example.org", ["tls@example.com"], msg) == {}
    pops = pop3_messages("tls@example.com")
    assert len(pops) == 1
    check_stored(pops[0], "t@example.org", msg)
    # pipelined: the STARTTLS reply follows the LHLO reply; the NOOP sent
    # behind it in plaintext is dropped by the core (not checked here)
    c = socket.create_connection(("127.0.0.1", D.port("lmtptls")), timeout=10)
    f = c.makefile("rb")
    assert f.readline().startswith(b"220 ")
    c.sendall(b"LHLO x\r\nSTARTTLS\r\nNOOP\r\n")
    line = f.readline()
    while line[3:4] == b"-":
        line = f.readline()
    assert line.startswith(b"250 "), line
    assert f.readline().startswith(b"220 2.0.0"), "STARTTLS reply"
    c.close()


@test()
def test_multiple_recipients_one_unknown():
    msg = mk("multi")
    c = Lmtp()
    assert c.one("MAIL FROM:<m@example.org>").startswith("250 ")
    assert c.one("RCPT TO:<multi1@example.com>").startswith("250 2.1.5")
    r = c.one("RCPT TO:<nobody@example.com>")
    assert r.startswith("550 5.1.1 <nobody@example.com>"), r
    assert c.one("RCPT TO:<multi2@example.com>").startswith("250 2.1.5")
    assert c.one("DATA").startswith("354 ")
    c.send(stuff(msg))
    # RFC 2033 4.2: one reply per accepted recipient, in RCPT order
    r1, r2 = c.line(), c.line()
    assert r1 == "250 2.0.0 <multi1@example.com> Saved", r1
    assert r2 == "250 2.0.0 <multi2@example.com> Saved", r2
    assert c.one("NOOP").startswith("250 "), "nothing more was sent"
    c.close()
    for u in ("multi1@example.com", "multi2@example.com"):
        pops = pop3_messages(u)
        assert len(pops) == 1, (u, len(pops))
        check_stored(pops[0], "m@example.org", msg)


@test()
def test_detail_into_existing_folder_and_fallback():
    imap_create("detail@example.com", "lists")
    m1, m2, m3 = mk("det1"), mk("det2"), mk("det3")
    c = Lmtp()
    for rcpt, msg in (("detail+lists@example.com", m1),
                      ("detail+nosuch@example.com", m2),
                      ("detail@example.com", m3)):
        assert c.one("MAIL FROM:<d@example.org>").startswith("250 ")
        assert c.one("RCPT TO:<%s>" % rcpt).startswith("250 "), rcpt
        assert c.one("DATA").startswith("354 ")
        c.send(stuff(msg))
        r = c.line()
        assert r == "250 2.0.0 <%s> Saved" % rcpt, r
    c.close()
    lists = imap_messages("detail@example.com", "lists")
    assert len(lists) == 1, len(lists)
    check_stored(lists[0], "d@example.org", m1)
    inbox = imap_messages("detail@example.com")
    assert len(inbox) == 2, len(inbox)
    check_stored(inbox[0], "d@example.org", m2)
    check_stored(inbox[1], "d@example.org", m3)


@test()
def test_canonical_user_name():
    # auth-passwd matches names case-insensitively and returns the name in
    # its file: the mail must land in that user's store (POP3 logs in as
    # the canonical name too), while the reply echoes what the client said
    msg = mk("canon")
    c = Lmtp()
    assert c.one("MAIL FROM:<c@example.org>").startswith("250 ")
    r = c.one("RCPT TO:<cAnOn@EXAMPLE.com>")
    assert r.startswith("250 2.1.5 <cAnOn@EXAMPLE.com>"), r
    assert c.one("DATA").startswith("354 ")
    c.send(stuff(msg))
    assert c.line() == "250 2.0.0 <cAnOn@EXAMPLE.com> Saved"
    c.close()
    pops = pop3_messages("Canon@example.com")
    assert len(pops) == 1, len(pops)
    check_stored(pops[0], "c@example.org", msg)
    assert "delivered to=Canon@example.com mailbox=INBOX" in D.log_text()


@test()
def test_size_too_big():
    c = Lmtp()
    r = c.one("MAIL FROM:<b@example.org> SIZE=%d" % (MAX_MSG + 1))
    assert r.startswith("552 5.3.4"), r
    assert c.one("MAIL FROM:<b@example.org> SIZE=100").startswith("250 ")
    assert c.one("RCPT TO:<big@example.com>").startswith("250 ")
    assert c.one("DATA").startswith("354 ")
    c.send(stuff(mk("big", b"x" * 100 + b"\n") * (MAX_MSG // 100)))
    r = c.line()
    assert r.startswith("552 5.3.4 <big@example.com>"), r
    # the session goes on
    assert c.one("NOOP").startswith("250 ")
    c.close()
    assert pop3_messages("big@example.com") == []


@test()
def test_unknown_mail_parameter():
    c = Lmtp()
    assert c.one("MAIL FROM:<a@b.c> RET=FULL").startswith("555 5.5.4")
    assert c.one("MAIL FROM:<a@b.c> BODY=8BITMIME").startswith("250 ")
    assert c.one("RCPT TO:<good@example.com> NOTIFY=NEVER").startswith("555 ")
    c.close()


@test()
def test_bdat_chunks():
    msg = crlf(mk("bdat", b"chunk one\n.dot line stays\n"))
    a, b = msg[:40], msg[40:]
    c = Lmtp()
    assert c.one("MAIL FROM:<bd@example.org>").startswith("250 ")
    assert c.one("RCPT TO:<bdat@example.com>").startswith("250 ")
    c.send(b"BDAT %d\r\n" % len(a) + a)
    r = c.line()
    assert r.startswith("250 2.0.0"), r
    c.send(b"BDAT %d LAST\r\n" % len(b) + b)
    r = c.line()
    assert r == "250 2.0.0 <bdat@example.com> Saved", r
    # BDAT without a transaction: the chunk is read and refused
    c.send(b"BDAT 5 LAST\r\nhello")
    assert c.line().startswith("503 5.5.1")
    assert c.one("NOOP").startswith("250 ")
    # a chunk over the limit: 552, then the transaction is gone
    assert c.one("MAIL FROM:<bd@example.org>").startswith("250 ")
    assert c.one("RCPT TO:<bdat@example.com>").startswith("250 ")
    big = b"y" * (MAX_MSG + 10)
    c.send(b"BDAT %d\r\n" % len(big) + big)
    assert c.line().startswith("552 5.3.4")
    c.send(b"BDAT 3 LAST\r\nabc")
    assert c.line().startswith("503 ")
    c.close()
    pops = pop3_messages("bdat@example.com")
    assert len(pops) == 1, len(pops)
    check_stored(pops[0], "bd@example.org", msg)


@test()
def test_pipelining():
    m1, m2 = mk("pipe1"), mk("pipe2")
    c = Lmtp()
    c.send(b"MAIL FROM:<p@example.org>\r\nRCPT TO:<pipe@example.com>\r\n"
           b"RCPT TO:<ghost@example.com>\r\nDATA\r\n" + stuff(m1) +
           b"MAIL FROM:<p2@example.org>\r\nRCPT TO:<pipe+x@example.com>\r\n"
           b"DATA\r\n" + stuff(m2) + b"NOOP\r\nQUIT\r\n")
    want = ["250 2.1.0", "250 2.1.5 <pipe@example.com>",
            "550 5.1.1 <ghost@example.com>", "354 ",
            "250 2.0.0 <pipe@example.com> Saved",
            "250 2.1.0", "250 2.1.5 <pipe+x@example.com>", "354 ",
            "250 2.0.0 <pipe+x@example.com> Saved", "250 2.0.0", "221 "]
    for w in want:
        r = c.line()
        assert r.startswith(w), (w, r)
    assert c.eof()
    pops = pop3_messages("pipe@example.com")
    assert len(pops) == 2
    check_stored(pops[0], "p@example.org", m1)
    check_stored(pops[1], "p2@example.org", m2)


@test(timeout=60)
def test_one_byte_at_a_time():
    # every parser state must survive a split anywhere: commands, the
    # body's CR/LF and dots, BDAT counts
    msg = mk("bytes", b".dot\r\n..two\r\nbare lf\nend\r\n")
    bd = crlf(mk("bytes-bdat"))
    wire = (b"MAIL FROM:<by@example.org>\r\nRCPT TO:<pipe@example.com>\r\n"
            b"DATA\r\n" + stuff(msg) +
            b"MAIL FROM:<by@example.org>\r\nRCPT TO:<pipe@example.com>\r\n"
            b"BDAT %d LAST\r\n" % len(bd) + bd + b"QUIT\r\n")
    c = Lmtp()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    before = len(pop3_messages("pipe@example.com"))
    for i in range(len(wire)):
        c.sock.sendall(wire[i:i + 1])
        if i % 64 == 0:
            time.sleep(0.001)  # let some bytes arrive alone
    want = ["250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 <pipe@example.com> Saved",
            "250 2.1.0", "250 2.1.5", "250 2.0.0 <pipe@example.com> Saved", "221 "]
    for w in want:
        r = c.line()
        assert r.startswith(w), (w, r)
    c.close()
    pops = pop3_messages("pipe@example.com")
    assert len(pops) == before + 2
    check_stored(pops[-2], "by@example.org", msg)
    check_stored(pops[-1], "by@example.org", bd)


@test()
def test_bad_bdat_closes():
    # a BDAT whose size we cannot read cannot be skipped: 501 and close
    c = Lmtp()
    c.send(b"BDAT lots\r\nwhatever follows\r\n")
    assert c.line().startswith("501 5.5.4")
    assert c.eof()
    c = Lmtp()
    c.send(b"BDAT 99999999999999999999999999\r\n")
    assert c.line().startswith("501 ")
    assert c.eof()


@test()
def test_dot_stuffing_and_lone_dots():
    body = b".leading dot\n..two dots\n.\n...\nend.\n"
    msg = mk("dots", body)
    with smtplib.LMTP("127.0.0.1", D.port("lmtp"), timeout=10) as s:
        assert s.sendmail("s@example.org", ["dots@example.com"], crlf(msg)) == {}
    pops = pop3_messages("dots@example.com")
    check_stored(pops[0], "s@example.org", msg)
    assert imap_messages("dots@example.com") == pops


@test()
def test_8bit_body():
    body = "Grüße aus Köln – ça va? ✓\n".encode() + bytes(range(0x80, 0x100)) + b"\n"
    msg = mk("eight", body)
    c = Lmtp()
    assert c.one("MAIL FROM:<e@example.org> BODY=8BITMIME").startswith("250 ")
    assert c.one("RCPT TO:<eight@example.com>").startswith("250 ")
    assert c.one("DATA").startswith("354 ")
    c.send(stuff(msg))
    assert c.line().startswith("250 2.0.0 <eight@example.com> Saved")
    c.close()
    pops = pop3_messages("eight@example.com")
    check_stored(pops[0], "e@example.org", msg)
    assert imap_messages("eight@example.com") == pops


@test()
def test_rset_clears_transaction():
    c = Lmtp()
    assert c.one("MAIL FROM:<r@example.org>").startswith("250 ")
    assert c.one("RCPT TO:<rset@example.com>").startswith("250 ")
    assert c.one("RSET").startswith("250 2.0.0")
    assert c.one("DATA").startswith("503 ")
    assert c.one("RCPT TO:<rset@example.com>").startswith("503 ")
    assert c.one("MAIL FROM:<r@example.org>").startswith("250 ")
    c.close()
    assert pop3_messages("rset@example.com") == []


@test()
def test_long_line_and_garbage():
    c = Lmtp()
    c.send(b"NOOP " + b"x" * 5000 + b"\r\n")
    assert c.line().startswith("500 5.5.2"), "long line"
    c.send(b"A" * 20000 + b"\r\n")
    assert c.line().startswith("500 5.5.2"), "very long line"
    c.send(b"NO\x00OP\r\n")
    assert c.line().startswith("500 "), "NUL"
    assert c.one("NOOP").startswith("250 "), "alive after garbage"
    c.close()


@test()
def test_too_many_bad_commands_close():
    c = Lmtp()
    for i in range(9):
        assert c.one("BOGUS%d" % i).startswith("500 ")
    r = c.cmd("BOGUS")
    assert r[0].startswith("500 "), r
    assert c.line().startswith("421 4.7.0"), "421"
    assert c.eof()


@test(timeout=60)
def test_recipient_limit():
    c = Lmtp()
    assert c.one("MAIL FROM:<l@example.org>").startswith("250 ")
    c.send(b"".join(b"RCPT TO:<good@example.com>\r\n" for _ in range(1001)))
    for i in range(1000):
        r = c.line()
        assert r.startswith("250 2.1.5"), (i, r)
    r = c.line()
    assert r.startswith("452 4.5.3"), r
    assert c.one("RSET").startswith("250 ")
    c.close()


@test(timeout=60)
def test_swaks_tcp_and_unix():
    swaks = shutil.which("swaks")
    if swaks is None:
        raise harness.Skip("swaks not installed (scripts/deps.sh)")
    for args in (["--server", "127.0.0.1:%d" % D.port("lmtp")],
                 ["--socket", SOCK]):
        r = subprocess.run([swaks, "--protocol", "LMTP", "--to",
                            "swaks@example.com", "--from", "sw@example.org",
                            "--helo", "swaks.example.org",
                            "--header", "Subject: via swaks",
                            "--body", "sent by swaks\n", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0, out
        assert "250 2.0.0 <swaks@example.com> Saved" in out, out
    pops = pop3_messages("swaks@example.com")
    assert len(pops) == 2, len(pops)
    m, rest = split_trace(pops[0])
    assert m.group("helo") == b"swaks.example.org"
    assert b"Subject: via swaks\r\n" in rest, rest[:300]
    assert b"\r\n\r\nsent by swaks\r\n" in rest, rest[-100:]
    assert split_trace(pops[1])[0].group("ip") == b"unix"


def expect_start_failure(d, want):
    """d must refuse to start, logging `want`; then it is forgotten (its
    config-error exit is what we wanted, not a finding)."""
    try:
        d.start(wait=5, retries=1)
    except harness.DaemonError:
        pass
    else:
        # start() only probes ports: another program may answer on the
        # TCP one by chance. The daemon itself must still exit.
        try:
            d.proc.wait(10)
        except subprocess.TimeoutExpired:
            d.kill()
            raise AssertionError("daemon started; wanted %r" % want)
    assert d.proc.poll() not in (None, 0), d.proc.poll()
    assert want in d.log_text(), d.log_tail()
    harness._daemons.remove(d)
    shutil.rmtree(d.dir, ignore_errors=True)


def unix_daemon(name, path, extra_listener=""):
    d = harness.Daemon(name, listeners=[dict(name="pop3plain", tls="none")])
    d.extra = ("listener lmtpunix {\n  protocol = lmtp\n  path = %s\n%s}\n"
               % (path, extra_listener))
    d.write_config()
    return d


@test(timeout=60)
def test_unix_live_socket_not_stolen():
    # a second daemon on the same path must fail, not take the socket
    expect_start_failure(unix_daemon("lmtp-steal", SOCK),
                         "in use by another process")
    c = Lmtp(unix=True)
    assert c.one("NOOP").startswith("250 "), "first daemon lost its socket"
    c.close()


@test(timeout=60)
def test_unix_stale_socket_replaced_and_removed_at_exit():
    path = os.path.join(D.dir, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # a socket file nobody listens on: what a crash leaves
    assert os.path.exists(path)
    d = unix_daemon("lmtp-stale", path, "  mode = 0666\n")
    d.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(5)
            c.connect(path)
            break
        except OSError:
            c.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert c.recv(512).startswith(b"220 "), "greeting"
    c.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert d.stop() == 0
    assert not os.path.exists(path), "socket left behind at exit"


@test(timeout=60)
def test_unix_listener_config_errors():
    # never a regular file, never both path and port
    f = os.path.join(D.dir, "plainfile")
    with open(f, "w") as fh:
        fh.write("keep me\n")
    for extra, want in (("", "is not a socket"),
                        ("  port = 2424\n", "exclude each other"),
                        ("  mode = 0999\n", "mode must be octal"),
                        ("  user = no-such-user-xyz\n", "unknown user")):
        expect_start_failure(unix_daemon("lmtp-bad", f, extra), want)
    assert open(f).read() == "keep me\n"


@test()
def test_daemon_still_alive():
    assert D.alive(), D.log_tail()
    c = Lmtp()
    assert c.one("NOOP").startswith("250 ")
    c.close()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
