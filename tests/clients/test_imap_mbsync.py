#!/usr/bin/env python3
"""test_imap_mbsync.py - isync's mbsync syncing a Maildir with mailaccessd.

mbsync (Debian's isync) is a strict two-way synchroniser: it keeps its own
UID map (SyncState) and relies on UIDVALIDITY, UIDNEXT, UID FETCH of
flags, APPEND (with APPENDUID when UIDPLUS is there), STORE and EXPUNGE
being exact. Over implicit TLS, checking the server certificate against
the test CA, the test runs four syncs:

 1. pull: 4 messages (one \\Flagged on the server) and a second mailbox
    arrive in the local Maildir with their content and flags;
 2. push: local flag changes (S, F, R in the file name), a deleted file and
    a new file are pushed: STORE, STORE \\Deleted + EXPUNGE, APPEND. The
    server is then checked with imaplib and the POP3 view (STAT, UIDL
    = dovecot format of the IMAP UID/UIDVALIDITY, RETR = IMAP BODY[]);
 3. pull changes: a flag set, a message expunged and one delivered on the
    server show up locally;
 4. a sync with nothing to do changes nothing on either side.

mbsync keeps LF line ends in a Maildir, so contents are compared with LF.
Needs mbsync (scripts/deps-imap-clients.sh installs isync); SKIPs without.
Run: python3 tests/clients/test_imap_mbsync.py
"""

import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402
import maildir_sync  # noqa: E402
from maildir_sync import lf, set_local_flags  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

D = None
W = None        # mbsync's home: rc, Maildir
USER = "sync@example.com"
PW = "sync pw 9"


def mk(n, body=None):
    return crlf(b"From: sender%d@example.org\nTo: sync@example.com\n"
                b"Subject: msg %d\nMessage-ID: <m%d@example.org>\n\n" % (n, n, n)
                + (body or b"body of message %d\n" % n))


MSG = {n: mk(n) for n in range(1, 8)}
MSG[2] = mk(2, b".\n..\nline with trailing space \n\ttab\n")


def setup():
    global D, W
    if not shutil.which("mbsync"):
        raise harness.Skip("mbsync not installed (bash scripts/deps-imap-clients.sh)")
    D = harness.Daemon("mbsync", listeners=[
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="pop3s", tls="implicit"),
    ])
    D.add_user(USER, PW)
    D.start()
    W = os.path.join(D.dir, "mbsync")
    os.makedirs(os.path.join(W, "mail"))
    with open(os.path.join(W, "mbsyncrc"), "w") as f:
        f.write("""IMAPAccount srv
Host localhost
Port %d
User %s
Pass "%s"
SSLType IMAPS
CertificateFile %s
Timeout 20

IMAPStore far
Account srv

MaildirStore near
Path %s/mail/
Inbox %s/mail/INBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Both
Remove None
Expunge Both
Sync All
SyncState *
CopyArrivalDate yes
""" % (D.port("imaps"), USER, PW, D.certs["ca"], W, W))
    os.chmod(os.path.join(W, "mbsyncrc"), 0o600)


def mbsync():
    env = dict(os.environ, HOME=W)
    r = subprocess.run(["mbsync", "-V", "-c", os.path.join(W, "mbsyncrc"), "-a"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=90)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "mbsync exit %d:\n%s" % (r.returncode, out)
    return out


def strip_tuid(b):
    """mbsync adds an X-TUID header to each message it copies (to find it
    again if the run is interrupted); it is not part of the message."""
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", b)


def local(folder="INBOX"):
    return maildir_sync.local(W, folder)


def imap():
    return maildir_sync.imap(D, USER, PW)


def server(c, mailbox="INBOX"):
    return maildir_sync.server(c, mailbox)


@test(timeout=120)
def test_1_pull_to_maildir():
    for n in (1, 2, 3, 4):
        D.deliver(USER, MSG[n])
    c = imap()
    try:
        assert c.select("INBOX")[0] == "OK"
        c.store("4", "+FLAGS", "(\\Flagged)")
        assert c.create("Lists")[0] == "OK"
        assert c.append("Lists", None, None, MSG[7])[0] == "OK"
    finally:
        c.logout()
    out = mbsync()
    loc = local()
    assert sorted(loc) == ["msg 1", "msg 2", "msg 3", "msg 4"], (sorted(loc), out)
    for n in (1, 2, 3, 4):
        assert strip_tuid(loc["msg %d" % n][2]) == lf(MSG[n]), (n, loc["msg %d" % n][2])
    assert loc["msg 4"][1] == "F", loc["msg 4"]
    assert all(loc["msg %d" % n][1] == "" for n in (1, 2, 3))
    lists = local("Lists")
    assert list(lists) == ["msg 7"] and strip_tuid(lists["msg 7"][2]) == lf(MSG[7]), lists


@test(timeout=120)
def test_2_push_flags_deletion_and_new_message():
    loc = local()
    set_local_flags(loc["msg 1"][0], "SF")
    set_local_flags(loc["msg 2"][0], "R")
    os.unlink(loc["msg 3"][0])
    newf = os.path.join(W, "mail", "INBOX", "new",
                        "%d.M1P%d.testhost" % (int(time.time()), os.getpid()))
    with open(newf, "wb") as f:
        f.write(lf(MSG[5]))
    out = mbsync()
    c = imap()
    try:
        srv, uv = server(c)
    finally:
        c.logout()
    assert sorted(srv) == ["msg 1", "msg 2", "msg 4", "msg 5"], (sorted(srv), out)
    assert srv["msg 1"][1] == {"\\Seen", "\\Flagged"}, srv["msg 1"][1]
    assert srv["msg 2"][1] == {"\\Answered"}, srv["msg 2"][1]
    assert srv["msg 4"][1] == {"\\Flagged"}, srv["msg 4"][1]
    assert srv["msg 5"][1] == set(), srv["msg 5"][1]
    assert strip_tuid(srv["msg 5"][2]) == MSG[5], srv["msg 5"][2]
    assert srv["msg 2"][2] == MSG[2]
    # the POP3 view of the same INBOX
    by_uid = sorted(srv.values())
    with D.connect("pop3s") as p:
        p.login(USER, PW)
        assert int(p.ok("STAT").split()[1]) == 4
        uidls = [l.split()[1] for l in p.lines("UIDL")]
        assert uidls == ["%08x%08x" % (u, uv) for u, _, _ in by_uid], (uidls, by_uid, uv)
        for i, (_, _, body) in enumerate(by_uid):
            assert p.multi("RETR %d" % (i + 1))[1] == body
        p.quit()


@test(timeout=120)
def test_3_pull_server_changes():
    c = imap()
    try:
        c.select("INBOX")
        srv, _ = server(c)
        c.uid("STORE", str(srv["msg 4"][0]), "+FLAGS", "(\\Seen)")
        c.uid("STORE", str(srv["msg 2"][0]), "+FLAGS", "(\\Deleted)")
        c.expunge()
    finally:
        c.logout()
    D.deliver(USER, MSG[6])
    out = mbsync()
    loc = local()
    assert sorted(loc) == ["msg 1", "msg 4", "msg 5", "msg 6"], (sorted(loc), out)
    assert loc["msg 4"][1] == "FS", loc["msg 4"]
    assert loc["msg 1"][1] == "FS", loc["msg 1"]
    assert strip_tuid(loc["msg 6"][2]) == lf(MSG[6])


@test(timeout=120)
def test_4_sync_with_nothing_to_do():
    before_loc = {k: (v[1], v[2]) for k, v in local().items()}
    c = imap()
    try:
        before_srv, uv = server(c)
    finally:
        c.logout()
    mbsync()
    after_loc = {k: (v[1], v[2]) for k, v in local().items()}
    c = imap()
    try:
        after_srv, uv2 = server(c)
        lists, _ = server(c, "Lists")
    finally:
        c.logout()
    assert before_loc == after_loc
    assert before_srv == after_srv and uv == uv2
    assert list(lists) == ["msg 7"]


if __name__ == "__main__":
    harness.main(setup=setup)
