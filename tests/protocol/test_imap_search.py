#!/usr/bin/env python3
"""test_imap_search.py - IMAP SEARCH / UID SEARCH against a real mailaccessd
(RFC 3501 6.4.4).

Every search key with a positive and a negative case, over four messages
with known flags, keywords, sizes, internal dates (APPEND with a
date-time in several zones) and headers: RFC 2047 subjects and names
(=?UTF-8?B?...?=, =?ISO-8859-1?Q?...?=), quoted-printable and base64
bodies, an ISO-8859-1 body; CHARSET UTF-8 with a literal; BADCHARSET;
syntax errors and the nesting/key-count bounds.

Run: python3 tests/protocol/test_imap_search.py [test_name ...]
(MA_BUILD_DIR selects the build, default build-asan.)
"""

import base64
import imaplib
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

D = None
PW = "Search-pw 1"
USER = "search@example.com"


def c(s):
    return crlf(s.encode() if isinstance(s, str) else s)


M1 = c("From: Alice <alice@example.org>\n"
       "To: bob@example.com\n"
       "Cc: carol@example.net\n"
       "Bcc: dave@example.com\n"
       "Subject: =?UTF-8?B?w6l0w6kgcmVwb3J0?=\n"
       "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
       "X-Custom: alpha\n"
       "\n"
       "The quick brown fox.\n")

M2 = c("From: =?ISO-8859-1?Q?J=F6rg?= <joerg@example.de>\n"
       "To: team@example.com\n"
       "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?=\n"
       "Date: Tue, 15 Mar 2005 10:00:00 +0000\n"
       "MIME-Version: 1.0\n"
       "Content-Type: text/plain; charset=utf-8\n"
       "Content-Transfer-Encoding: quoted-printable\n"
       "\n"
       "Caf=C3=A9 cr=C3=A8me br=C3=BBl=C3=A9e, soft=\n"
       "wrapped word\n")

B64_TEXT = base64.encodebytes("Secret base64 payload Ünïcödé\n".encode()).decode()
M3 = c("From: carol@example.net\n"
       "To: eve@example.com\n"
       "Subject: plain subject\n"
       "Date: Wed, 1 Jan 2020 00:30:00 +0100\n"
       "MIME-Version: 1.0\n"
       "Content-Type: multipart/mixed; boundary=\"zz\"\n"
       "\n"
       "--zz\n"
       "Content-Type: text/plain; charset=utf-8\n"
       "Content-Transfer-Encoding: base64\n"
       "\n" + B64_TEXT +
       "--zz\n"
       "Content-Type: application/octet-stream\n"
       "Content-Transfer-Encoding: base64\n"
       "\n"
       "AAECAwQFBgcICQ==\n"
       "--zz--\n")

M4 = c("From: frank@example.com\n"
       "To: frank@example.com\n"
       "Subject: latin body\n"
       "Date: Tue, 20 Jun 2023 12:00:00 +0000\n"
       "MIME-Version: 1.0\n"
       "Content-Type: text/plain; charset=iso-8859-1\n"
       "Content-Transfer-Encoding: quoted-printable\n"
       "\n"
       "Gr=FC=DF Gott\n" + "padding line to make this message large\n" * 60)

# (flags, internal date) per message
APPENDS = [
    (M1, r"(\Seen \Answered)", "07-Feb-1994 21:52:25 -0800"),
    (M2, r"(\Flagged $Work)", "15-Mar-2005 10:00:00 +0000"),
    (M3, r"(\Deleted \Draft)", "01-Jan-2020 00:30:00 +0100"),
    (M4, "()", "20-Jun-2023 12:00:00 +0000"),
]


class Imap:
    """Minimal raw IMAP client: responses with literals inline."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.n = 0
        self.readline()

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(1 << 16)
            if not d:
                raise EOFError(self.buf[:200])
            self.buf += d
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def response(self):
        out = b""
        while True:
            line = self.readline()
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self.buf += self.sock.recv(1 << 16)
            out += self.buf[:n]
            self.buf = self.buf[n:]

    def cmd(self, line):
        self.n += 1
        tag = b"S%d" % self.n
        self.sock.sendall(tag + b" " + (line.encode() if isinstance(line, str) else line)
                          + b"\r\n")
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)

    def ok(self, line):
        u, t = self.cmd(line)
        assert re.match(rb"S\d+ OK", t), (line, t)
        return u, t

    def close(self):
        self.sock.close()


def session():
    s = Imap(D.port("imap"))
    s.ok('LOGIN "%s" "%s"' % (USER, PW))
    s.ok("SELECT INBOX")
    return s


def search(s, keys, uid=False):
    """-> list of numbers from the one * SEARCH line."""
    u, t = s.ok(("UID SEARCH " if uid else "SEARCH ") + keys
                if isinstance(keys, str) else (b"UID SEARCH " if uid else b"SEARCH ") + keys)
    lines = [r for r in u if r.startswith(b"* SEARCH")]
    assert len(lines) == 1, u
    return [int(x) for x in lines[0][8:].split()]


def setup():
    global D
    D = harness.Daemon("imap-search", listeners=[
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="pop3", tls="none"),
    ])
    D.add_user(USER, PW)
    D.start()
    s = Imap(D.port("imap"))
    s.ok('LOGIN "%s" "%s"' % (USER, PW))
    # a first message, expunged, so that UIDs are sequence numbers + 1
    s.ok(b"APPEND INBOX {%d+}\r\n" % len(M1) + M1)
    s.ok("SELECT INBOX")
    s.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    s.ok("EXPUNGE")
    for msg, flags, date in APPENDS:
        s.ok(b'APPEND INBOX %s "%s" {%d+}\r\n' % (flags.encode(), date.encode(), len(msg)) + msg)
    s.close()


# ------------------------------------------------------------ flags, sets

@test()
def test_view_is_as_expected():
    s = session()
    u, t = s.ok("FETCH 1:* (UID FLAGS INTERNALDATE)")
    assert len(u) >= 4, u
    assert b'UID 2 FLAGS (\\Answered \\Seen) INTERNALDATE " 7-Feb-1994 21:52:25 -0800"' in u[0], u
    assert b'INTERNALDATE " 1-Jan-2020 00:30:00 +0100"' in u[2], u
    s.close()


@test()
def test_flag_keys():
    s = session()
    cases = [
        ("ALL", [1, 2, 3, 4]),
        ("ANSWERED", [1]), ("UNANSWERED", [2, 3, 4]),
        ("SEEN", [1]), ("UNSEEN", [2, 3, 4]),
        ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4]),
        ("DELETED", [3]), ("UNDELETED", [1, 2, 4]),
        ("DRAFT", [3]), ("UNDRAFT", [1, 2, 4]),
        ("KEYWORD $Work", [2]), ("UNKEYWORD $Work", [1, 3, 4]),
        ("KEYWORD $work", [2]),
        ("KEYWORD $Nope", []), ("UNKEYWORD $Nope", [1, 2, 3, 4]),
        # \Recent is not tracked (docs/imap.md)
        ("NEW", []), ("RECENT", []), ("OLD", [1, 2, 3, 4]),
        ("LARGER 2000", [4]), ("SMALLER 2000", [1, 2, 3]),
        ("LARGER 100000", []), ("SMALLER 10", []),
    ]
    for keys, want in cases:
        got = search(s, keys)
        assert got == want, (keys, got, want)
    s.close()


@test()
def test_sets_and_logic():
    s = session()
    cases = [
        ("2:3", [2, 3]), ("2:*", [2, 3, 4]), ("*,1", [1, 4]), ("4:2", [2, 3, 4]),
        ("UID 3:4", [2, 3]), ("UID 100:200", []), ("UID *", [4]),
        ("NOT SEEN", [2, 3, 4]), ("NOT NOT SEEN", [1]),
        ("OR SEEN FLAGGED", [1, 2]), ("OR (SEEN DELETED) FLAGGED", [2]),
        ("(FLAGGED KEYWORD $Work)", [2]), ("(FLAGGED SEEN)", []),
        ("SEEN ANSWERED 1", [1]), ("SEEN 2:4", []),
        ("OR OR SEEN FLAGGED DRAFT", [1, 2, 3]),
        ("NOT (OR SEEN FLAGGED)", [3, 4]),
        ("1:3 NOT 2", [1, 3]),
    ]
    for keys, want in cases:
        got = search(s, keys)
        assert got == want, (keys, got, want)
    # UID SEARCH answers UIDs (= sequence number + 1 here)
    assert search(s, "FLAGGED", uid=True) == [3]
    assert search(s, "ALL", uid=True) == [2, 3, 4, 5]
    assert search(s, "UID 2,5", uid=True) == [2, 5]
    assert search(s, "2", uid=True) == [3]
    s.close()


# ------------------------------------------------------------ headers

@test()
def test_address_and_header_keys():
    s = session()
    cases = [
        ("FROM alice", [1]), ("FROM ALICE@EXAMPLE", [1]), ("FROM nobody", []),
        ("FROM joerg", [2]),
        ("TO team", [2]), ("TO bob", [1]), ("TO zed", []),
        ("CC carol", [1]), ("CC zed", []),
        ("BCC dave", [1]), ("BCC zed", []),
        ('SUBJECT "plain subject"', [3]), ("SUBJECT subj", [3]), ("SUBJECT nothing", []),
        ("SUBJECT REPORT", [1]),
        ("HEADER X-Custom alpha", [1]), ("HEADER x-custom ALPHA", [1]),
        ('HEADER X-Custom ""', [1]), ("HEADER X-Custom beta", []),
        ('HEADER Content-Type ""', [2, 3, 4]),
        ("HEADER Content-Type iso-8859", [4]),
        ('HEADER X-Missing ""', []),
    ]
    for keys, want in cases:
        got = search(s, keys)
        assert got == want, (keys, got, want)
    s.close()


def lit(s):
    b = s.encode()
    return b"{%d+}\r\n" % len(b) + b


@test()
def test_rfc2047_and_charset_utf8_literal():
    s = session()
    cases = [
        # =?UTF-8?B?w6l0w6kgcmVwb3J0?= is "été report"
        (b"CHARSET UTF-8 SUBJECT " + lit("été"), [1]),
        (b"CHARSET UTF-8 SUBJECT " + lit("ÉTÉ REP"), [1]),     # case folding
        # =?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?= is "Grüße aus München"
        (b"CHARSET UTF-8 SUBJECT " + lit("münchen"), [2]),
        (b"CHARSET UTF-8 SUBJECT " + lit("Grüße aus"), [2]),
        (b"CHARSET UTF-8 FROM " + lit("Jörg"), [2]),
        (b"CHARSET UTF-8 FROM " + lit("JÖRG"), [2]),
        (b"CHARSET UTF-8 SUBJECT " + lit("Grüsse"), []),
        (b'CHARSET US-ASCII SUBJECT "aus"', [2]),
        (b"CHARSET utf-8 TEXT " + lit("été"), [1]),
        (b'SUBJECT "=?ISO"', []),      # the decoded text is searched, not the raw
    ]
    for keys, want in cases:
        got = search(s, keys)
        assert got == want, (keys, got, want)
    u, t = s.cmd('SEARCH CHARSET ISO-8859-1 SUBJECT "x"')
    assert re.match(rb"S\d+ NO \[BADCHARSET \(US-ASCII UTF-8\)\]", t), t
    u, t = s.cmd('SEARCH CHARSET KOI8-R ALL')
    assert b"[BADCHARSET" in t, t
    s.close()
    # imaplib's literal path
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"))
    m.login(USER, PW)
    m.select("INBOX")
    m.literal = "münchen".encode()
    typ, data = m.search("UTF-8", "SUBJECT")
    assert typ == "OK" and data == [b"2"], (typ, data)
    typ, data = m.uid("SEARCH", "FROM", "alice")
    assert typ == "OK" and data == [b"2"], (typ, data)
    m.logout()


# ------------------------------------------------------------ bodies

@test()
def test_body_and_text_keys():
    s = session()
    cases = [
        (b"BODY fox", [1]), (b"BODY FOX", [1]), (b"BODY wolf", []),
        # quoted-printable UTF-8, soft line break joined
        (b"CHARSET UTF-8 BODY " + lit("crème brûlée"), [2]),
        (b"BODY softwrapped", [2]),
        # base64 UTF-8 part of a multipart
        (b"BODY payload", [3]), (b"CHARSET UTF-8 BODY " + lit("ÜNÏCÖDÉ"), [3]),
        (b"BODY AAECAwQF", []),          # the binary attachment's encoded form is not text
        # ISO-8859-1 quoted-printable converted to UTF-8
        (b"CHARSET UTF-8 BODY " + lit("grüß gott"), [4]),
        # BODY does not look at the header, TEXT does
        (b"BODY alice", []), (b"TEXT alice", [1]),
        (b"TEXT fox", [1]), (b"TEXT zzzz", []),
        (b"CHARSET UTF-8 TEXT " + lit("münchen"), [2]),
        (b"TEXT padding", [4]),
        (b"OR BODY fox BODY payload", [1, 3]),
        (b"NOT BODY fox", [2, 3, 4]),
    ]
    for keys, want in cases:
        got = search(s, keys)
        assert got == want, (keys, got, want)
    s.close()


# ------------------------------------------------------------ dates

@test()
def test_date_keys():
    s = session()
    cases = [
        # internal date, in the message's own zone
        ("BEFORE 1-Jan-2000", [1]), ("BEFORE 7-Feb-1994", []), ("BEFORE 8-Feb-1994", [1]),
        ("ON 7-Feb-1994", [1]),            # 21:52 -0800 is the 8th in UTC
        ("ON 8-Feb-1994", []),
        ("ON 1-Jan-2020", [3]),            # 00:30 +0100 is Dec 31 in UTC
        ("ON 31-Dec-2019", []),
        ("SINCE 1-Jan-2020", [3, 4]), ("SINCE 21-Jun-2023", []),
        ('SINCE "20-Jun-2023"', [4]), ("SINCE 01-Jan-1990", [1, 2, 3, 4]),
        # Date: header
        ("SENTBEFORE 1-Jan-2000", [1]), ("SENTBEFORE 7-Feb-1994", []),
        ("SENTON 7-Feb-1994", [1]), ("SENTON 15-Mar-2005", [2]),
        ("SENTON 1-Jan-2020", [3]), ("SENTON 31-Dec-2019", []),
        ("SENTSINCE 1-Jan-2020", [3, 4]), ("SENTSINCE 1-Jul-2023", []),
    ]
    for keys, want in cases:
        got = search(s, keys)
        assert got == want, (keys, got, want)
    s.close()


# ------------------------------------------------------------ errors

@test()
def test_bad_searches():
    s = session()
    for bad in ("FOO", "OR SEEN", "BEFORE 2020-01-01", "BEFORE 32-Jan-2020",
                "LARGER x", "LARGER", "UID", "UID x", "KEYWORD", "KEYWORD a]b",
                "HEADER", "HEADER X-Foo", "NOT", "()", "(SEEN", "SUBJECT",
                'HEADER "a:b" x', "x:y", "CHARSET"):
        u, t = s.cmd("SEARCH " + bad)
        assert re.match(rb"S\d+ BAD", t), (bad, t)
        assert not any(r.startswith(b"* SEARCH") for r in u), (bad, u)
        s.ok("NOOP")    # consecutive BADs would end the session
    # bounds: nesting depth and number of keys
    u, t = s.cmd("SEARCH " + "(" * 40 + "SEEN" + ")" * 40)
    assert re.match(rb"S\d+ BAD", t), t
    u, t = s.cmd("SEARCH " + "NOT " * 100 + "SEEN")
    assert re.match(rb"S\d+ BAD", t), t
    u, t = s.cmd("SEARCH " + "SEEN " * 2000)
    assert re.match(rb"S\d+ BAD", t), t
    # still fine afterwards
    assert search(s, "(((SEEN)))") == [1]
    assert search(s, "NOT " * 10 + "SEEN") == [1]
    s.close()
    # no mailbox selected
    s = Imap(D.port("imap"))
    s.ok('LOGIN "%s" "%s"' % (USER, PW))
    u, t = s.cmd("SEARCH ALL")
    assert re.match(rb"S\d+ (BAD|NO)", t), t
    s.close()


@test(timeout=120)
def test_search_many_messages_result_line():
    u = "many-search@example.com"
    D.add_user(u, PW)
    s = Imap(D.port("imap"))
    s.ok('LOGIN "%s" "%s"' % (u, PW))
    out = []
    for i in range(1500):
        m = c("Subject: n%d\n\nbody %s\n" % (i, "even" if i % 2 == 0 else "odd"))
        out.append(b"A%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n")
    s.sock.sendall(b"".join(out))
    for i in range(1500):
        while not s.response().startswith(b"A%d OK" % i):
            pass
    s.ok("SELECT INBOX")
    got = search(s, "ALL")
    assert got == list(range(1, 1501)), len(got)
    got = search(s, "BODY even")
    assert got == list(range(1, 1501, 2)), len(got)
    got = search(s, "SUBJECT n1499")
    assert got == [1500], got
    s.close()


@test()
def test_daemon_still_alive():
    assert D.alive(), D.log_tail()


if __name__ == "__main__":
    harness.main(setup=setup)
