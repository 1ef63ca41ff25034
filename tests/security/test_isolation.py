#!/usr/bin/env python3
"""test_isolation.py - one user can never read or write another's mail.

Two users, A (alice@example.com) and B (bob@example.com), both with mail;
B's messages carry a secret marker and B has a folder "PrivateB". As A,
through every path we could think of, the test tries to reach B's mail:

- IMAP mailbox names: traversal ("../B", "..", "INBOX/../../B"), absolute
  paths ("/etc/passwd"), other-user / shared namespace spellings ("~B",
  "#shared/B", "Other Users/B"), Maildir++ on-disk spellings (".PrivateB",
  "~2e~2e"), NUL / CR / LF / "%" / "*" inside names (sent as literals),
  modified-UTF-7 encodings of "." and "/", very long and very deep names;
  each with SELECT, EXAMINE, STATUS, LIST, LSUB, APPEND, COPY, MOVE, RENAME
  (both ways), DELETE, CREATE, SUBSCRIBE; LIST patterns "*", "%", "../*"
  with hostile references; NAMESPACE offers no other-user namespace;
- LMTP recipients: "<B>" goes to B only, "+detail" traversal
  ("<A+../B@...>", "<A+PrivateB@...>"), quoted local parts, odd syntax; a
  transaction for A and B does not tell A about B;
- SASL: AUTHENTICATE PLAIN / POP3 AUTH PLAIN with authzid=B and A's
  credentials, master-user syntax "A*B" in LOGIN / USER, LOGIN after
  login, POP3 USER/PASS sequences mixing the two users.

After every test: B's mail, seen through B's own IMAP session (every
mailbox, UIDs, flags, a hash of every message), is unchanged (except what
LMTP legitimately delivered to B's own address), no mailbox of A holds
B's secret, and no file or directory appeared anywhere in the daemon's
directory outside A's store (for Maildir: no traversal on disk).
Related: tests/protocol/test_tls.py / test_plaintext.py (STARTTLS,
plaintext refusal). Runs on both backends (MA_TEST_STORE).

Run: python3 tests/security/test_isolation.py [test ...]
"""

import hashlib
import os
import re
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test, b64  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))
harness.PLUGIN_FILES.setdefault("lmtp.so", ("plugins", "lmtp"))

A, PWA = "alice@example.com", "Alice pw 1"
B, PWB = "bob@example.com", "Bob pw 2"
SECRET = b"SECRET-OF-BOB"
D = None
SNAP = None      # B's mail as B sees it
FS = None        # paths in the daemon dir outside A's store
HAVE_LMTP = False


def msg(subject, body, frm="x@example.org"):
    return ("From: %s\r\nTo: someone\r\nSubject: %s\r\n"
            "Message-ID: <%s@test>\r\n\r\n%s\r\n"
            % (frm, subject, subject.replace(" ", "."), body)).encode()


def setup():
    global D, HAVE_LMTP
    for so in (("proto-imap", "imap.so"),):
        if not os.path.exists(os.path.join(harness.build_dir(), *so)):
            raise harness.Skip("%s not built" % so[1])
    HAVE_LMTP = os.path.exists(os.path.join(harness.build_dir(), "plugins",
                                            "lmtp", "lmtp.so"))
    listeners = [dict(name="imap", protocol="imap", tls="none"),
                 dict(name="pop3", protocol="pop3", tls="none")]
    if HAVE_LMTP:
        listeners.append(dict(name="lmtp", protocol="lmtp", tls="none"))
    D = harness.Daemon("isolation", listeners=listeners, limits={
        "auth_fail_delay": "0.01", "auth_fail_max_delay": "0.02",
        "max_line": "64k"},
        extra=("\nlmtp {\n  recipient_delimiter = +\n}\n" if HAVE_LMTP else ""))
    D.add_user(A, PWA)
    D.add_user(B, PWB)
    D.deliver(A, msg("alice one", "hello alice"))
    D.deliver(A, msg("alice two", "hello again alice"))
    D.deliver(B, msg("bob one", "bob inbox " + SECRET.decode() + "-1"))
    D.deliver(B, msg("bob two", "bob inbox " + SECRET.decode() + "-2"))
    D.start()
    with imap(B, PWB) as c:
        c.ok('CREATE "PrivateB"')
        c.ok('APPEND "PrivateB" (\\Flagged)',
             literal=msg("bob private", "private " + SECRET.decode() + "-3"))
        c.logout()
    with imap(A, PWA) as c:
        c.ok('CREATE "AOwn"')
        c.logout()
    rebase()


def imap(user=None, pw=None):
    c = D.imap("imap")
    if user:
        c.login(user, pw)
    return c


def user_dir(user):
    return os.path.join(D.store_path, user)


def fs_paths():
    """Every path under the daemon's directory except A's store and the
    log (paths, with file sizes for B's Maildir files left out: flags
    live in names, so a changed flag shows)."""
    out = set()
    skip = os.path.realpath(user_dir(A))
    for root, dirs, files in os.walk(D.dir):
        if os.path.realpath(root).startswith(skip):
            dirs[:] = []
            continue
        for n in dirs + files:
            p = os.path.join(root, n)
            if os.path.realpath(p) == skip or p == D.log_path:
                continue
            out.add(os.path.relpath(p, D.dir))
    return out


def parse_list(untagged):
    """Mailbox names from LIST/LSUB untagged responses (bytes)."""
    names = []
    for line, lits in untagged:
        m = re.match(rb'\* (?:LIST|LSUB) \([^)]*\) (?:NIL|"[^"]*") (.*)$', line)
        if not m:
            continue
        n = m.group(1)
        if re.match(rb"\{\d+\}$", n) and lits:
            names.append(lits[-1])
        elif n.startswith(b'"'):
            names.append(re.sub(rb'\\(.)', rb"\1", n[1:-1]))
        else:
            names.append(n)
    return names


def quote(name):
    if isinstance(name, str):
        name = name.encode()
    return b'"' + name.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def account(user, pw):
    """{mailbox: [(uid, flags, sha1 of message)]} through user's session."""
    out = {}
    with imap(user, pw) as c:
        st, u = c.ok('LIST "" "*"')
        for line, lits in u:
            if b"\\Noselect" in line or b"\\NonExistent" in line:
                continue
        for name in parse_list(u):
            st, u2 = c.cmd(b"EXAMINE " + quote(name))
            if not st.startswith(b"OK"):
                continue
            n = 0
            for line, _ in u2:
                m = re.match(rb"\* (\d+) EXISTS", line)
                if m:
                    n = int(m.group(1))
            items = []
            if n:
                st, u3 = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])")
                for line, lits in u3:
                    m = re.search(rb"UID (\d+)", line)
                    f = re.search(rb"FLAGS \(([^)]*)\)", line)
                    if m and lits:
                        fl = sorted(x for x in f.group(1).split() if x != b"\\Recent")
                        items.append((int(m.group(1)), b" ".join(fl),
                                      hashlib.sha1(lits[-1]).hexdigest(), lits[-1]))
            out[name] = sorted(items)
        c.logout()
    return out


def rebase():
    global SNAP, FS
    SNAP = account(B, PWB)
    FS = fs_paths()
    assert sum(len(v) for v in SNAP.values()) == 3, SNAP
    assert b"PrivateB" in SNAP, list(SNAP)


def check_isolated(allowed_new_b=()):
    """B unchanged (but for the messages whose bodies contain one of
    allowed_new_b markers, which may be new in B), A holds no secret,
    no new path outside A's store."""
    now = account(B, PWB)
    assert set(now) == set(SNAP), ("B's mailboxes changed", sorted(SNAP), sorted(now))
    for box, items in SNAP.items():
        kept = [i[:3] for i in now[box] if not any(m in i[3] for m in allowed_new_b)]
        assert kept == [i[:3] for i in items], ("B's %r changed" % box, items, now[box])
    for box, items in account(A, PWA).items():
        for it in items:
            assert SECRET not in it[3], ("B's secret in A's mailbox %r" % box, it[3][:300])
    new = fs_paths() - FS
    bad = [p for p in new if not p.startswith(("state" + os.sep,))]
    if allowed_new_b:
        # deliveries to B add message files (Maildir) inside B's folders
        bdir = os.path.relpath(user_dir(B), D.dir) + os.sep
        bad = [p for p in bad if not (p.startswith(bdir) and
                                      re.search(r"/(new|cur|tmp|mailaccess-cache)/[^/]+$", p))]
    assert not bad, ("new paths outside A's store", sorted(bad)[:20])
    gone = FS - fs_paths()
    bgone = [p for p in gone if p.startswith(os.path.relpath(user_dir(B), D.dir))
             and not re.search(r"/(new|cur|tmp|mailaccess-cache)/[^/]+$", p)]
    assert not bgone, ("paths vanished from B's store", sorted(bgone)[:20])
    return now


# ---------------------------------------------------------------- names

BN = B.encode()
NAMES = [
    b"../" + BN, b"../" + BN + b"/INBOX", b"../" + BN + b"/PrivateB", b"..",
    b"../", b"../..", b"../../..", b".", b"./INBOX", b"INBOX/..",
    b"INBOX/../../" + BN, b"INBOX/../PrivateB", b"AOwn/../../" + BN + b"/INBOX",
    b"/etc/passwd", b"/" + BN + b"/INBOX", b"//" + BN, b"/",
    b"~" + BN, b"~" + BN + b"/INBOX", b"~" + BN + b"/PrivateB", b"~/../" + BN,
    b"~bob", b"#shared/" + BN, b"#shared/" + BN + b"/INBOX",
    b"#user/" + BN + b"/INBOX", b"#users/bob/PrivateB",
    b"Other Users/" + BN, b"Other Users/" + BN + b"/INBOX",
    b"Other Users/bob/PrivateB", b"Shared Folders/" + BN + b"/INBOX",
    BN, BN + b"/INBOX", BN + b"/PrivateB", b"PrivateB", b"..PrivateB",
    b".PrivateB", b"...", b"..." + BN, b".." + BN, b"a//b", b"a/./b",
    b"..\\" + BN, b"\\..\\" + BN, b"%2e%2e/" + BN, b"..%2f" + BN,
    # Maildir++ on-disk spellings
    b"~2e~2e/" + BN, b"~2e~2e", b"~2f" + BN, b".INBOX.PrivateB",
    b"INBOX.PrivateB", b"../" + BN + b"/.PrivateB", b"cur", b"new/../..",
    # modified UTF-7: "." "/" and ".." encoded, "&" games
    b"&AC4ALg-/" + BN, b"&AC4ALgAv-" + BN, b"&AC8-" + BN, b"&AC4-",
    b"&AC8ALgAuAC8-" + BN, b"&-../" + BN, b"..&-/" + BN, b"&Jjo-/../" + BN,
    b"&ZeVnLIqe-/../../" + BN, b"&/" + BN, b"&AC4ALg",
    # control characters, wildcards
    b"../" + BN + b"\x00", b"\x00../" + BN, b"INBOX\x00/../../" + BN,
    b"a\r\nX1 SELECT ../" + BN, b"a\nb", b"a\rb", b"a\tb", b"\x7f",
    b"%", b"*", b"../*", b"..%", b"%/%", BN + b"*",
    # long and deep
    b"a" * 5000, b"../" * 2000 + BN, b"a/" * 600 + b"a",
    b"x" * 255 + b"/" + b"../" * 10 + BN, "ü".encode() * 300,
]


def astr(name):
    """An IMAP astring for name: quoted if plain, else LITERAL+."""
    if re.match(rb"^[\x20-\x7e]*$", name) and len(name) < 1000 \
            and b'"' not in name and b"\\" not in name:
        return quote(name)
    return b"{%d+}\r\n" % len(name) + name


class Session:
    """A's IMAP session that reconnects (and logs in again) when the
    server closes it: some hostile inputs may legitimately end it."""

    def __init__(self):
        self.c = None
        self.reconnects = 0
        self.connect()

    def connect(self):
        if self.c:
            self.c.close()
        self.c = imap(A, PWA)

    def cmd(self, text):
        try:
            st, u = self.c.cmd(text)
        except (EOFError, OSError, harness.ProtocolError):
            self.reconnects += 1
            self.connect()
            return b"<closed>", []
        for line, _ in u:
            if line.startswith(b"* BYE"):
                self.reconnects += 1
                self.connect()
        return st, u

    def close(self):
        self.c.logout()


def no_bob(u, what):
    for line, lits in u:
        blob = line + b"".join(lits)
        assert SECRET not in blob, (what, blob[:300])
        if line.startswith((b"* LIST", b"* LSUB")):
            assert b"PrivateB" not in blob and BN not in blob.lower(), (what, line)


def refused(st):
    return not st.startswith(b"OK")


@test(timeout=60)
def test_namespace_has_no_other_users():
    with imap(A, PWA) as c:
        st, u = c.ok("NAMESPACE")
        ns = [l for l, _ in u if l.startswith(b"* NAMESPACE")]
        assert ns and ns[0].endswith(b"NIL NIL"), ns
        c.logout()


@test(timeout=60)
def test_list_patterns():
    refs = [b"", b"..", b"../", b"/", b"~" + BN + b"/", b"#shared/",
            b"Other Users/", b"../" + BN + b"/", b"INBOX/../../", b"%", b"*"]
    pats = [b"*", b"%", b"../*", b"../%", b"/*", b"~*", b"*/*", b"../" + BN + b"/*",
            b"~" + BN + b"/*", b"#shared/*", b"Other Users/*", b"%/%/%", b"*Private*",
            b"*bob*", b"..", b"*\x00*"]
    s = Session()
    seen_a = set()
    for r in refs:
        for p in pats:
            for verb in (b"LIST", b"LSUB"):
                st, u = s.cmd(verb + b" " + astr(r) + b" " + astr(p))
                no_bob(u, (verb, r, p, st))
                if verb == b"LIST" and st.startswith(b"OK"):
                    seen_a.update(parse_list(u))
    # the wildcard LIST did work (it shows A's own mailboxes)
    assert b"AOwn" in seen_a and b"INBOX" in seen_a, seen_a
    s.close()
    check_isolated()


@test(timeout=120)
def test_read_commands_on_hostile_names():
    s = Session()
    s.cmd(b"SELECT INBOX")
    for name in NAMES:
        a = astr(name)
        for verb in (b"SELECT ", b"EXAMINE "):
            st, u = s.cmd(verb + a)
            no_bob(u, (verb, name[:80]))
            assert refused(st), (verb, name[:80], st)
            s.cmd(b"SELECT INBOX")
        st, u = s.cmd(b"STATUS " + a + b" (MESSAGES UIDNEXT UIDVALIDITY)")
        no_bob(u, ("STATUS", name[:80]))
        assert refused(st), ("STATUS", name[:80], st, u)
        for cmd in (b'LIST "" ' + a, b'LSUB "" ' + a, b"LIST " + a + b' "*"'):
            st, u = s.cmd(cmd)
            no_bob(u, (cmd[:4], name[:80]))
        st, u = s.cmd(b"RENAME " + a + b" Stolen")
        assert refused(st), ("RENAME from", name[:80], st)
        st, u = s.cmd(b"DELETE " + a)
        assert refused(st), ("DELETE", name[:80], st)
    s.close()
    check_isolated()


@test(timeout=60)
def test_b_mailbox_operations_by_name_fail():
    """Direct spellings of B's mailboxes: B's PrivateB must survive DELETE,
    RENAME, and still hold its message; A's own INBOX is A's."""
    s = Session()
    for name in (b"PrivateB", b"../" + BN + b"/PrivateB", b"~" + BN + b"/PrivateB",
                 b"#shared/" + BN + b"/PrivateB", b"Other Users/" + BN + b"/PrivateB",
                 BN + b"/PrivateB", b"/" + BN + b"/PrivateB"):
        st, _ = s.cmd(b"DELETE " + astr(name))
        assert refused(st), name
        st, _ = s.cmd(b"RENAME " + astr(name) + b" Mine")
        assert refused(st), name
        st, _ = s.cmd(b"SELECT " + astr(name))
        assert refused(st), name
    st, u = s.cmd(b"STATUS INBOX (MESSAGES)")
    assert st.startswith(b"OK")
    s.close()
    check_isolated()


@test(timeout=150)
def test_write_commands_on_hostile_names():
    s = Session()
    created = []
    for i, name in enumerate(NAMES):
        a = astr(name)
        s.cmd(b"SELECT INBOX")
        m = msg("attack %d" % i, "appended by alice %d" % i)
        st, u = s.cmd(b"APPEND " + a + b" {%d+}\r\n" % len(m) + m)
        no_bob(u, ("APPEND", name[:80]))
        st, u = s.cmd(b"COPY 1 " + a)
        no_bob(u, ("COPY", name[:80]))
        st, u = s.cmd(b"UID MOVE 999999 " + a)
        st, u = s.cmd(b"CREATE " + a)
        no_bob(u, ("CREATE", name[:80]))
        if st.startswith(b"OK"):
            created.append(name)
            st, u = s.cmd(b"SELECT " + a)
            no_bob(u, ("SELECT created", name[:80]))
            for line, _ in u:
                mm = re.match(rb"\* (\d+) EXISTS", line)
                assert not mm or int(mm.group(1)) == 0, ("new mailbox not empty", name, line)
            s.cmd(b"SELECT INBOX")
            st, u = s.cmd(b"COPY 1 " + a)
            st, u = s.cmd(b"SUBSCRIBE " + a)
        st, u = s.cmd(b"RENAME AOwn " + a)
        if st.startswith(b"OK"):
            st2, _ = s.cmd(b"RENAME " + a + b" AOwn")
            assert st2.startswith(b"OK"), ("cannot rename back", name[:80], st2)
        st, u = s.cmd(b"SUBSCRIBE " + a)
    # whatever A could create lives in A's account and holds only A's mail
    mine = account(A, PWA)
    for box, items in mine.items():
        for it in items:
            assert SECRET not in it[3], box
    # MOVE of a real message to every name: none may reach B
    for i, name in enumerate(NAMES[:40]):
        s.cmd(b"SELECT INBOX")
        s.cmd(b"MOVE 1 " + astr(name))
    s.close()
    print("  (A could create %d of %d names, all in A's own account; %d reconnects)"
          % (len(created), len(NAMES), s.reconnects))
    if os.environ.get("MA_VERBOSE"):
        print("  created: %r" % [n[:40] for n in created])
    check_isolated()


# ----------------------------------------------------------------- LMTP

class Lmtp:
    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", D.port("lmtp")), timeout=10)
        self.f = self.sock.makefile("rb")
        self.reply()
        self.cmd("LHLO test.example")

    def reply(self):
        lines = []
        while True:
            l = self.f.readline()
            if not l:
                raise EOFError("LMTP closed")
            lines.append(l.decode(errors="replace").rstrip("\r\n"))
            if len(l) < 4 or l[3:4] != b"-":
                return lines[-1]

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send(self, rcpts, body):
        """One transaction: ([RCPT replies], [DATA replies])."""
        r = self.cmd("MAIL FROM:<sender@example.org>")
        assert r.startswith("250"), r
        rr = [self.cmd(b"RCPT TO:" + x) for x in rcpts]
        ok = sum(1 for x in rr if x.startswith("250"))
        if not ok:
            self.cmd("RSET")
            return rr, []
        r = self.cmd("DATA")
        assert r.startswith("354"), r
        self.sock.sendall(body + b".\r\n")
        return rr, [self.reply() for _ in range(ok)]

    def close(self):
        try:
            self.cmd("QUIT")
        except (OSError, EOFError):
            pass
        self.sock.close()


# (recipient, users allowed to receive it): a recipient naming only A may
# end in A or be refused, never in B; one naming B may reach B only.
LMTP_CASES = [
    (b"<" + BN + b">", {"B"}),
    (b"<bob+PrivateB@example.com>", {"B"}),
    (b"<BOB@EXAMPLE.COM>", {"B"}),
    (b'<"bob"@example.com>', {"B"}),
    (b"<alice+../bob@example.com>", {"A"}),
    (b"<alice+../../bob@example.com>", {"A"}),
    (b"<alice+../bob@example.com/INBOX@example.com>", {"A"}),
    (b"<alice+PrivateB@example.com>", {"A"}),
    (b"<alice+INBOX/../PrivateB@example.com>", {"A"}),
    (b"<alice+../" + BN + b"/PrivateB@example.com>", {"A"}),
    (b"<alice+~bob@example.com>", {"A"}),
    (b"<alice+#shared/bob/PrivateB@example.com>", {"A"}),
    (b"<alice+bob@example.com>", {"A"}),
    (b"<alice+.PrivateB@example.com>", {"A"}),
    (b"<alice+~2e~2e@example.com>", {"A"}),
    (b"<alice+%2e%2e%2fbob@example.com>", {"A"}),
    (b"<alice+&AC4ALgAv-bob@example.com>", {"A"}),
    (b"<alice++../bob@example.com>", {"A"}),
    (b'<"alice+../bob"@example.com>', {"A"}),
    (b'<"alice@example.com"@example.com>', {"A"}),
    (b'<"../bob@example.com"@example.com>', set()),
    (b"<../bob@example.com>", set()),
    (b"<../" + BN + b"/../alice@example.com>", {"A"}),
    (b"<alice@example.com/../bob@example.com>", {"A"}),
    (b"<alice@example.com,bob@example.com>", {"A"}),
    (b"<alice@example.com bob@example.com>", {"A"}),
    (b"<alice@example.com>bob@example.com", {"A"}),
    (b"<alice@example.com\tbob@example.com>", {"A"}),
    (b"<alice\\@example.com>", {"A"}),
    (b"<alice@example.com\x00bob@example.com>", {"A"}),
    (b"<alice@example.com\rbob@example.com>", {"A"}),
]


@test(timeout=120)
def test_lmtp_recipients():
    global SNAP, FS
    if not HAVE_LMTP:
        raise harness.Skip("lmtp.so not built")
    try:
        _lmtp_recipients()
    finally:
        # new baseline: B's legit deliveries are now part of B's mail
        SNAP = account(B, PWB)
        FS = fs_paths()


def _lmtp_recipients():
    l = Lmtp()
    markers = {}
    replies = {}
    for i, (rcpt, allowed) in enumerate(LMTP_CASES):
        mark = b"LMTPMARK-%03d" % i
        body = b"From: x@example.org\r\nSubject: lmtp %d\r\n\r\n%s\r\n" % (i, mark)
        try:
            rr, dr = l.send([rcpt], body)
        except (EOFError, OSError):
            l.sock.close()
            l = Lmtp()
            rr, dr = ["<closed>"], []
        markers[mark] = (rcpt, allowed)
        replies[mark] = (rr, dr)
    # one transaction for A and B: A's copy must not name B
    both = b"LMTPBOTH"
    rr, dr = l.send([b"<alice@example.com>", b"<bob@example.com>"],
                    b"From: x@example.org\r\nSubject: both\r\n\r\n" + both + b"\r\n")
    assert all(x.startswith("250") for x in rr + dr), (rr, dr)
    l.close()
    where = {}
    for who, (u, pw) in (("A", (A, PWA)), ("B", (B, PWB))):
        for box, items in account(u, pw).items():
            for it in items:
                for mark in list(markers) + [both]:
                    if mark in it[3]:
                        where.setdefault(mark, []).append((who, box, it[3]))
    problems = []
    for mark, (rcpt, allowed) in markers.items():
        got = {w for w, _, _ in where.get(mark, [])}
        if not got <= allowed or len(where.get(mark, [])) > 1:
            problems.append((rcpt, sorted(allowed), [(w, b) for w, b, _ in where.get(mark, [])],
                             replies[mark]))
    assert not problems, problems
    got = sorted(w for w, _, _ in where.get(both, []))
    assert got == ["A", "B"], got
    a_copy = [d for w, _, d in where[both] if w == "A"][0]
    assert BN not in a_copy.lower(), ("A's copy names B", a_copy[:400])
    b_copy = [d for w, _, d in where[both] if w == "B"][0]
    assert A.encode() not in b_copy.lower(), ("B's copy names A", b_copy[:400])
    delivered_b = [m for m in list(markers) + [both]
                   if any(w == "B" for w, _, _ in where.get(m, []))]
    print("  (%d recipients; %d reached B, all addressed to B)"
          % (len(markers), len(delivered_b)))
    check_isolated(allowed_new_b=delivered_b)


# ----------------------------------------------------------------- SASL

def imap_authenticated_as(c):
    """Which user the IMAP session c is: 'A', 'B' (B's secret in INBOX)
    or None (not logged in)."""
    st, u = c.cmd("EXAMINE INBOX")
    if not st.startswith(b"OK"):
        return None
    st, u = c.cmd("FETCH 1:* BODY.PEEK[]")
    data = b"".join(b"".join(l) for _, l in u)
    c.cmd("CLOSE")
    return "B" if SECRET in data else "A"


@test(timeout=90)
def test_imap_sasl_authzid_and_master_syntax():
    bad_plain = [("%s\0%s\0%s" % (B, A, PWA)), ("%s\0%s\0%s" % (B, A, PWB)),
                 ("%s\0%s\0%s" % (A, B, PWA)), ("%s*%s\0%s\0%s" % (A, B, A, PWA)),
                 ("\0%s*%s\0%s" % (A, B, PWA)), ("\0%s*%s\0%s" % (B, A, PWA)),
                 ("\0%s\0%s" % (B, PWA)), ("%s\0%s\0%s" % (B.upper(), A, PWA))]
    for m in bad_plain:
        for form in ("ir", "cont"):
            with imap() as c:
                if form == "ir":
                    st, _ = c.cmd("AUTHENTICATE PLAIN " + b64(m))
                else:
                    c.n += 1
                    tag = b"c%d" % c.n
                    c.send(tag + b" AUTHENTICATE PLAIN\r\n")
                    line, _ = c.read_response()
                    assert line.startswith(b"+"), line
                    c.send(b64(m) + "\r\n")
                    while True:
                        line, _ = c.read_response()
                        if line.startswith(tag + b" "):
                            st = line[len(tag) + 1:]
                            break
                assert not st.startswith(b"OK"), (m.replace("\0", "^@"), form, st)
                assert imap_authenticated_as(c) is None
                c.logout()
    for user, pw in (("%s*%s" % (A, B), PWA), ("%s*%s" % (B, A), PWA),
                     ("%s%%%s" % (A, B), PWA), (B, PWA), (B.upper(), PWA),
                     ("%s\\%s" % (A, B), PWA), ("%s,%s" % (A, B), PWA)):
        with imap() as c:
            st, _ = c.cmd('LOGIN "%s" "%s"' % (user.replace("\\", "\\\\"), pw))
            assert not st.startswith(b"OK"), (user, st)
            assert imap_authenticated_as(c) is None
            c.logout()
    # AUTHENTICATE LOGIN with the master syntax
    with imap() as c:
        c.n += 1
        tag = b"c%d" % c.n
        c.send(tag + b" AUTHENTICATE LOGIN\r\n")
        line, _ = c.read_response()
        if line.startswith(b"+"):
            c.send(b64("%s*%s" % (A, B)) + "\r\n")
            line, _ = c.read_response()
            if line.startswith(b"+"):
                c.send(b64(PWA) + "\r\n")
                line, _ = c.read_response()
        assert line.startswith(tag + b" ") and not line[len(tag) + 1:].startswith(b"OK"), line
        c.logout()
    # positive controls: authzid equal to authcid works; A is A
    with imap() as c:
        c.ok("AUTHENTICATE PLAIN " + b64("%s\0%s\0%s" % (A, A, PWA)))
        assert imap_authenticated_as(c) == "A"
        # no second login in authenticated state
        st, _ = c.cmd('LOGIN "%s" "%s"' % (B, PWB))
        assert not st.startswith(b"OK"), st
        st, _ = c.cmd("AUTHENTICATE PLAIN " + b64("\0%s\0%s" % (B, PWB)))
        assert not st.startswith(b"OK"), st
        assert imap_authenticated_as(c) == "A"
        c.logout()
    check_isolated()


def pop3():
    return D.connect("pop3")


def pop3_whose(c):
    """After +OK login: 'A' or 'B' by the mailbox contents."""
    r = c.ok("STAT")
    n = int(r.split()[1])
    data = b""
    for i in range(1, n + 1):
        data += c.multi("RETR %d" % i)[1]
    return "B" if SECRET in data else "A"


@test(timeout=90)
def test_pop3_auth_and_user_pass_sequences():
    for m in (("%s\0%s\0%s" % (B, A, PWA)), ("%s\0%s\0%s" % (A, B, PWA)),
              ("\0%s*%s\0%s" % (A, B, PWA)), ("\0%s\0%s" % (B, PWA))):
        with pop3() as c:
            r = c.cmd("AUTH PLAIN " + b64(m))
            assert r.startswith("-ERR"), (m.replace("\0", "^@"), r)
            assert c.cmd("STAT").startswith("-ERR")
            # the continuation form
            r = c.cmd("AUTH PLAIN")
            if r.startswith("+"):
                r = c.cmd(b64(m))
            assert r.startswith("-ERR"), (m.replace("\0", "^@"), r)
            assert c.cmd("STAT").startswith("-ERR")
            c.quit()
    seqs = [
        # (commands, expected final state: None = not logged in, "A")
        ([("USER", B), ("PASS", "wrong")], None),
        ([("USER", B), ("PASS", PWA)], None),
        ([("USER", B), ("PASS", "wrong"), ("PASS", PWA)], None),
        ([("USER", B), ("PASS", "wrong"), ("USER", A), ("PASS", PWA)], "A"),
        ([("USER", A), ("PASS", "wrong"), ("PASS", PWA)], "A?"),
        ([("USER", A), ("USER", B), ("PASS", PWA)], None),
        ([("USER", B), ("USER", A), ("PASS", PWA)], "A?"),
        ([("USER", "%s*%s" % (A, B)), ("PASS", PWA)], None),
        ([("USER", "%s*%s" % (B, A)), ("PASS", PWA)], None),
        ([("USER", A + " " + B), ("PASS", PWA)], None),
        ([("USER", B.upper()), ("PASS", PWA)], None),
        ([("USER", A), ("PASS", PWA), ("USER", B), ("PASS", PWB)], "A"),
        ([("USER", A), ("PASS", PWA), ("AUTH", "PLAIN " + b64("\0%s\0%s" % (B, PWB)))], "A"),
        ([("APOP", "%s 0123456789abcdef0123456789abcdef" % B)], None),
    ]
    for cmds, want in seqs:
        with pop3() as c:
            logged = False
            for verb, arg in cmds:
                r = c.cmd("%s %s" % (verb, arg))
                if r.startswith("+OK") and verb in ("PASS", "AUTH", "APOP") and not logged:
                    logged = True
            if want is None:
                assert not logged, cmds
                assert c.cmd("STAT").startswith("-ERR"), cmds
            else:
                if want == "A":
                    assert logged, cmds
                if logged:
                    assert pop3_whose(c) == "A", cmds
            c.quit()
    check_isolated()


if __name__ == "__main__":
    harness.main(setup=setup)
