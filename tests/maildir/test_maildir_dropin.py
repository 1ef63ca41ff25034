#!/usr/bin/env python3
"""test_maildir_dropin.py - mail another program writes into a Maildir.

mailaccessd with `store { backend = maildir }`; the test plays an MTA or
MDA (Postfix local, procmail): it writes a file into the user's
Maildir tmp/, then renames it into new/ (or cur/ with flags), outside the
server. Checked:

- an IMAP client in IDLE gets `* n EXISTS` within one second;
- the message is then FETCHable (bytes as written, LF turned into CRLF;
  CRLF files unchanged), has a UID above the old UIDNEXT, and POP3 lists
  and RETRs it with a UIDL that stays the same in the next session;
- several files dropped at once all arrive; a file dropped while nobody is
  logged in is there at the next login; a file put into cur/ with `:2,FS`
  shows \\Flagged \\Seen; a file removed by another program disappears.

Skips when store-maildir.so or imap.so is not built.
Run: python3 tests/maildir/test_maildir_dropin.py [test ...]
"""

import os
import re
import socket
import sys
import time

# Everything in this file is about the Maildir backend, whatever run it is.
os.environ["MA_TEST_STORE"] = "maildir"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "protocol"))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

USER = "drop@example.com"
PW = "Drop pw 5"
WAKE_LIMIT = 1.0  # seconds from rename() to `* n EXISTS` in IDLE

D = None
_seq = [0]


def setup():
    global D
    if not harness.have_store_plugin("maildir"):
        raise harness.Skip("store-maildir.so not built (%s)"
                           % harness.store_plugin_path("maildir"))
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap",
                                       "imap.so")):
        raise harness.Skip("imap.so not built")
    D = harness.Daemon("dropin", store="maildir",
                       listeners=[dict(name="imap", protocol="imap"),
                                  dict(name="pop3")])
    D.add_user(USER, PW)
    D.start()
    # The first login creates the Maildir (docs/maildir.md).
    with imap() as c:
        c.select()
        c.logout()
    for sub in ("cur", "new", "tmp"):
        assert os.path.isdir(os.path.join(maildir(), sub)), sub


def maildir():
    return os.path.join(D.store_path, USER)


def imap():
    c = D.imap("imap")
    c.login(USER, PW)
    return c


def unique_name():
    """time.MusecPpidQn.host: the Maildir spec's unique name."""
    _seq[0] += 1
    t = time.time()
    return "%d.M%dP%dQ%d.%s" % (int(t), int((t % 1) * 1e6), os.getpid(),
                                _seq[0], socket.gethostname().replace("/", "_"))


def drop(data, into="new", info=""):
    """Write data the way an MDA does: tmp/NAME, fsync, rename to
    new/NAME (or cur/NAME:2,FLAGS). Returns the final path."""
    name = unique_name()
    tmp = os.path.join(maildir(), "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    final = os.path.join(maildir(), into, name + info)
    os.rename(tmp, final)
    return final


def mk(subject, body=b"dropped body\n"):
    return (b"From: mta@example.org\nTo: " + USER.encode() + b"\n"
            b"Subject: " + subject.encode() + b"\n"
            b"Message-ID: <" + subject.replace(" ", ".").encode()
            + b"@example.org>\n\n" + body)


def fetch_one(c, seq):
    """(uid, flags set, body bytes) of message seq."""
    r = c.fetch(str(seq), "(UID FLAGS BODY.PEEK[])")
    line, lits = r[seq]
    uid = int(re.search(rb"UID (\d+)", line).group(1))
    flags = set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1)
                .decode().split()) - {"\\Recent"}
    assert len(lits) == 1, line
    return uid, flags, lits[0]


def pop3_all():
    """[(uidl, RETR bytes)] of a fresh POP3 session."""
    c = D.connect("pop3")
    try:
        c.login(USER, PW)
        out = []
        for l in c.lines("UIDL"):
            n, u = l.split()
            _, body = c.multi("RETR " + n)
            out.append((u, body))
        c.quit()
    finally:
        c.close()
    return out


def idle_drop(datas, into="new", info=""):
    """Select INBOX, IDLE, drop each of datas, wait for the EXISTS of the
    last one. Returns (client, old info, seconds it took)."""
    c = imap()
    info0 = c.select()
    c.idle_start()
    t0 = time.monotonic()
    for d in datas:
        drop(d, into, info)
    want = info0["exists"] + len(datas)
    line, seen = c.idle_wait(rb"^\* %d EXISTS$" % want, WAKE_LIMIT + 2)
    took = time.monotonic() - t0
    assert line is not None, \
        "no '* %d EXISTS' within %.1fs of the rename; saw %r" % (
            want, WAKE_LIMIT + 2, seen)
    assert took <= WAKE_LIMIT, "EXISTS took %.2fs (limit %.1fs)" % (
        took, WAKE_LIMIT)
    c.idle_done()
    return c, info0, took


# -------------------------------------------------------------- tests

@test(timeout=30)
def test_new_file_wakes_idle():
    msg = mk("dropped into new")
    c, info0, took = idle_drop([msg])
    try:
        n = info0["exists"] + 1
        uid, flags, body = fetch_one(c, n)
        assert body == crlf(msg), body[:200]
        assert uid >= info0.get("uidnext", 1), (uid, info0)
        assert "\\Seen" not in flags, flags
        print("  EXISTS %.3fs after rename(), UID %d" % (took, uid))
        c.logout()
    finally:
        c.close()
    pop = pop3_all()
    assert pop and pop[-1][1] == crlf(msg), pop[-1:]
    assert pop3_all()[-1][0] == pop[-1][0], "UIDL changed between sessions"


@test(timeout=30)
def test_several_files_at_once():
    msgs = [mk("burst %d" % i, b"burst body %d\n" % i) for i in range(5)]
    c, info0, _ = idle_drop(msgs)
    try:
        bodies = set()
        uids = []
        for i in range(5):
            uid, _, body = fetch_one(c, info0["exists"] + 1 + i)
            bodies.add(body)
            uids.append(uid)
        assert bodies == set(crlf(m) for m in msgs)
        assert len(set(uids)) == 5 and min(uids) >= info0.get("uidnext", 1)
        c.logout()
    finally:
        c.close()
    pop = pop3_all()
    assert set(b for _, b in pop[-5:]) == set(crlf(m) for m in msgs)
    assert len(set(u for u, _ in pop)) == len(pop), "duplicate UIDLs"


@test(timeout=30)
def test_crlf_file_served_unchanged():
    """An MTA that writes CRLF: served as is, no CR doubled."""
    msg = crlf(mk("crlf on disk", b"line one\nline two\n"))
    c, info0, _ = idle_drop([msg])
    try:
        _, _, body = fetch_one(c, info0["exists"] + 1)
        assert body == msg, body
        c.logout()
    finally:
        c.close()
    assert pop3_all()[-1][1] == msg


@test(timeout=30)
def test_dropped_while_logged_out():
    before = len(pop3_all())
    msg = mk("while nobody looked")
    drop(msg)
    pop = pop3_all()
    assert len(pop) == before + 1 and pop[-1][1] == crlf(msg), len(pop)
    with imap() as c:
        info = c.select()
        assert info["exists"] == before + 1
        assert fetch_one(c, info["exists"])[2] == crlf(msg)
        c.logout()


@test(timeout=30)
def test_cur_file_with_flags():
    """A file renamed straight into cur/ with an info suffix (what a
    Maildir MUA or a migration does) keeps those flags."""
    msg = mk("into cur flagged")
    with imap() as c:
        info0 = c.select()
        drop(msg, into="cur", info=":2,FS")
        deadline = time.monotonic() + 3
        while c.exists < info0["exists"] + 1 and time.monotonic() < deadline:
            c.ok("NOOP")
            if c.exists < info0["exists"] + 1:
                time.sleep(0.1)
        assert c.exists == info0["exists"] + 1, (c.exists, info0)
        _, flags, body = fetch_one(c, c.exists)
        assert body == crlf(msg)
        assert flags == {"\\Flagged", "\\Seen"}, flags
        c.logout()


@test(timeout=30)
def test_file_removed_outside():
    """Another program deletes a message file: the server reports it gone
    (EXPUNGE to a selected session, absent at the next login) and keeps
    serving the rest."""
    msg = mk("to be removed outside")
    path = drop(msg)
    with imap() as c:
        info0 = c.select()
        n = info0["exists"]
        uid, _, body = fetch_one(c, n)
        assert body == crlf(msg)
        # the server may have moved it new/ -> cur/ (and added :2,)
        base = os.path.basename(path)
        found = [os.path.join(maildir(), d, f) for d in ("new", "cur")
                 for f in os.listdir(os.path.join(maildir(), d))
                 if f.split(":")[0] == base]
        assert len(found) == 1, found
        os.unlink(found[0])
        deadline = time.monotonic() + 3
        while c.exists == n and time.monotonic() < deadline:
            c.ok("NOOP")
            if c.exists == n:
                time.sleep(0.1)
        assert c.exists == n - 1, "no EXPUNGE after the file went: %d" % c.exists
        st, u = c.ok("UID FETCH %d (FLAGS)" % uid)
        assert not any(b"FETCH" in l for l, _ in u), u
        c.logout()
    assert all(b != crlf(msg) for _, b in pop3_all())


if __name__ == "__main__":
    harness.main(setup=setup)
