#!/usr/bin/env python3
"""test_cross_protocol.py - one mailbox, two protocols (DESIGN.md).

A real mailaccessd serves POP3 and IMAP over the same LMDB store. These
tests check what one protocol (or `mailaccessctl deliver`, another process)
does is seen by the other:

- a message delivered with `mailaccessctl deliver`, or APPENDed over IMAP,
  is in the next POP3 session, byte-identical;
- POP3 DELE + QUIT reaches an IMAP client in IDLE as `* n EXPUNGE` within
  one second; an IMAP EXPUNGE is gone from the next POP3 session;
- a STORE from one IMAP session reaches another session in IDLE as an
  untagged FETCH within one second;
- `mailaccessctl deliver` wakes an IMAP IDLE (`* n EXISTS`) within one
  second, through the cross-process change bus (state_dir/bus);
- the POP3 UIDL of a message is the same whichever protocol created it and
  in every session: the configured format (dovecot, %08Xu%08Xv) of the
  IMAP UID and UIDVALIDITY.

The IMAP side is a small raw client (tagged commands, literals, IDLE) so
that the exact untagged responses can be asserted; imaplib cannot IDLE
before Python 3.14.

Run: python3 tests/protocol/test_cross_protocol.py [test_name ...]
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

# The harness links the plugins it knows into plugin_dir; IMAP is ours to add.
harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

D = None
PW = "Cross pw 3"
USERS = ["deliv@example.com", "append@example.com", "dele@example.com",
         "store@example.com", "ctl@example.com", "uidl@example.com",
         "expunge@example.com", "flags@example.com", "wake@example.com",
         "folder@example.com", "multi@example.com"]
WAKE_LIMIT = 1.0  # seconds: a change must reach an IDLE client this fast


def mk(subject, body=b"body line\n"):
    return (b"From: a@example.org\nTo: b@example.com\nSubject: "
            + subject.encode() + b"\nMessage-ID: <" + subject.encode()
            + b"@example.org>\n\n" + body)


def setup():
    global D
    D = harness.Daemon("cross", listeners=[
        dict(name="imap", protocol="imap", tls="starttls"),
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="pop3", tls="starttls"),
    ])
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap",
                                       "imap.so")):
        raise harness.Skip("imap.so not built")
    for u in USERS:
        D.add_user(u, PW)
    D.start()


# ------------------------------------------------------------ IMAP client

class Imap(harness.ImapClient):
    """The harness's raw IMAP client on this file's daemon (implicit TLS),
    plus what these tests ask of it: the UID list and the message count."""

    def __init__(self, listener="imaps", timeout=10):
        super().__init__(D.port(listener), tls=True,
                         ctx=harness.client_context(D.certs),
                         host=D.host(listener), timeout=timeout)

    def login(self, user, pw=PW):
        return super().login(user, pw)

    def uids(self):
        """UID of each message, in sequence order."""
        st, u = self.ok("FETCH 1:* (UID)") if self.count() else (b"", [])
        out = {}
        for line, _ in u:
            m = re.match(rb"\* (\d+) FETCH \(.*UID (\d+)", line)
            if m:
                out[int(m.group(1))] = int(m.group(2))
        return [out[k] for k in sorted(out)]

    def count(self):
        """Messages in the selected mailbox as this session knows them
        (after a NOOP picks up pending changes)."""
        self.ok("NOOP")
        return self.exists


def pop3(user):
    c = D.connect("pop3")
    c.stls()
    c.login(user, PW)
    return c


def pop3_uidls(user):
    c = pop3(user)
    try:
        out = {}
        for l in c.lines("UIDL"):
            n, u = l.split()
            out[int(n)] = u
        return out
    finally:
        c.quit()


def pop3_messages(user):
    c = pop3(user)
    try:
        n = int(c.ok("STAT").split()[1])
        return [c.multi("RETR %d" % i)[1] for i in range(1, n + 1)]
    finally:
        c.quit()


def dovecot_uidl(uid, uidvalidity):
    """harness's pop3 uidl_format = dovecot: %08Xu%08Xv (lower-case hex)."""
    return "%08x%08x" % (uid, uidvalidity)


def ctl_deliver_async(user):
    """mailaccessctl deliver in another process (message on its stdin);
    returns the Popen."""
    return subprocess.Popen([harness.ctl_path(), "-c", D.conf_path, "deliver",
                          user], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=D.env)


# ------------------------------------------------------------------ tests

@test(timeout=30)
def test_deliver_shows_in_pop3_and_imap():
    user = "deliv@example.com"
    msgs = [mk("one"), mk("two", b".\n..\n.dot\nend\n")]
    for m in msgs:
        D.deliver(user, m)
    assert pop3_messages(user) == [crlf(m) for m in msgs]
    c = Imap()
    try:
        c.login(user)
        info = c.select()
        assert info["exists"] == 2, info
        st, u = c.ok("FETCH 1:2 (BODY.PEEK[])")
        bodies = [lits[0] for line, lits in u if b"FETCH" in line and lits]
        assert bodies == [crlf(m) for m in msgs], u
    finally:
        c.logout()


@test(timeout=30)
def test_imap_append_shows_in_next_pop3_session():
    user = "append@example.com"
    D.deliver(user, mk("delivered first"))
    msg = crlf(mk("appended", b"appended over IMAP\n\xc3\xa4\n"))
    c = Imap()
    try:
        c.login(user)
        st, _ = c.ok('APPEND INBOX (\\Seen) "01-Jan-2024 10:00:00 +0000"',
                     literal=msg)
        info = c.select()
        assert info["exists"] == 2, info
        uid = c.uids()[-1]
        m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", st)
        if m:  # UIDPLUS (RFC 4315): the UID it reports is the real one
            assert int(m.group(1)) == info["uidvalidity"], st
            assert int(m.group(2)) == uid, (st, uid)
    finally:
        c.logout()
    got = pop3_messages(user)
    assert len(got) == 2 and got[1] == msg, got
    assert pop3_uidls(user)[2] == dovecot_uidl(uid, info["uidvalidity"])


@test(timeout=30)
def test_pop3_dele_wakes_imap_idle():
    user = "dele@example.com"
    for i in range(3):
        D.deliver(user, mk("dele %d" % i))
    c = Imap()
    try:
        c.login(user)
        info = c.select()
        assert info["exists"] == 3
        c.idle_start()
        p = pop3(user)
        p.ok("DELE 2")
        p.quit()
        t0 = time.monotonic()
        line, seen = c.idle_wait(rb"^\* 2 EXPUNGE$", WAKE_LIMIT)
        assert line, "no '* 2 EXPUNGE' within %ss after POP3 QUIT; saw %r" % (
            WAKE_LIMIT, seen)
        dt = time.monotonic() - t0
        c.idle_done()
        assert c.count() == 2
        assert dt <= WAKE_LIMIT
    finally:
        c.logout()
    assert len(pop3_messages(user)) == 2


@test(timeout=30)
def test_pop3_several_dele_reach_idle_and_noop_sessions():
    """Two POP3 deletions: the IDLE session gets both EXPUNGEs numbered as
    RFC 3501 7.4.1 wants (each renumbers the rest); a session not in IDLE
    gets them at its next NOOP, and its view then matches POP3's."""
    user = "multi@example.com"
    for i in range(5):
        D.deliver(user, mk("multi %d" % i))
    a, b = Imap(), Imap()
    try:
        a.login(user)
        b.login(user)
        assert a.select()["exists"] == 5
        assert b.select()["exists"] == 5
        uids = b.uids()
        a.idle_start()
        p = pop3(user)
        p.ok("DELE 2")
        p.ok("DELE 4")
        p.quit()
        got = []
        deadline = time.monotonic() + WAKE_LIMIT
        while len(got) < 2 and time.monotonic() < deadline:
            line, seen = a.idle_wait(rb"^\* \d+ EXPUNGE$",
                                     max(0.01, deadline - time.monotonic()))
            if line:
                got.append(line)
        assert got in ([b"* 4 EXPUNGE", b"* 2 EXPUNGE"],
                       [b"* 2 EXPUNGE", b"* 3 EXPUNGE"]), got
        a.idle_done()
        st, u = b.ok("NOOP")
        exp = [l for l, _ in u if l.endswith(b" EXPUNGE")]
        assert exp in ([b"* 4 EXPUNGE", b"* 2 EXPUNGE"],
                       [b"* 2 EXPUNGE", b"* 3 EXPUNGE"]), u
        assert b.uids() == [uids[0], uids[2], uids[4]]
    finally:
        a.logout()
        b.logout()
    assert pop3_messages(user) == [crlf(mk("multi %d" % i)) for i in (0, 2, 4)]


@test(timeout=30)
def test_store_in_one_imap_session_wakes_other_idle():
    user = "store@example.com"
    D.deliver(user, mk("to flag"))
    D.deliver(user, mk("second"))
    a, b = Imap(), Imap()
    try:
        a.login(user)
        b.login(user)
        a.select()
        b.select()
        a.idle_start()
        t0 = time.monotonic()
        b.ok("STORE 2 +FLAGS (\\Flagged)")
        line, seen = a.idle_wait(rb"^\* 2 FETCH \(.*FLAGS \([^)]*\\Flagged",
                                 WAKE_LIMIT)
        assert line, "no '* 2 FETCH (FLAGS (\\Flagged))' in IDLE within " \
            "%ss; saw %r" % (WAKE_LIMIT, seen)
        assert time.monotonic() - t0 <= WAKE_LIMIT + 0.2
        a.idle_done()
        # and the other way: a keyword removed by a, seen by b in IDLE
        b.idle_start()
        a.ok("STORE 2 -FLAGS (\\Flagged)")
        line, seen = b.idle_wait(rb"^\* 2 FETCH \(.*FLAGS \(", WAKE_LIMIT)
        assert line and b"\\Flagged" not in line, seen
        b.idle_done()
    finally:
        a.logout()
        b.logout()


@test(timeout=60)
def test_ctl_deliver_wakes_imap_idle():
    user = "ctl@example.com"
    D.deliver(user, mk("already there"))
    c = Imap()
    try:
        c.login(user)
        assert c.select()["exists"] == 1
        c.idle_start()
        p = ctl_deliver_async(user)
        p.stdin.write(mk("from another process"))
        p.stdin.close()
        # mailaccessctl may be slow to start under ASan: time from its exit.
        rc = p.wait(60)
        t0 = time.monotonic()
        err = p.stderr.read().decode(errors="replace")
        p.stdout.close()
        p.stderr.close()
        assert rc == 0, "deliver exit %d: %s" % (rc, err)
        line, seen = c.idle_wait(rb"^\* 2 EXISTS$", WAKE_LIMIT)
        assert line, "no '* 2 EXISTS' within %ss of mailaccessctl deliver; " \
            "saw %r" % (WAKE_LIMIT, seen)
        assert time.monotonic() - t0 <= WAKE_LIMIT + 0.2
        c.idle_done()
        st, u = c.ok("FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert any(b"from another process" in l for _, lits in u for l in lits), u
    finally:
        c.logout()


@test(timeout=60)
def test_uidl_same_whichever_protocol_created_it():
    user = "uidl@example.com"
    D.deliver(user, mk("by ctl 1"))
    c = Imap()
    try:
        c.login(user)
        c.ok("APPEND INBOX", literal=crlf(mk("by imap")))
        D.deliver(user, mk("by ctl 2"))
        info = c.select()
        assert info["exists"] == 3, info
        uids = c.uids()
    finally:
        c.logout()
    want = {i + 1: dovecot_uidl(u, info["uidvalidity"])
            for i, u in enumerate(uids)}
    first = pop3_uidls(user)
    assert first == want, (first, want)
    assert len(set(first.values())) == 3
    # the same in a later session, and after another message goes away
    assert pop3_uidls(user) == want
    c = Imap()
    try:
        c.login(user)
        c.select()
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
    finally:
        c.logout()
    after = pop3_uidls(user)
    assert after == {1: want[2], 2: want[3]}, (after, want)
    # a message that was in a POP3 snapshot keeps its UIDL via IMAP view too
    c = Imap()
    try:
        c.login(user)
        info2 = c.select()
        assert info2["uidvalidity"] == info["uidvalidity"]
        assert c.uids() == uids[1:]
    finally:
        c.logout()


@test(timeout=30)
def test_imap_expunge_gone_from_next_pop3_session():
    user = "expunge@example.com"
    for i in range(3):
        D.deliver(user, mk("x%d" % i))
    c = Imap()
    try:
        c.login(user)
        c.select()
        c.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        st, u = c.ok("EXPUNGE")
        exp = [l for l, _ in u if re.match(rb"\* \d+ EXPUNGE", l)]
        # RFC 3501 7.4.1: each EXPUNGE renumbers, so 1,3 are "3" then "1"
        # or "1" then "2".
        assert exp in ([b"* 3 EXPUNGE", b"* 1 EXPUNGE"],
                       [b"* 1 EXPUNGE", b"* 2 EXPUNGE"]), exp
    finally:
        c.logout()
    got = pop3_messages(user)
    assert got == [crlf(mk("x1"))], got


@test(timeout=30)
def test_pop3_snapshot_and_imap_flags_are_independent():
    """An IMAP session's flags survive a POP3 session that only reads."""
    user = "flags@example.com"
    D.deliver(user, mk("keep flags"))
    c = Imap()
    try:
        c.login(user)
        c.select()
        c.ok("STORE 1 +FLAGS (\\Answered $Label1)")
    finally:
        c.logout()
    assert pop3_messages(user) == [crlf(mk("keep flags"))]
    c = Imap()
    try:
        c.login(user)
        c.select()
        st, u = c.ok("FETCH 1 (FLAGS)")
        flags = b" ".join(l for l, _ in u)
        assert b"\\Answered" in flags and b"$Label1" in flags, flags
    finally:
        c.logout()


@test(timeout=30)
def test_imap_append_wakes_other_imap_idle():
    user = "wake@example.com"
    D.deliver(user, mk("first"))
    a, b = Imap(), Imap()
    try:
        a.login(user)
        b.login(user)
        assert a.select()["exists"] == 1
        a.idle_start()
        t0 = time.monotonic()
        b.ok("APPEND INBOX (\\Flagged)", literal=crlf(mk("appended by b")))
        line, seen = a.idle_wait(rb"^\* 2 EXISTS$", WAKE_LIMIT)
        assert line, "no '* 2 EXISTS' in IDLE within %ss of APPEND; saw %r" % (
            WAKE_LIMIT, seen)
        assert time.monotonic() - t0 <= WAKE_LIMIT + 0.2
        a.idle_done()
        st, u = a.ok("FETCH 2 (FLAGS)")
        assert any(b"\\Flagged" in l for l, _ in u), u
    finally:
        a.logout()
        b.logout()


@test(timeout=30)
def test_pop3_sees_only_inbox():
    """Mail in another mailbox (APPENDed or moved there over IMAP) is not
    in the POP3 maildrop, which is the INBOX (RFC 1939 has no folders)."""
    user = "folder@example.com"
    D.deliver(user, mk("stays"))
    D.deliver(user, mk("moves away"))
    c = Imap()
    try:
        c.login(user)
        c.ok("CREATE Kept")
        c.ok("APPEND Kept", literal=crlf(mk("archived")))
        c.select()
        c.ok("COPY 2 Kept")
        c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        st, u = c.ok("STATUS Kept (MESSAGES)")
        assert any(b"MESSAGES 2" in l for l, _ in u), u
    finally:
        c.logout()
    assert pop3_messages(user) == [crlf(mk("stays"))]


if __name__ == "__main__":
    harness.main(setup=setup)
