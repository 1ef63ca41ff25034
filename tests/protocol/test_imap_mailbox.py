#!/usr/bin/env python3
"""test_imap_mailbox.py - IMAP mailbox commands against a real mailaccessd.

Covers proto-imap/cmd-select.c, cmd-mailbox.c, cmd-list.c, cmd-append.c:
SELECT/EXAMINE (exact responses), CLOSE/UNSELECT/EXPUNGE/UID EXPUNGE seen
from two sessions, CREATE/DELETE/RENAME with hierarchy and INBOX,
SUBSCRIBE/LSUB, LIST patterns and attributes (CHILDREN, SPECIAL-USE,
LIST-EXTENDED subset, LIST-STATUS), STATUS, APPEND (flags, date-time,
APPENDUID, TRYCREATE, TOOBIG, bare LF), modified UTF-7 names, bad names,
no way into another user's store, and POP3 <-> IMAP on the same INBOX.

Each test uses its own user. A small raw client (below) keeps the wire
bytes visible, so responses are compared exactly; imaplib is used where a
real client library is the point.

Run: python3 tests/protocol/test_imap_mailbox.py [test_name ...]
(MA_BUILD_DIR selects the build.)
"""

import imaplib
import os
import poplib
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

D = None        # the daemon
SMALL = None    # a daemon with a 2k message size limit
PW = "Secret-pw 1"

SYSFLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def setup():
    global D, SMALL
    D = harness.Daemon("imap-mailbox", listeners=[
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="pop3", protocol="pop3", tls="none"),
    ])
    D.start()
    SMALL = harness.Daemon("imap-mailbox-small", listeners=[
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="pop3", protocol="pop3", tls="none"),
    ], limits={"max_message_size": "2k", "output_buffer": "4k"},
        extra="imap {\n  autocreate = Sent:sent\n  autocreate_subscribe = no\n}")
    SMALL.start()


def teardown():
    pass


_users = set()


def user(name, d=None):
    d = d or D
    u = "%s@example.com" % name
    if (id(d), u) not in _users:
        d.add_user(u, PW)
        _users.add((id(d), u))
    return u


class Imap:
    """Raw IMAP client: cmd() returns (untagged lines, tagged line) as str;
    literals in responses are inlined as {n}CRLF + bytes."""

    def __init__(self, d=None, listener="imap"):
        d = d or D
        self.sock = socket.create_connection(("127.0.0.1", d.port(listener)),
                                             timeout=10)
        self.buf = b""
        self.n = 0
        self.greeting = self.readline()
        assert self.greeting.startswith("* OK"), self.greeting

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed; buffered %r" % self.buf[:200])
        self.buf += data

    def _rawline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n")
        line, self.buf = self.buf[:i], self.buf[i + 2:]
        return line

    def readline(self):
        line = self._rawline()
        out = line
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                break
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            lit, self.buf = self.buf[:n], self.buf[n:]
            line = self._rawline()
            out += b"\r\n" + lit + line
        return out.decode("utf-8", errors="replace")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def result(self, tag):
        untagged = []
        while True:
            line = self.readline()
            if line.startswith(tag + " "):
                return untagged, line
            untagged.append(line)

    def cmd(self, text):
        t = self.tag()
        self.send(t + " " + text + "\r\n")
        return self.result(t)

    def ok(self, text):
        u, t = self.cmd(text)
        assert t.split()[1] == "OK", (text, u, t)
        return u, t

    def no(self, text):
        u, t = self.cmd(text)
        assert t.split()[1] == "NO", (text, u, t)
        return u, t

    def bad(self, text):
        u, t = self.cmd(text)
        assert t.split()[1] == "BAD", (text, u, t)
        return u, t

    def append(self, box, msg, flags=None, date=None, sync=False):
        """APPEND with a literal (LITERAL+ unless sync)."""
        if isinstance(msg, str):
            msg = msg.encode()
        t = self.tag()
        head = "%s APPEND %s" % (t, box)
        if flags is not None:
            head += " (%s)" % flags
        if date is not None:
            head += ' "%s"' % date
        if sync:
            self.send(head + " {%d}\r\n" % len(msg))
            cont = self.readline()
            if not cont.startswith("+"):
                return [], cont
            self.send(msg + b"\r\n")
        else:
            self.send(head.encode() + b" {%d+}\r\n" % len(msg) + msg + b"\r\n")
        return self.result(t)

    def login(self, u):
        self.ok("LOGIN %s \"%s\"" % (u, PW))
        return self

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def session(u, d=None):
    return Imap(d).login(u)


def mk(subject, body="body line\r\n"):
    return ("From: a@example.org\r\nTo: b@example.com\r\nSubject: %s\r\n\r\n%s"
            % (subject, body)).encode()


def code_of(tagged):
    m = re.match(r"\S+ \S+ \[([^\]]*)\]", tagged)
    return m.group(1) if m else None


def list_names(lines, kind="LIST"):
    """{name: set(attrs)} from LIST/LSUB responses."""
    out = {}
    for l in lines:
        m = re.match(r'\* %s \(([^)]*)\) "/" (.*)$' % kind, l)
        if not m:
            continue
        name = m.group(2)
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[name] = set(m.group(1).split())
    return out


def status_of(c, box, items="MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE"):
    u, t = c.ok("STATUS %s (%s)" % (box, items))
    assert len(u) == 1, u
    m = re.match(r"\* STATUS .* \((.*)\)$", u[0])
    assert m, u
    f = m.group(1).split()
    return dict((f[i], int(f[i + 1])) for i in range(0, len(f), 2))


# ------------------------------------------------------------ SELECT

@test
def test_select_examine_exact():
    u = user("sel")
    for i in range(3):
        D.deliver(u, mk("m%d" % i))
    c = session(u)
    st = status_of(c, "INBOX")
    assert st["MESSAGES"] == 3 and st["UIDNEXT"] == 4, st
    v = st["UIDVALIDITY"]
    lines, tagged = c.ok("SELECT INBOX")
    assert lines == [
        "* FLAGS (%s)" % SYSFLAGS,
        "* OK [PERMANENTFLAGS (%s \\*)] Flags permitted." % SYSFLAGS,
        "* 3 EXISTS",
        "* 0 RECENT",
        "* OK [UNSEEN 1] First unseen.",
        "* OK [UIDVALIDITY %d] UIDs valid" % v,
        "* OK [UIDNEXT 4] Predicted next UID",
    ], lines
    assert code_of(tagged) == "READ-WRITE", tagged
    # EXAMINE: read-only, no permanent flags
    lines, tagged = c.ok("EXAMINE inbox")
    assert lines[1] == "* OK [PERMANENTFLAGS ()] Read-only mailbox.", lines
    assert "* 3 EXISTS" in lines and code_of(tagged) == "READ-ONLY", (lines, tagged)
    # read-only refuses EXPUNGE
    u2, t2 = c.no("EXPUNGE")
    assert code_of(t2) == "READ-ONLY", t2
    # UIDVALIDITY stable across sessions; UNSEEN only when there is one
    c2 = session(u)
    lines2, _ = c2.ok("SELECT INBOX")
    assert "* OK [UIDVALIDITY %d] UIDs valid" % v in lines2, lines2
    c2.append("INBOX", mk("seen"), flags="\\Seen")
    c.close()
    c2.close()
    # a mailbox whose messages are all seen has no [UNSEEN]
    c = session(u)
    c.ok("CREATE allseen")
    c.append("allseen", mk("x"), flags="\\Seen")
    lines, _ = c.ok("SELECT allseen")
    assert not any("UNSEEN" in l for l in lines), lines
    assert "* OK [UIDNEXT 2] Predicted next UID" in lines, lines
    # UIDNEXT follows appends
    lines, _ = c.ok("SELECT INBOX")
    assert "* 4 EXISTS" in lines and "* OK [UIDNEXT 5] Predicted next UID" in lines, lines
    c.close()


@test
def test_select_failed_leaves_none():
    u = user("selfail")
    c = session(u)
    c.ok("SELECT INBOX")
    u1, t = c.no("SELECT nosuch")
    assert code_of(t) == "NONEXISTENT", t
    # RFC 3501 6.3.1: no mailbox selected any more
    c.bad("CHECK")
    c.bad("CLOSE")
    c.ok("SELECT INBOX")
    c.ok("CHECK")
    c.no("SELECT ..")
    c.bad("CHECK")
    c.close()


@test
def test_unselect_and_close():
    u = user("unsel")
    c = session(u)
    c.append("INBOX", mk("a"), flags="\\Deleted")
    c.append("INBOX", mk("b"))
    # EXAMINE + CLOSE never expunges
    c.ok("EXAMINE INBOX")
    lines, _ = c.ok("CLOSE")
    assert lines == [], lines
    assert status_of(c, "INBOX")["MESSAGES"] == 2
    # UNSELECT never expunges either (RFC 3691)
    c.ok("SELECT INBOX")
    lines, _ = c.ok("UNSELECT")
    assert lines == [], lines
    assert status_of(c, "INBOX")["MESSAGES"] == 2
    c.bad("UNSELECT")
    # CLOSE on read-write: silent expunge of \Deleted
    c.ok("SELECT INBOX")
    lines, _ = c.ok("CLOSE")
    assert lines == [], lines
    st = status_of(c, "INBOX")
    assert st["MESSAGES"] == 1 and st["UIDNEXT"] == 3, st
    c.close()


# ------------------------------------------------------------ EXPUNGE

@test
def test_expunge_two_sessions():
    u = user("expunge")
    a = session(u)
    for i in range(6):
        # messages 2, 3 and 5 are \Deleted
        a.append("INBOX", mk("m%d" % (i + 1)),
                 flags="\\Deleted" if i + 1 in (2, 3, 5) else "")
    b = session(u)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    lines, t = a.ok("EXPUNGE")
    # ascending UIDs 2, 3, 5 -> numbers 2, 2, 3
    assert lines == ["* 2 EXPUNGE", "* 2 EXPUNGE", "* 3 EXPUNGE"], lines
    lines, _ = b.ok("NOOP")
    assert lines == ["* 2 EXPUNGE", "* 2 EXPUNGE", "* 3 EXPUNGE"], lines
    lines, _ = b.ok("NOOP")
    assert lines == [], lines
    # nothing more to expunge
    lines, _ = a.ok("EXPUNGE")
    assert lines == [], lines
    st = status_of(a, "INBOX")
    assert st["MESSAGES"] == 3 and st["UIDNEXT"] == 7, st
    # new mail shows as EXISTS in the other session
    a.append("INBOX", mk("new"))
    lines, _ = b.ok("NOOP")
    assert lines == ["* 4 EXISTS"], lines
    a.close()
    b.close()


@test
def test_uid_expunge():
    u = user("uidexp")
    a = session(u)
    for i in range(5):
        a.append("INBOX", mk("m%d" % i), flags="\\Deleted" if i != 0 else "")
    a.ok("SELECT INBOX")
    b = session(u)
    b.ok("SELECT INBOX")
    # UIDs 2..5 are \Deleted; only 3 and 5 are in the set; 1 is not deleted
    lines, _ = a.ok("UID EXPUNGE 1,3,5")
    assert lines == ["* 3 EXPUNGE", "* 4 EXPUNGE"], lines
    lines, _ = b.ok("NOOP")
    assert lines == ["* 3 EXPUNGE", "* 4 EXPUNGE"], lines
    lines, _ = a.ok("UID EXPUNGE 1:*")
    assert lines == ["* 2 EXPUNGE", "* 2 EXPUNGE"], lines
    a.bad("UID EXPUNGE")
    a.bad("UID EXPUNGE x")
    assert status_of(a, "INBOX")["MESSAGES"] == 1
    a.close()
    b.close()


@test
def test_pending_expunge_during_fetch():
    """RFC 3501 7.4.1: no EXPUNGE while FETCH/STORE/SEARCH run; the
    numbering holds until a command that may expunge."""
    u = user("pending")
    a = session(u)
    for i in range(3):
        a.append("INBOX", mk("m%d" % i), flags="\\Deleted" if i == 1 else "")
    a.ok("SELECT INBOX")
    b = session(u)
    b.ok("SELECT INBOX")
    b.ok("EXPUNGE")
    lines, t = a.cmd("FETCH 1:* (UID FLAGS)")
    if "not implemented" in t:
        raise harness.Skip("FETCH not there yet")
    assert t.split()[1] == "OK", t
    assert not any("EXPUNGE" in l for l in lines), lines
    uids = [int(re.search(r"UID (\d+)", l).group(1)) for l in lines if "FETCH" in l]
    assert uids == [1, 2, 3], lines
    b.append("INBOX", mk("new"))
    lines, t = a.cmd("FETCH 1:* (UID)")
    assert "* 4 EXISTS" in lines, lines
    assert not any("EXPUNGE" in l for l in lines), lines
    lines, _ = a.ok("NOOP")
    assert lines == ["* 2 EXPUNGE"], lines
    lines, _ = a.ok("FETCH 1:* (UID)")
    uids = [int(re.search(r"UID (\d+)", l).group(1)) for l in lines if "FETCH" in l]
    assert uids == [1, 3, 4], lines
    a.close()
    b.close()


@test
def test_flag_changes_reported():
    u = user("flagchg")
    a = session(u)
    a.append("INBOX", mk("m1"))
    a.append("INBOX", mk("m2"))
    a.ok("SELECT INBOX")
    b = session(u)
    b.ok("SELECT INBOX")
    u1, t = b.cmd("STORE 2 +FLAGS (\\Flagged $Label1)")
    if "not implemented" in t:
        raise harness.Skip("STORE not there yet")
    lines, _ = a.ok("NOOP")
    assert "* FLAGS (%s $Label1)" % SYSFLAGS in lines, lines
    assert "* 2 FETCH (UID 2 FLAGS (\\Flagged $Label1))" in lines, lines
    # our own STORE: its FETCH once, not again from the sync
    lines, _ = a.ok("STORE 1 +FLAGS (\\Seen)")
    assert len([l for l in lines if " FETCH " in l]) == 1, lines
    lines, _ = a.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
    assert lines == [], lines
    lines, _ = a.ok("NOOP")
    assert lines == [], lines
    lines, _ = b.ok("NOOP")
    assert lines == ["* 1 FETCH (UID 1 FLAGS (\\Answered \\Seen))"], lines
    a.close()
    b.close()


# ------------------------------------------------------------ CREATE / DELETE / RENAME

@test
def test_create_delete_hierarchy():
    u = user("tree")
    c = session(u)
    c.ok("CREATE a/b/")      # trailing separator allowed
    u1, t = c.no("CREATE a/b")
    assert code_of(t) == "ALREADYEXISTS", t
    u1, t = c.no("CREATE INBOX")
    assert code_of(t) == "ALREADYEXISTS", t
    c.no("CREATE inbox")
    c.ok("CREATE INBOX/sub")   # children of INBOX are fine
    names = list_names(c.ok('LIST "" "*"')[0])
    assert names["a"] == {"\\Noselect", "\\HasChildren"}, names
    assert names["a/b"] == {"\\HasNoChildren"}, names
    assert names["INBOX"] == {"\\HasChildren"}, names
    c.no("SELECT a")           # an implied parent is not selectable
    u1, t = c.no("DELETE a")   # ... and not deletable: it does not exist
    assert code_of(t) == "NONEXISTENT", t
    c.ok("CREATE a")
    names = list_names(c.ok('LIST "" "a*"')[0])
    assert names == {"a": {"\\HasChildren"}, "a/b": {"\\HasNoChildren"}}, names
    # deleting a parent with children: messages go, children stay
    c.append("a", mk("in a"))
    c.ok("DELETE a")
    names = list_names(c.ok('LIST "" "a*"')[0])
    assert names == {"a": {"\\Noselect", "\\HasChildren"},
                     "a/b": {"\\HasNoChildren"}}, names
    c.ok("CREATE a")
    assert status_of(c, "a")["MESSAGES"] == 0
    c.ok("DELETE a/b")
    names = list_names(c.ok('LIST "" "a*"')[0])
    assert names == {"a": {"\\HasNoChildren"}}, names
    u1, t = c.no("DELETE INBOX")
    assert code_of(t) == "CANNOT", t
    u1, t = c.no("DELETE nosuch")
    assert code_of(t) == "NONEXISTENT", t
    c.bad("CREATE")
    c.bad("DELETE")
    c.close()


@test
def test_rename_hierarchy_and_inbox():
    u = user("rename")
    for i in range(2):
        D.deliver(u, mk("inbox %d" % i))
    c = session(u)
    c.ok("CREATE p/q/r")
    c.append("p/q", mk("x")) if False else None
    c.ok("CREATE p")
    c.append("p", mk("in p"))
    c.ok("RENAME p z")
    names = list_names(c.ok('LIST "" "*"')[0])
    assert "p" not in names and "p/q/r" not in names, names
    assert "z" in names and "z/q/r" in names and "z/q" in names, names
    assert status_of(c, "z")["MESSAGES"] == 1
    u1, t = c.no("RENAME nosuch y")
    assert code_of(t) == "NONEXISTENT", t
    c.ok("CREATE y")
    u1, t = c.no("RENAME z y")
    assert code_of(t) == "ALREADYEXISTS", t
    c.no("RENAME z z/under")
    c.no("RENAME y INBOX")
    # INBOX: messages move, INBOX stays (empty), RFC 3501 6.3.5
    v_old = status_of(c, "INBOX")["UIDVALIDITY"]
    c.ok("RENAME INBOX old-inbox")
    st = status_of(c, "old-inbox")
    assert st["MESSAGES"] == 2, st
    st = status_of(c, "INBOX")
    assert st["MESSAGES"] == 0 and st["UIDNEXT"] == 1, st
    assert st["UIDVALIDITY"] != v_old, st
    lines, _ = c.ok("SELECT INBOX")
    assert "* 0 EXISTS" in lines, lines
    c.close()


@test
def test_delete_rename_selected():
    u = user("delsel")
    c = session(u)
    c.ok("CREATE gone")
    c.ok("SELECT gone")
    lines, t = c.ok("DELETE gone")
    assert lines == ["* OK [CLOSED] Previously selected mailbox closed"], lines
    c.bad("CHECK")   # back in the authenticated state
    c.ok("CREATE moved")
    c.ok("SELECT moved")
    lines, t = c.ok("RENAME moved moved2")
    assert lines == ["* OK [CLOSED] Previously selected mailbox closed"], lines
    c.bad("CHECK")
    # another session's selected mailbox deleted: it is told BYE
    c.ok("CREATE other")
    c2 = session(u)
    c2.ok("SELECT other")
    c.ok("DELETE other")
    c2.send("x NOOP\r\n")
    line = c2.readline()
    assert line.startswith("* BYE"), line
    c.close()
    c2.close()


# ------------------------------------------------------------ SUBSCRIBE / LIST / LSUB

@test
def test_list_patterns():
    u = user("list")
    c = session(u, )
    for n in ("a", "a/b", "a/b/c", "a/d", "ab", "INBOX/x", "x/y/z"):
        c.ok("CREATE %s" % n)
    every = set(list_names(c.ok('LIST "" "*"')[0]))
    assert every >= {"INBOX", "a", "a/b", "a/b/c", "a/d", "ab", "INBOX/x",
                     "x", "x/y", "x/y/z", "Sent", "Trash", "Drafts"}, every

    def names(ref, pat):
        return sorted(list_names(c.ok('LIST "%s" "%s"' % (ref, pat))[0]))
    top = names("", "%")
    assert "a/b" not in top and "x" in top and "a" in top and "INBOX" in top, top
    assert "x/y" not in top, top
    assert names("", "a/%") == ["a/b", "a/d"]
    assert names("a/", "%") == ["a/b", "a/d"]
    assert names("a", "/%") == ["a/b", "a/d"]
    assert names("", "a*") == ["a", "a/b", "a/b/c", "a/d", "ab"]
    assert names("", "a%") == ["a", "ab"]
    assert names("", "INBOX*") == ["INBOX", "INBOX/x"]
    assert names("", "inbox") == ["INBOX"]
    assert names("", "InBoX/%") == ["INBOX/x"]
    assert names("", "*/c") == ["a/b/c"]
    assert names("", "%/%/%") == ["a/b/c", "x/y/z"]
    assert names("", "x/%") == ["x/y"]
    assert names("", "nosuch*") == []
    lines = c.ok('LIST "" "x/%"')[0]
    assert lines == ['* LIST (\\Noselect \\HasChildren) "/" x/y'], lines
    # the delimiter query
    lines, _ = c.ok('LIST "" ""')
    assert lines == ['* LIST (\\Noselect) "/" ""'], lines
    lines, _ = c.ok('LIST "a" ""')
    assert lines == ['* LIST (\\Noselect) "/" ""'], lines
    # INBOX comes first
    lines, _ = c.ok('LIST "" "*"')
    assert lines[0].endswith(" INBOX"), lines
    c.bad("LIST")
    c.bad('LIST ""')
    c.close()


@test(timeout=60)
def test_list_pathological_pattern():
    u = user("listpath")
    c = session(u)
    long = "a" * 60
    c.ok("CREATE %s/%s/%s" % (long, long, long))
    pat = "%*" * 400 + "b"
    t0 = time.monotonic()
    lines, _ = c.ok('LIST "" "%s"' % pat)
    assert lines == [], lines
    # 60 + 120 + 180 'a's in the three names: "*a" x k needs k of them
    for k, want in ((150, 1), (100, 2), (50, 3), (181, 0)):
        lines, _ = c.ok('LIST "" "%s"' % ("*a" * k + "*"))
        assert len(lines) == want, (k, lines)
    lines, _ = c.ok('LIST "" "%s"' % ("%a" * 60 + "/%"))
    assert len(lines) == 1, lines
    assert time.monotonic() - t0 < 5, time.monotonic() - t0
    c.close()


@test(timeout=120)
def test_list_backpressure():
    """LIST output far over the output buffer (4k, hard limit 16k on the
    SMALL daemon) is parked and resumed, not cut off."""
    u = user("listbig", SMALL)
    c = session(u, SMALL)
    n = 300
    names = ["deep/%s%03d" % ("x" * 80, i) for i in range(n)]
    c.send("".join("c%d CREATE %s\r\n" % (i, nm) for i, nm in enumerate(names)))
    for i in range(n):
        u1, t = c.result("c%d" % i)
        assert t.split()[1] == "OK", t
    lines, t = c.ok('LIST "" "*"')
    got = list_names(lines)
    assert all(nm in got for nm in names), len(got)
    assert len(lines) == n + 3, len(lines)   # INBOX, Sent, deep
    lines, t = c.ok('LIST "" "deep/*" RETURN (STATUS (MESSAGES))')
    assert len(lines) == 2 * n, len(lines)
    c.close()


@test
def test_subscribe_lsub():
    u = user("lsub")
    c = session(u)
    c.ok("CREATE f/b")
    c.ok("CREATE g")
    c.ok("SUBSCRIBE f/b")
    lsub = list_names(c.ok('LSUB "" "*"')[0], "LSUB")
    # the autocreated mailboxes are subscribed; f/b too; g and f not
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "f/b"} == set(lsub), lsub
    assert lsub["f/b"] == set(), lsub
    # RFC 3501 6.3.9: "%" returns the unsubscribed parent with \Noselect
    lsub = list_names(c.ok('LSUB "" "f%"')[0], "LSUB")
    assert lsub == {"f": {"\\Noselect"}}, lsub
    lsub = list_names(c.ok('LSUB "f/" "%"')[0], "LSUB")
    assert lsub == {"f/b": set()}, lsub
    c.ok("UNSUBSCRIBE f/b")
    lsub = list_names(c.ok('LSUB "" "f*"')[0], "LSUB")
    assert lsub == {}, lsub
    u1, t = c.no("SUBSCRIBE nosuch")
    assert code_of(t) == "NONEXISTENT", t
    # deleting drops the subscription
    c.ok("SUBSCRIBE g")
    c.ok("DELETE g")
    c.ok("CREATE g")
    lsub = list_names(c.ok('LSUB "" "g"')[0], "LSUB")
    assert lsub == {}, lsub
    # subscription follows a rename
    c.ok("SUBSCRIBE g")
    c.ok("RENAME g h")
    lsub = list_names(c.ok('LSUB "" "h"')[0], "LSUB")
    assert lsub == {"h": set()}, lsub
    c.close()


@test
def test_special_use_and_autocreate():
    u = user("special")
    c = session(u)
    names = list_names(c.ok('LIST "" "*"')[0])
    want = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
            "Junk": "\\Junk", "Archive": "\\Archive"}
    for n, a in want.items():
        assert names.get(n) == {a, "\\HasNoChildren"}, (n, names)
    # RFC 6154 LIST (SPECIAL-USE): only those
    names = list_names(c.ok('LIST (SPECIAL-USE) "" "*"')[0])
    assert set(names) == set(want), names
    # RETURN (SUBSCRIBED) adds \Subscribed
    names = list_names(c.ok('LIST "" "%" RETURN (SUBSCRIBED CHILDREN)')[0])
    assert "\\Subscribed" in names["Sent"] and "\\Subscribed" in names["INBOX"], names
    # selection SUBSCRIBED
    c.ok("CREATE notsub")
    names = list_names(c.ok('LIST (SUBSCRIBED) "" "*"')[0])
    assert "notsub" not in names and "Sent" in names, names
    # several patterns
    names = list_names(c.ok('LIST "" ("INBOX" "Tr*")')[0])
    assert set(names) == {"INBOX", "Trash"}, names
    # RFC 5819 LIST-STATUS
    lines, _ = c.ok('LIST "" "INBOX" RETURN (STATUS (MESSAGES UIDNEXT))')
    assert lines[0].startswith("* LIST") and lines[1] == "* STATUS INBOX (MESSAGES 0 UIDNEXT 1)", lines
    # CREATE with USE (RFC 6154 3)
    c.ok("CREATE MyArchive (USE (\\Archive))")
    names = list_names(c.ok('LIST "" "MyArchive"')[0])
    assert names["MyArchive"] == {"\\Archive", "\\HasNoChildren"}, names
    u1, t = c.no("CREATE Bogus (USE (\\Bogus))")
    assert code_of(t) == "USEATTR", t
    c.bad('LIST (BOGUS) "" "*"')
    c.bad('LIST "" "*" RETURN (BOGUS)')
    c.close()
    # second login: no duplicates; a deleted one comes back (autocreate)
    c = session(u)
    c.ok("DELETE Junk")
    c.close()
    c = session(u)
    names = list_names(c.ok('LIST "" "*"')[0])
    assert names.get("Junk") == {"\\Junk", "\\HasNoChildren"}, names
    c.close()
    # a daemon configured otherwise: only Sent, not subscribed
    su = user("special2", SMALL)
    c = session(su, SMALL)
    names = list_names(c.ok('LIST "" "*"')[0])
    assert set(names) == {"INBOX", "Sent"}, names
    lsub = list_names(c.ok('LSUB "" "*"')[0], "LSUB")
    assert set(lsub) == {"INBOX"}, lsub
    c.close()


# ------------------------------------------------------------ STATUS

@test
def test_status_exact():
    u = user("status")
    c = session(u)
    m1, m2, m3 = mk("one"), mk("two", "x" * 100 + "\r\n"), mk("three")
    c.append("INBOX", m1, flags="\\Seen")
    c.append("INBOX", m2)
    c.append("INBOX", m3, flags="\\Deleted")
    v = status_of(c, "INBOX", "UIDVALIDITY")["UIDVALIDITY"]
    lines, _ = c.ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)")
    assert lines == ["* STATUS INBOX (MESSAGES 3 RECENT 0 UIDNEXT 4 UIDVALIDITY %d "
                     "UNSEEN 2 SIZE %d)" % (v, len(m1) + len(m2) + len(m3))], lines
    # item order follows our table, whatever the request order
    lines, _ = c.ok("STATUS inbox (unseen messages)")
    assert lines == ["* STATUS INBOX (MESSAGES 3 UNSEEN 2)"], lines
    st = status_of(c, "INBOX", "HIGHESTMODSEQ APPENDLIMIT")
    assert st["HIGHESTMODSEQ"] >= 3 and st["APPENDLIMIT"] == 64 << 20, st
    u1, t = c.no("STATUS nosuch (MESSAGES)")
    assert code_of(t) == "NONEXISTENT", t
    c.bad("STATUS INBOX (BOGUS)")
    c.bad("STATUS INBOX ()")
    c.bad("STATUS INBOX")
    # STATUS of the selected mailbox is fine too
    c.ok("SELECT INBOX")
    assert status_of(c, "INBOX")["MESSAGES"] == 3
    c.close()


# ------------------------------------------------------------ APPEND

@test
def test_append_flags_date_appenduid():
    u = user("append")
    c = session(u)
    v = status_of(c, "INBOX")["UIDVALIDITY"]
    u1, t = c.append("INBOX", mk("dated"), flags="\\Seen \\Flagged $Work",
                     date=" 5-Nov-2020 10:11:12 +0130")
    assert t.split()[1] == "OK" and code_of(t) == "APPENDUID %d 1" % v, t
    u1, t = c.append("INBOX", mk("sync"), sync=True)
    assert code_of(t) == "APPENDUID %d 2" % v, t
    u1, t = c.append("INBOX", mk("date2"), date="05-Nov-2020 23:59:59 -0800")
    assert code_of(t) == "APPENDUID %d 3" % v, t
    st = status_of(c, "INBOX")
    assert st["MESSAGES"] == 3 and st["UNSEEN"] == 2 and st["UIDNEXT"] == 4, st
    lines, _ = c.ok("SELECT INBOX")
    assert "* FLAGS (%s $Work)" % SYSFLAGS in lines, lines
    lines, t = c.cmd("FETCH 1:3 (UID FLAGS INTERNALDATE RFC822.SIZE)")
    if "not implemented" not in t:
        assert t.split()[1] == "OK", t
        assert any('INTERNALDATE " 5-Nov-2020 10:11:12 +0130"' in l and
                   "\\Seen" in l and "\\Flagged" in l and "$Work" in l
                   for l in lines), lines
        assert any('INTERNALDATE " 5-Nov-2020 23:59:59 -0800"' in l for l in lines), lines
        assert any("RFC822.SIZE %d" % len(mk("dated")) in l for l in lines), lines
    # bad flags / dates
    c.bad('APPEND INBOX (\\Bogus) {1+}\r\nx')
    c.bad('APPEND INBOX "31-Feb-2020 10:00:00 +0000" {1+}\r\nx')
    c.bad('APPEND INBOX "5-Foo-2020 10:00:00 +0000" {1+}\r\nx')
    c.bad('APPEND INBOX "5-Nov-2020 25:00:00 +0000" {1+}\r\nx')
    c.bad("APPEND INBOX")
    c.bad("APPEND")
    assert status_of(c, "INBOX")["MESSAGES"] == 3
    # missing mailbox: TRYCREATE
    u1, t = c.append("nosuch", mk("x"))
    assert t.split()[1] == "NO" and code_of(t) == "TRYCREATE", t
    # empty message refused
    u1, t = c.append("INBOX", b"", sync=False)
    assert t.split()[1] == "NO", t
    c.close()


@test
def test_append_bare_lf_and_selected():
    u = user("appendlf")
    c = session(u)
    c.ok("SELECT INBOX")
    msg = b"Subject: lf\n\nline1\nline2\r\n"
    lines, t = c.append("INBOX", msg)
    assert t.split()[1] == "OK", t
    # the selected mailbox hears about it before the tagged OK
    assert "* 1 EXISTS" in lines, lines
    st = status_of(c, "INBOX")
    assert st["SIZE"] == len(msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")), st
    c.close()
    # POP3 sees the stored bytes: CRLF everywhere
    p = poplib.POP3("127.0.0.1", D.port("pop3"), timeout=10)
    p.user(u)
    p.pass_(PW)
    resp, lines, octets = p.retr(1)
    assert lines == [b"Subject: lf", b"", b"line1", b"line2"], lines
    assert octets >= len(msg), octets
    p.quit()


@test
def test_append_toobig():
    u = user("toobig", SMALL)
    c = session(u, SMALL)
    u1, t = c.append("INBOX", b"x" * 1500)
    assert t.split()[1] == "OK", t
    u1, t = c.append("INBOX", b"Subject: y\r\n\r\n" + b"y" * 3000, sync=True)
    assert t.split()[1] == "NO" or t.split()[1] == "BAD", t
    # bare LFs grow the message past the limit after conversion
    u1, t = c.append("INBOX", b"\n" * 1500)
    assert t.split()[1] == "NO" and code_of(t) == "TOOBIG", t
    assert status_of(c, "INBOX")["MESSAGES"] == 1
    c.ok("NOOP")
    c.close()


# ------------------------------------------------------------ names

@test
def test_utf7_names():
    u = user("utf7")
    c = session(u)
    c.ok("CREATE &ZeVnLIqe-")
    c.ok('CREATE "&ZeVnLIqe-/Sub &- more"')
    names = list_names(c.ok('LIST "" "*"')[0])
    assert "&ZeVnLIqe-" in names and "&ZeVnLIqe-/Sub &- more" in names, names
    assert names["&ZeVnLIqe-"] == {"\\HasChildren"}, names
    assert status_of(c, "&ZeVnLIqe-")["MESSAGES"] == 0
    c.append("&ZeVnLIqe-", mk("utf7"))
    lines, _ = c.ok("SELECT &ZeVnLIqe-")
    assert "* 1 EXISTS" in lines, lines
    lines, _ = c.ok('STATUS "&ZeVnLIqe-/Sub &- more" (MESSAGES)')
    assert lines == ['* STATUS "&ZeVnLIqe-/Sub &- more" (MESSAGES 0)'], lines
    # invalid modified UTF-7 is refused, never stored
    for bad in ("&ZeVnLIqe", "&Jjo!", "&AGE-", "&-&", "a&b"):
        u1, t = c.cmd('CREATE "%s"' % bad)
        assert t.split()[1] in ("NO", "BAD"), (bad, t)
    # imaplib sends names as given: the same name through a real client
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"))
    m.login(u, PW)
    typ, data = m.list('""', '"&ZeVnLIqe-*"')
    assert typ == "OK" and len(data) == 2, data
    typ, data = m.select("&ZeVnLIqe-")
    assert typ == "OK" and data == [b"1"], data
    m.logout()
    c.close()


@test
def test_names_needing_quotes():
    u = user("quoted")
    c = session(u)
    for raw, wire in (('with space', '"with space"'), ('quo"te', '"quo\\"te"'),
                      ('back\\slash', '"back\\\\slash"'), ('NIL', 'NIL'),
                      ('(paren)', '"(paren)"'), ('{brace}', '"{brace}"')):
        c.ok("CREATE %s" % wire)
        lines, _ = c.ok('LIST "" %s' % wire)
        assert list_names(lines) == {raw: {"\\HasNoChildren"}}, (raw, lines)
        lines, _ = c.ok("STATUS %s (MESSAGES)" % wire)
        assert lines == ["* STATUS %s (MESSAGES 0)" % (wire if raw != "NIL" else '"NIL"')], lines
        c.ok("SELECT %s" % wire)
    c.close()


@test
def test_bad_names():
    u = user("badnames")
    c = session(u)
    before = set(list_names(c.ok('LIST "" "*"')[0]))
    bad = ['".."', '"a/../b"', '"/x"', '"a//b"', '"."', '"x/."', '"%"', '"a*b"',
           '{3+}\r\na\x01b', '{3+}\r\na\x00b', '{2+}\r\n\r\n', '""',
           '"' + "x" * 1001 + '"', '"' + "/".join(["d"] * 17) + '"',
           '{4+}\r\n\xff\xfe\xfd\xfc']
    for name in bad:
        for cmd in ("CREATE %s", "SELECT %s", "DELETE %s", "RENAME INBOX/zz %s",
                    "STATUS %s (MESSAGES)", "SUBSCRIBE %s"):
            u1, t = c.cmd(cmd % name)
            assert t.split()[1] in ("NO", "BAD"), (cmd, name, t)
    # APPEND to a bad name: refused, nothing stored anywhere
    u1, t = c.append('".."', mk("x"))
    assert t.split()[1] in ("NO", "BAD"), t
    after = set(list_names(c.ok('LIST "" "*"')[0]))
    assert before == after, (before, after)
    c.ok("NOOP")
    c.close()


@test
def test_no_other_user():
    """There is no shared namespace: every name is in the own store."""
    victim = user("victim")
    D.deliver(victim, mk("secret"))
    vc = session(victim)
    vc.ok("CREATE private")
    vc.append("private", mk("secret2"))
    vc.close()
    u = user("mallory")
    c = session(u)
    for name in ('"victim@example.com"', '"victim@example.com/INBOX"',
                 '"~victim@example.com/INBOX"', '"../victim@example.com/INBOX"',
                 '"#shared/victim@example.com"', '"/victim@example.com/private"',
                 '"#users/victim@example.com/private"', '"private"',
                 '"Other Users/victim@example.com"'):
        for cmd in ("SELECT %s", "EXAMINE %s", "STATUS %s (MESSAGES)",
                    "DELETE %s", "RENAME %s stolen"):
            u1, t = c.cmd(cmd % name)
            assert t.split()[1] in ("NO", "BAD"), (cmd, name, t)
    names = list_names(c.ok('LIST "" "*"')[0])
    assert "private" not in names and not any("victim" in n for n in names), names
    assert list_names(c.ok('LIST "~victim@example.com/" "*"')[0]) == {}
    assert status_of(c, "INBOX")["MESSAGES"] == 0
    c.close()
    vc = session(victim)
    assert status_of(vc, "INBOX")["MESSAGES"] == 1
    assert status_of(vc, "private")["MESSAGES"] == 1
    vc.close()


# ------------------------------------------------------------ POP3 <-> IMAP

def pop3(u):
    p = poplib.POP3("127.0.0.1", D.port("pop3"), timeout=10)
    p.user(u)
    p.pass_(PW)
    return p


@test
def test_pop3_sees_imap_append():
    u = user("cross1")
    c = session(u)
    v = status_of(c, "INBOX")["UIDVALIDITY"]
    u1, t = c.append("INBOX", mk("via imap"))
    assert code_of(t) == "APPENDUID %d 1" % v, t
    u1, t = c.append("INBOX", mk("via imap 2"))
    c.close()
    p = pop3(u)
    resp, lines, _ = p.uidl()
    # uidl_format = dovecot: %08Xu%08Xv (Dovecot's %X is lower-case hex)
    assert lines == [b"1 %08x%08x" % (1, v), b"2 %08x%08x" % (2, v)], lines
    resp, lines, _ = p.retr(1)
    assert b"Subject: via imap" in lines, lines
    p.quit()


@test
def test_pop3_dele_shows_as_expunge():
    u = user("cross2")
    for i in range(4):
        D.deliver(u, mk("m%d" % i))
    c = session(u)
    c.ok("SELECT INBOX")
    p = pop3(u)
    p.dele(2)
    p.dele(3)
    p.quit()
    lines, _ = c.ok("NOOP")
    assert lines == ["* 2 EXPUNGE", "* 2 EXPUNGE"], lines
    lines, _ = c.ok("SELECT INBOX")
    assert "* 2 EXISTS" in lines, lines
    c.close()


@test(timeout=120)
def test_many_messages():
    """SELECT of a few thousand messages: one view, quick; pipelined
    APPENDs all acknowledged in order."""
    u = user("many")
    c = session(u)
    n = 1000
    msg = mk("bulk")
    out = b"".join(b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(msg), msg)
                   for i in range(n))
    c.send(out)
    for i in range(n):
        u1, t = c.result("a%d" % i)
        assert t.split()[1] == "OK", t
    t0 = time.monotonic()
    lines, t = c.ok("SELECT INBOX")
    dt = time.monotonic() - t0
    assert "* %d EXISTS" % n in lines, lines
    assert "* OK [UIDNEXT %d] Predicted next UID" % (n + 1) in lines, lines
    assert dt < 5, dt
    c.close()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
