#!/usr/bin/env python3
"""test_imap_fetch.py - IMAP FETCH, STORE, COPY and MOVE against a real
mailaccessd (RFC 3501 6.4.5-6.4.8, 7.4.2; UIDPLUS RFC 4315; MOVE RFC 6851).

Every FETCH item on a simple message, a multipart/alternative and a
multipart/mixed carrying an attached message/rfc822 that is itself a
multipart; partial fetches; HEADER.FIELDS(.NOT); \\Seen set by BODY[] and
not by BODY.PEEK[]; a 10 MB body byte for byte; 1:* over 2000 messages;
STORE variants; COPY/MOVE with COPYUID. Responses are read with a raw
client (literals kept inline) so they can be compared byte for byte;
imaplib drives the rest.

Run: python3 tests/protocol/test_imap_fetch.py [test_name ...]
(MA_BUILD_DIR selects the build, default build-asan.)
"""

import imaplib
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

D = None
PW = "Fetch-pw 1"


def c(s):
    """LF text -> CRLF bytes."""
    return crlf(s.encode() if isinstance(s, str) else s)


SIMPLE = c("From: Alice Example <alice@example.org>\n"
           "To: bob@example.com, \"Carol C.\" <carol@example.net>\n"
           "Cc: dave@example.com\n"
           "Subject: Hello there\n"
           "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
           "Message-ID: <simple@example.org>\n"
           "In-Reply-To: <parent@example.org>\n"
           "\n"
           "Hello there.\n"
           "Second line.\n")

ALT = c("From: alt@example.org\n"
        "To: bob@example.com\n"
        "Subject: alternative\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=\"alt-b\"\n"
        "\n"
        "preamble\n"
        "--alt-b\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Caf=C3=A9 plain\n"
        "--alt-b\n"
        "Content-Type: text/html; charset=UTF-8\n"
        "\n"
        "<p>Caf&eacute; html</p>\n"
        "--alt-b--\n")

INNER = c("From: inner@example.org\n"
          "To: bob@example.com\n"
          "Subject: inner message\n"
          "Message-ID: <inner@example.org>\n"
          "MIME-Version: 1.0\n"
          "Content-Type: multipart/alternative; boundary=\"in-b\"\n"
          "\n"
          "--in-b\n"
          "Content-Type: text/plain\n"
          "\n"
          "inner plain\n"
          "--in-b\n"
          "Content-Type: text/html\n"
          "\n"
          "<i>inner html</i>\n"
          "--in-b--\n")

MIXED = c("From: mixed@example.org\n"
          "To: bob@example.com\n"
          "Subject: mixed\n"
          "MIME-Version: 1.0\n"
          "Content-Type: multipart/mixed; boundary=\"mix-b\"\n"
          "\n"
          "--mix-b\n"
          "Content-Type: text/plain; charset=us-ascii\n"
          "\n"
          "See attachments.\n"
          "--mix-b\n"
          "Content-Type: application/pdf; name=\"doc.pdf\"\n"
          "Content-Transfer-Encoding: base64\n"
          "Content-Disposition: attachment; filename=\"doc.pdf\"\n"
          "\n"
          "JVBERi0xLjQKJcOkw7zDtsOfCg==\n"
          "--mix-b\n"
          "Content-Type: message/rfc822\n"
          "\n") + INNER + c("\n--mix-b--\n")


# ------------------------------------------------------------ raw client

class Imap:
    """Minimal raw IMAP client: responses with literals inline."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.n = 0
        self.greeting = self.readline()

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(1 << 20)
            if not d:
                raise EOFError("connection closed; have %r" % self.buf[:200])
            self.buf += d
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def readn(self, n):
        chunks = [self.buf[:n]]
        have = len(chunks[0])
        self.buf = self.buf[n:]
        while have < n:
            d = self.sock.recv(min(1 << 20, n - have))
            if not d:
                raise EOFError("closed inside a literal")
            chunks.append(d)
            have += len(d)
        return b"".join(chunks)

    def response(self):
        """One whole response (line + literals + rest of line)."""
        out = b""
        while True:
            line = self.readline()
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.readn(int(m.group(1)))

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        """-> (list of untagged responses, tagged line)."""
        self.n += 1
        tag = b"F%d" % self.n
        self.send(tag + b" " + (line.encode() if isinstance(line, str) else line) + b"\r\n")
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)

    def ok(self, line):
        u, t = self.cmd(line)
        assert re.match(rb"F\d+ OK", t), (line, t, u[-3:])
        return u, t

    def login(self, user):
        self.ok('LOGIN "%s" "%s"' % (user, PW))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def session(user, mailbox="INBOX", examine=False):
    s = Imap(D.port("imap"))
    s.login(user)
    if mailbox:
        s.ok("%s %s" % ("EXAMINE" if examine else "SELECT", mailbox))
    return s


def imaplib_session(user):
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"))
    m.login(user, PW)
    return m


def user_with(name, *msgs):
    u = "%s@example.com" % name
    D.add_user(u, PW)
    for m in msgs:
        D.deliver(u, m)
    return u


def fetch1(s, seq, items, uid=False):
    """FETCH of one message -> the response body after 'N FETCH '."""
    u, t = s.ok("%sFETCH %s %s" % ("UID " if uid else "", seq, items))
    fetches = [r for r in u if re.match(rb"\* \d+ FETCH ", r)]
    assert len(fetches) >= 1, u
    r = fetches[0]
    return r[r.index(b"FETCH ") + 6:-2]


def lit(b):
    return b"{%d}\r\n" % len(b) + b


def split_msg(m):
    i = m.index(b"\r\n\r\n") + 4
    return m[:i], m[i:]


def between(m, start, end):
    """Bytes of m after `start` up to (not incl.) `end`."""
    i = m.index(start) + len(start)
    return m[i:m.index(end, i)]


def setup():
    global D
    D = harness.Daemon("imap-fetch", listeners=[
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="pop3", tls="none"),
    ])
    D.start()


# ------------------------------------------------------------ FETCH items

@test()
def test_fetch_simple_every_item():
    u = user_with("simple", SIMPLE)
    hdr, body = split_msg(SIMPLE)
    with session(u) as s:
        r = fetch1(s, "1", "(FLAGS UID RFC822.SIZE INTERNALDATE)")
        m = re.match(rb'\(FLAGS \(\) UID 1 RFC822.SIZE (\d+) INTERNALDATE '
                     rb'"([ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})"\)$', r)
        assert m, r
        assert int(m.group(1)) == len(SIMPLE)
        env = (b'("Mon, 7 Feb 1994 21:52:25 -0800" "Hello there" '
               b'(("Alice Example" NIL "alice" "example.org")) '
               b'(("Alice Example" NIL "alice" "example.org")) '
               b'(("Alice Example" NIL "alice" "example.org")) '
               b'((NIL NIL "bob" "example.com")("Carol C." NIL "carol" "example.net")) '
               b'((NIL NIL "dave" "example.com")) NIL '
               b'"<parent@example.org>" "<simple@example.org>")')
        assert fetch1(s, "1", "ENVELOPE") == b"(ENVELOPE " + env + b")"
        bs = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" %d 2' % len(body)
        assert fetch1(s, "1", "BODY") == b"(BODY " + bs + b"))"
        r = fetch1(s, "1", "BODYSTRUCTURE")
        assert r == b"(BODYSTRUCTURE " + bs + b" NIL NIL NIL NIL))", r
        assert fetch1(s, "1", "RFC822.HEADER") == b"(RFC822.HEADER " + lit(hdr) + b")"
        assert fetch1(s, "1", "BODY.PEEK[HEADER]") == b"(BODY[HEADER] " + lit(hdr) + b")"
        assert fetch1(s, "1", "BODY.PEEK[TEXT]") == b"(BODY[TEXT] " + lit(body) + b")"
        assert fetch1(s, "1", "BODY.PEEK[1]") == b"(BODY[1] " + lit(body) + b")"
        assert fetch1(s, "1", "BODY.PEEK[]") == b"(BODY[] " + lit(SIMPLE) + b")"
        # none of the above set \Seen
        assert fetch1(s, "1", "FLAGS") == b"(FLAGS ())"
        # RFC822.TEXT does, and says so in the same response
        r = fetch1(s, "1", "RFC822.TEXT")
        assert r == b"(RFC822.TEXT " + lit(body) + b" FLAGS (\\Seen))", r
        r = fetch1(s, "1", "RFC822")
        assert r == b"(RFC822 " + lit(SIMPLE) + b")", r
        # UID FETCH always carries UID
        r = fetch1(s, "1", "(FLAGS)", uid=True)
        assert r == b"(UID 1 FLAGS (\\Seen))", r


@test()
def test_fetch_macros():
    u = user_with("macros", SIMPLE)
    with session(u) as s:
        fast = fetch1(s, "1", "FAST")
        assert re.match(rb'\(FLAGS \(\) INTERNALDATE "[^"]+" RFC822.SIZE %d\)$'
                        % len(SIMPLE), fast), fast
        al = fetch1(s, "1", "ALL")
        assert al.startswith(fast[:-1] + b" ENVELOPE (\"Mon, 7 Feb"), al
        full = fetch1(s, "1", "FULL")
        assert full.startswith(al[:-1] + b' BODY ("TEXT" "PLAIN"'), full
        assert b"BODYSTRUCTURE" not in full


@test()
def test_fetch_alternative():
    u = user_with("alt", ALT)
    with session(u) as s:
        plain = b"Caf=C3=A9 plain"
        html = b"<p>Caf&eacute; html</p>"
        bs = (b'(("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "QUOTED-PRINTABLE" %d 1 '
              b'NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "7BIT" %d 1 '
              b'NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "alt-b") NIL NIL NIL)'
              % (len(plain), len(html)))
        r = fetch1(s, "1", "BODYSTRUCTURE")
        assert r == b"(BODYSTRUCTURE " + bs + b")", r
        r = fetch1(s, "1", "BODY")
        assert r == (b'(BODY (("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL '
                     b'"QUOTED-PRINTABLE" %d 1)("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL '
                     b'"7BIT" %d 1) "ALTERNATIVE"))' % (len(plain), len(html))), r
        assert fetch1(s, "1", "BODY.PEEK[1]") == b"(BODY[1] " + lit(plain) + b")"
        assert fetch1(s, "1", "BODY.PEEK[2]") == b"(BODY[2] " + lit(html) + b")"
        mime1 = c("Content-Type: text/plain; charset=UTF-8\n"
                  "Content-Transfer-Encoding: quoted-printable\n\n")
        assert fetch1(s, "1", "BODY.PEEK[1.MIME]") == b"(BODY[1.MIME] " + lit(mime1) + b")"
        assert fetch1(s, "1", "BODY.PEEK[TEXT]") == \
            b"(BODY[TEXT] " + lit(split_msg(ALT)[1]) + b")"
        # a part that does not exist: empty string
        assert fetch1(s, "1", "BODY.PEEK[3]") == b'(BODY[3] "")'
        assert fetch1(s, "1", "BODY.PEEK[1.1]") == b'(BODY[1.1] "")'


@test()
def test_fetch_mixed_with_attached_message():
    u = user_with("mixed", MIXED)
    ihdr, ibody = split_msg(INNER)
    with session(u) as s:
        r = fetch1(s, "1", "BODYSTRUCTURE")
        inner_env = (b'(NIL "inner message" ((NIL NIL "inner" "example.org")) '
                     b'((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) '
                     b'((NIL NIL "bob" "example.com")) NIL NIL NIL "<inner@example.org>")')
        inner_bs = (b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)'
                    b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 17 1 NIL NIL NIL NIL)'
                    b' "ALTERNATIVE" ("BOUNDARY" "in-b") NIL NIL NIL)')
        want = (b'(BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 16 1 '
                b'NIL NIL NIL NIL)'
                b'("APPLICATION" "PDF" ("NAME" "doc.pdf") NIL NIL "BASE64" 28 NIL '
                b'("ATTACHMENT" ("FILENAME" "doc.pdf")) NIL NIL)'
                b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d ' % len(INNER)
                + inner_env + b" " + inner_bs
                + b' %d NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "mix-b") NIL NIL NIL))'
                % INNER.count(b"\n"))
        assert r == want, b"\n" + r + b"\n" + want
        assert fetch1(s, "1", "BODY.PEEK[1]") == b"(BODY[1] " + lit(b"See attachments.") + b")"
        assert fetch1(s, "1", "BODY.PEEK[2]") == \
            b"(BODY[2] " + lit(b"JVBERi0xLjQKJcOkw7zDtsOfCg==") + b")"
        assert fetch1(s, "1", "BODY.PEEK[3]") == b"(BODY[3] " + lit(INNER) + b")"
        assert fetch1(s, "1", "BODY.PEEK[3.HEADER]") == b"(BODY[3.HEADER] " + lit(ihdr) + b")"
        assert fetch1(s, "1", "BODY.PEEK[3.TEXT]") == b"(BODY[3.TEXT] " + lit(ibody) + b")"
        assert fetch1(s, "1", "BODY.PEEK[3.1]") == b"(BODY[3.1] " + lit(b"inner plain") + b")"
        assert fetch1(s, "1", "BODY.PEEK[3.2]") == \
            b"(BODY[3.2] " + lit(b"<i>inner html</i>") + b")"
        assert fetch1(s, "1", "BODY.PEEK[3.2.MIME]") == \
            b"(BODY[3.2.MIME] " + lit(c("Content-Type: text/html\n\n")) + b")"
        r = fetch1(s, "1", "BODY.PEEK[3.HEADER.FIELDS (SUBJECT)]")
        assert r == b"(BODY[3.HEADER.FIELDS (SUBJECT)] " + \
            lit(c("Subject: inner message\n\n")) + b")", r
        assert fetch1(s, "1", "BODY.PEEK[2.MIME]") == b"(BODY[2.MIME] " + lit(c(
            "Content-Type: application/pdf; name=\"doc.pdf\"\n"
            "Content-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"doc.pdf\"\n\n")) + b")"


@test()
def test_fetch_partial():
    u = user_with("partial", SIMPLE)
    hdr, body = split_msg(SIMPLE)
    with session(u) as s:
        assert fetch1(s, "1", "BODY.PEEK[]<0.10>") == b"(BODY[]<0> " + lit(SIMPLE[:10]) + b")"
        assert fetch1(s, "1", "BODY.PEEK[TEXT]<6.5>") == \
            b"(BODY[TEXT]<6> " + lit(body[6:11]) + b")"
        assert fetch1(s, "1", "BODY.PEEK[]<%d.100>" % (len(SIMPLE) - 4)) == \
            b"(BODY[]<%d> " % (len(SIMPLE) - 4) + lit(SIMPLE[-4:]) + b")"
        assert fetch1(s, "1", "BODY.PEEK[]<100000.10>") == b"(BODY[]<100000> {0}\r\n)"
        assert fetch1(s, "1", "BODY.PEEK[HEADER.FIELDS (Subject)]<0.7>") == \
            b"(BODY[HEADER.FIELDS (SUBJECT)]<0> " + lit(b"Subject") + b")"
        assert fetch1(s, "1", "FLAGS") == b"(FLAGS ())"
        u_, t = s.cmd("FETCH 1 BODY[]<0.0>")
        assert b" BAD " in t, t


@test()
def test_fetch_header_fields():
    u = user_with("fields", SIMPLE)
    with session(u) as s:
        r = fetch1(s, "1", "BODY.PEEK[HEADER.FIELDS (From Subject X-None)]")
        assert r == b"(BODY[HEADER.FIELDS (FROM SUBJECT X-NONE)] " + lit(c(
            "From: Alice Example <alice@example.org>\nSubject: Hello there\n\n")) + b")", r
        r = fetch1(s, "1", "BODY.PEEK[HEADER.FIELDS.NOT (From To Cc Date Message-ID)]")
        assert r == b"(BODY[HEADER.FIELDS.NOT (FROM TO CC DATE MESSAGE-ID)] " + lit(c(
            "Subject: Hello there\nIn-Reply-To: <parent@example.org>\n\n")) + b")", r
        # folded fields stay whole, names are case-insensitive
        folded = c("X-Long: one\n  two\nsubject: s\n\nb\n")
        D.deliver(u, folded)
        s.ok("NOOP")
        r = fetch1(s, "2", 'BODY.PEEK[HEADER.FIELDS ("x-long" SUBJECT)]')
        assert r == b"(BODY[HEADER.FIELDS (X-LONG SUBJECT)] " + \
            lit(c("X-Long: one\n  two\nsubject: s\n\n")) + b")", r
        r = fetch1(s, "1", "RFC822.SIZE", uid=False)
        for bad in ("BODY[HEADER.FIELDS ()]", "BODY[HEADER.FIELDS]",
                    "BODY[HEADER.FIELDS (a:b)]", "BODY[MIME]", "BODY[0]", "FOO",
                    "(FLAGS", "BODY[TEXT]<1>"):
            u_, t = s.cmd("FETCH 1 " + bad)
            assert b" BAD " in t, (bad, t)


@test()
def test_fetch_seen_body_not_peek():
    u = user_with("seen", SIMPLE, SIMPLE, SIMPLE)
    with session(u) as s:
        fetch1(s, "1", "BODY.PEEK[]")
        assert fetch1(s, "1", "FLAGS") == b"(FLAGS ())"
        u_, t = s.ok("FETCH 1 BODY[]")
        assert u_ == [b"* 1 FETCH (BODY[] " + lit(SIMPLE) + b" FLAGS (\\Seen))\r\n"], u_
        assert fetch1(s, "1", "FLAGS") == b"(FLAGS (\\Seen))"
        # FLAGS asked for explicitly: the new value, once
        r = fetch1(s, "2", "(FLAGS BODY[HEADER])")
        assert r.startswith(b"(FLAGS (\\Seen) BODY[HEADER] {"), r
        assert r.count(b"FLAGS") == 1, r
        # already seen: no FLAGS added
        r = fetch1(s, "1", "BODY[1]")
        assert b"FLAGS" not in r, r
    # EXAMINE: read-only, BODY[] does not set \Seen
    with session(u, examine=True) as s:
        r = fetch1(s, "3", "BODY[]")
        assert r == b"(BODY[] " + lit(SIMPLE) + b")", r
    with session(u) as s:
        assert fetch1(s, "3", "FLAGS") == b"(FLAGS ())"
    # imaplib view of the same
    m = imaplib_session(u)
    m.select("INBOX")
    typ, data = m.fetch("3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and data[0][1] == c("Subject: Hello there\n\n"), data
    typ, data = m.fetch("3", "(FLAGS)")
    assert data == [b"3 (FLAGS ())"], data
    m.logout()


@test(timeout=120)
def test_fetch_10mb_body_byte_identical():
    one = b"%07d abcdefghijklmnopqrstuvwxyz0123456789\r\n"
    line = b"".join(one % i for i in range(10 * 1024 * 1024 // (len(one) - 3) + 1))
    big = c("From: big@example.org\nSubject: big\n\n") + line
    assert len(big) > 10 * 1024 * 1024
    u = user_with("big", big)
    with session(u) as s:
        r = fetch1(s, "1", "BODY.PEEK[]")
        assert r == b"(BODY[] " + lit(big) + b")", "10 MB body differs"
        r = fetch1(s, "1", "RFC822.SIZE")
        assert r == b"(RFC822.SIZE %d)" % len(big)
        # a slow reader: the server parks and resumes, nothing lost
        s.send(b"S1 FETCH 1 BODY.PEEK[TEXT]\r\n")
        time.sleep(1.0)
        resp = s.response()
        assert resp == b"* 1 FETCH (BODY[TEXT] " + lit(line) + b")\r\n", len(resp)
        assert s.readline().startswith(b"S1 OK")
    # imaplib agrees
    m = imaplib_session(u)
    m.select("INBOX", readonly=True)
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == big
    m.logout()
    # a client that leaves in the middle of a parked FETCH: the server
    # drops the command cleanly (the sanitizer check at the end sees leaks)
    for _ in range(3):
        s = session(u)
        s.send(b"X1 FETCH 1 BODY.PEEK[]\r\nX2 FETCH 1 BODY.PEEK[]\r\n")
        s.readline()
        s.close()
    time.sleep(0.5)
    assert D.alive()
    with session(u) as s:
        assert fetch1(s, "1", "RFC822.SIZE") == b"(RFC822.SIZE %d)" % len(big)


def append_many(s, n, mk):
    """Pipelined APPENDs with LITERAL+."""
    out = []
    for i in range(n):
        m = mk(i)
        out.append(b"A%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n")
    s.send(b"".join(out))
    for i in range(n):
        while True:
            r = s.response()
            if r.startswith(b"A%d " % i):
                assert r.startswith(b"A%d OK" % i), r
                break


@test(timeout=240)
def test_fetch_2000_messages_uid_flags():
    u = "many@example.com"
    D.add_user(u, PW)
    with session(u, mailbox=None) as s:
        append_many(s, 2000, lambda i: c("Subject: m%d\n\nbody %d\n" % (i, i)))
        s.ok("SELECT INBOX")
        s.ok("STORE 1000:1010 +FLAGS.SILENT (\\Flagged)")
        u_, t = s.ok("FETCH 1:* (UID FLAGS)")
        f = [r for r in u_ if b" FETCH " in r]
        assert len(f) == 2000, len(f)
        for i, r in enumerate(f):
            fl = b"\\Flagged" if 1000 <= i + 1 <= 1010 else b""
            assert r == b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (i + 1, i + 1, fl), r
        u_, t = s.ok("UID FETCH 1990:* RFC822.SIZE")
        assert len(u_) == 11 and u_[-1].startswith(b"* 2000 FETCH (UID 2000 RFC822.SIZE "), u_
        # ~1 MB of answer to a reader that waits: the server parks between
        # messages (output over its high-water mark) and resumes in order
        s.send(b"P1 FETCH 1:* (BODY.PEEK[] BODY.PEEK[TEXT] ENVELOPE BODYSTRUCTURE "
               b"BODY.PEEK[HEADER.FIELDS (Subject)] INTERNALDATE)\r\n")
        time.sleep(1.0)
        total = 0
        for i in range(2000):
            r = s.response()
            total += len(r)
            m = c("Subject: m%d\n\nbody %d\n" % (i, i))
            assert r.startswith(b"* %d FETCH (BODY[] " % (i + 1) + lit(m)), r[:200]
        assert total > 600000, total
        assert s.readline().startswith(b"P1 OK"), "tagged"
    m = imaplib_session(u)
    m.select("INBOX", readonly=True)
    typ, data = m.fetch("1:*", "(UID FLAGS)")
    assert typ == "OK" and len(data) == 2000, len(data)
    m.logout()


@test()
def test_fetch_bad_and_edge():
    u = user_with("edge", SIMPLE)
    with session(u) as s:
        u_, t = s.cmd("FETCH 2 FLAGS")
        assert b" BAD " in t, t
        u_, t = s.cmd("FETCH x FLAGS")
        assert b" BAD " in t, t
        u_, t = s.cmd("FETCH 1")
        assert b" BAD " in t, t
        # UIDs not present are skipped silently
        u_, t = s.ok("UID FETCH 5:7 FLAGS")
        assert u_ == [], u_
        u_, t = s.ok("UID FETCH 1:* (UID)")
        assert u_ == [b"* 1 FETCH (UID 1)\r\n"], u_
    with session(u, mailbox=None) as s:
        u_, t = s.cmd("FETCH 1 FLAGS")
        assert b" BAD " in t or b" NO " in t, t


@test()
def test_fetch_expunged_by_other_session():
    """RFC 2180 4.1.2: the gone message is skipped, the rest is sent, and
    the command ends NO [EXPUNGEISSUED]; the EXPUNGE comes at the next
    command that may send it."""
    u = user_with("gone", SIMPLE, ALT, MIXED)
    with session(u) as a, session(u) as b:
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        u_, t = a.cmd("FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS (Subject)])")
        assert re.match(rb"F\d+ NO \[EXPUNGEISSUED\]", t), t
        f = [r for r in u_ if b" FETCH " in r]
        assert len(f) == 2 and f[0].startswith(b"* 1 FETCH (UID 1 ") \
            and f[1].startswith(b"* 3 FETCH (UID 3 "), u_
        assert not any(b"EXPUNGE" in r for r in u_), u_
        u_, t = a.cmd("FETCH 2 ENVELOPE")
        assert re.match(rb"F\d+ NO \[EXPUNGEISSUED\]", t), t
        u_, t = a.ok("NOOP")
        assert b"* 2 EXPUNGE\r\n" in u_, u_
        u_, t = a.ok("FETCH 1:* UID")
        assert u_ == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 3)\r\n"], u_


ODD = [
    b"Subject: header only, no newline",
    b"Subject: header only\r\n",
    b"\r\nbody without header\r\n",
    b"x",
    b"Subject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: cut",
    b"Subject: =?UTF-8?B?w6k=?= \xff\xfe raw 8-bit\r\nFrom: \"Q\\\"uote\" <a@b>, "
    b"group: x@y, z@w;, <@route:r@s>\r\n\r\nb\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
    b"Content-Type: text/plain; charset*0*=us-ascii'en'a; charset*1=b\r\n"
    b"Content-Disposition: inline; filename*=utf-8''%e2%82%ac.txt\r\n"
    b"Content-Language: en, de\r\nContent-Location: http://x/\r\n"
    b"Content-MD5: abc=\r\n\r\nx\r\n",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 60,
]


@test(timeout=60)
def test_fetch_odd_messages():
    """Broken and unusual messages: every item answers, nothing crashes,
    and sizes/literals stay consistent."""
    u = "odd@example.com"
    D.add_user(u, PW)
    with session(u, mailbox=None) as s:
        for i, m in enumerate(ODD):
            s.ok(b"APPEND INBOX {%d+}\r\n" % len(m) + m)
        s.ok("SELECT INBOX")
        u_, t = s.ok("FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE "
                     "BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] "
                     "BODY.PEEK[1.MIME] BODY.PEEK[1.1.HEADER] "
                     "BODY.PEEK[HEADER.FIELDS (Subject From)] BODY.PEEK[]<2.5>)")
        f = [r for r in u_ if b" FETCH " in r]
        assert len(f) == len(ODD), u_
        for i, r in enumerate(f):
            assert b" BODY[] " + lit(ODD[i]) in r, (i, r[:300])
            assert b"RFC822.SIZE %d " % len(ODD[i]) in r, (i, r[:300])
            assert r.endswith(b")\r\n"), r[-50:]
        assert b'"Q\\"uote"' in f[5], f[5]
        # parenthesised, literal-correct structure: balanced outside strings
        for r in f:
            depth, i, instr = 0, 0, False
            while i < len(r):
                ch = r[i:i + 1]
                m = re.match(rb"\{(\d+)\}\r\n", r[i:]) if not instr else None
                if m:
                    i += len(m.group(0)) + int(m.group(1))
                    continue
                if instr:
                    if ch == b"\\":
                        i += 1
                    elif ch == b'"':
                        instr = False
                elif ch == b'"':
                    instr = True
                elif ch == b"(":
                    depth += 1
                elif ch == b")":
                    depth -= 1
                    assert depth >= 0, r
                i += 1
            assert depth == 0 and not instr, r[:400]


# ------------------------------------------------------------ STORE

@test()
def test_store_variants():
    u = user_with("store", SIMPLE, SIMPLE, SIMPLE)
    with session(u) as s:
        u_, t = s.ok("STORE 1 FLAGS (\\Seen \\Flagged)")
        assert u_[0] == b"* 1 FETCH (FLAGS (\\Seen \\Flagged))\r\n", u_
        u_, t = s.ok("STORE 1 +FLAGS ($Work \\Draft)")
        assert u_[0] == b"* 1 FETCH (FLAGS (\\Seen \\Flagged \\Draft $Work))\r\n", u_
        u_, t = s.ok("STORE 1 -FLAGS (\\Seen $Work)")
        assert u_[0] == b"* 1 FETCH (FLAGS (\\Flagged \\Draft))\r\n", u_
        # .SILENT: nothing, also not from the post-command sync
        u_, t = s.ok("UID STORE 1:2 +FLAGS.SILENT (\\Answered)")
        assert not any(b"FETCH" in r for r in u_), u_
        # without: exactly one FETCH per message (no second one from the sync)
        u_, t = s.ok("STORE 1:2 +FLAGS (\\Answered)")
        assert [r for r in u_ if b"FETCH" in r] == [
            b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Draft))\r\n",
            b"* 2 FETCH (FLAGS (\\Answered))\r\n"], u_
        u_, t = s.ok("UID STORE 2 FLAGS \\Deleted")
        assert u_[0] == b"* 2 FETCH (UID 2 FLAGS (\\Deleted))\r\n", u_
        u_, t = s.ok("STORE 3 FLAGS ()")
        assert u_[0] == b"* 3 FETCH (FLAGS ())\r\n", u_
        s.ok("NOOP")
        u_, t = s.ok("FETCH 1:3 FLAGS")
        assert u_ == [b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Draft))\r\n",
                      b"* 2 FETCH (FLAGS (\\Deleted))\r\n",
                      b"* 3 FETCH (FLAGS ())\r\n"], u_
        for bad in ("STORE 1 +FLAGS (\\Recent)", "STORE 1 FLAGS (\\Bogus)",
                    "STORE 1 +FLAGS (a]b)", "STORE 1 XFLAGS (\\Seen)",
                    "STORE 9 +FLAGS (\\Seen)", "STORE 1 +FLAGS"):
            u_, t = s.cmd(bad)
            assert b" BAD " in t, (bad, t)
        # keyword case: stays one keyword
        s.ok("STORE 3 +FLAGS.SILENT (Foo)")
        s.ok("STORE 3 +FLAGS.SILENT (foo)")
        s.ok("NOOP")
        u_, t = s.ok("FETCH 3 FLAGS")
        assert u_[0].lower() == b"* 3 fetch (flags (foo))\r\n", u_
    with session(u, examine=True) as s:
        u_, t = s.cmd("STORE 1 +FLAGS (\\Seen)")
        assert b" NO " in t, t
    m = imaplib_session(u)
    m.select("INBOX")
    typ, data = m.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and b"\\Seen" in data[0], data
    m.logout()


# ------------------------------------------------------------ COPY / MOVE

@test()
def test_copy_copyuid():
    u = user_with("copy", SIMPLE, ALT, MIXED, SIMPLE, SIMPLE)
    with session(u) as s:
        s.ok("CREATE Dest")
        u_, t = s.ok("STATUS Dest (UIDVALIDITY)")
        uv = int(re.search(rb"UIDVALIDITY (\d+)", u_[0]).group(1))
        u_, t = s.ok("COPY 1:2,4 Dest")
        assert re.match(rb"F\d+ OK \[COPYUID %d 1:2,4 1:3\] " % uv, t), t
        u_, t = s.ok("UID COPY 3:5 Dest")
        assert re.match(rb"F\d+ OK \[COPYUID %d 3:5 4:6\] " % uv, t), t
        u_, t = s.ok("UID COPY 100:200 Dest")   # nothing: OK, no COPYUID
        assert b"COPYUID" not in t, t
        u_, t = s.cmd("COPY 1 Nowhere")
        assert re.match(rb"F\d+ NO \[TRYCREATE\]", t), t
        u_, t = s.cmd("COPY 9 Dest")
        assert b" BAD " in t, t
        # the copies are whole and keep their flags
        s.ok("STORE 1 +FLAGS.SILENT (\\Flagged $K)")
        u_, t = s.ok("COPY 1 Dest")
        s.ok("SELECT Dest")
        u_, t = s.ok("FETCH 7 (FLAGS BODY.PEEK[])")
        assert u_[0] == b"* 7 FETCH (FLAGS (\\Flagged $K) BODY[] " + lit(SIMPLE) + b")\r\n", u_
        u_, t = s.ok("FETCH 3 BODY.PEEK[]")
        assert u_[0] == b"* 3 FETCH (BODY[] " + lit(SIMPLE) + b")\r\n"
    m = imaplib_session(u)
    m.select("INBOX")
    typ, data = m.copy("2", "Dest")
    assert typ == "OK" and b"COPYUID" in data[0], data
    m.logout()


@test()
def test_move():
    u = user_with("move", SIMPLE, ALT, MIXED, SIMPLE)
    with session(u) as s:
        s.ok("CREATE Moved")
        u_, t = s.ok("STATUS Moved (UIDVALIDITY)")
        uv = int(re.search(rb"UIDVALIDITY (\d+)", u_[0]).group(1))
        u_, t = s.ok("MOVE 2:3 Moved")
        assert u_[0].startswith(b"* OK [COPYUID %d 2:3 1:2]" % uv), u_
        exp = [r for r in u_ if r.endswith(b"EXPUNGE\r\n")]
        assert exp == [b"* 2 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"], u_
        assert u_.index(exp[0]) > 0
        u_, t = s.ok("FETCH 1:* UID")
        assert u_ == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 4)\r\n"], u_
        u_, t = s.ok("UID MOVE 4 Moved")
        assert u_[0].startswith(b"* OK [COPYUID %d 4 3]" % uv), u_
        assert b"* 2 EXPUNGE\r\n" in u_, u_
        u_, t = s.cmd("MOVE 1 Nowhere")
        assert re.match(rb"F\d+ NO \[TRYCREATE\]", t), t
        s.ok("SELECT Moved")
        u_, t = s.ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (Subject)])")
        assert len(u_) == 3 and b"alternative" in u_[0] and b"mixed" in u_[1] \
            and b"Hello there" in u_[2], u_
    with session(u, examine=True) as s:
        u_, t = s.cmd("MOVE 1 Moved")
        assert b" NO " in t, t


@test()
def test_daemon_still_alive():
    assert D.alive(), D.log_tail()


if __name__ == "__main__":
    harness.main(setup=setup)
