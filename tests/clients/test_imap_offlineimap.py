#!/usr/bin/env python3
"""test_imap_offlineimap.py - offlineimap3 syncing a Maildir with mailaccessd.

offlineimap (Debian's offlineimap3, Python 3 imaplib2 underneath) over
implicit TLS, certificate checked against the test CA, in three full
syncs:

 1. pull: INBOX (one message \\Flagged on the server) and a second mailbox
    arrive locally with content and flags;
 2. push: local flags (S, R), a deleted file and a new file become STORE,
    \\Deleted + EXPUNGE and APPEND on the server (checked with imaplib and
    the POP3 view);
 3. pull changes made on the server: a flag, an expunge, a delivery.

offlineimap writes LF line ends into the Maildir and may add an
X-OfflineIMAP header to what it uploads; both are allowed for.
Needs offlineimap (scripts/deps-imap-clients.sh); SKIPs without it.
Run: python3 tests/clients/test_imap_offlineimap.py
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
W = None
USER = "oimap@example.com"
PW = "oimap pw 2"


def mk(n, body=None):
    return crlf(b"From: sender%d@example.org\nTo: oimap@example.com\n"
                b"Subject: msg %d\nMessage-ID: <o%d@example.org>\n\n" % (n, n, n)
                + (body or b"body of message %d\n" % n))


MSG = {n: mk(n) for n in range(1, 8)}
MSG[3] = mk(3, b"\xc3\xa4\xc3\xb6\xc3\xbc 8-bit body\n.\n")


def strip_added(b):
    """Headers offlineimap adds to keep track of uploads."""
    return re.sub(rb"(?mi)^X-OfflineIMAP: [^\r\n]*\r?\n", b"", b)


def setup():
    global D, W
    if not shutil.which("offlineimap"):
        raise harness.Skip("offlineimap not installed (bash scripts/deps-imap-clients.sh)")
    D = harness.Daemon("offlineimap", listeners=[
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="pop3s", tls="implicit"),
    ])
    D.add_user(USER, PW)
    D.start()
    W = os.path.join(D.dir, "offlineimap")
    os.makedirs(os.path.join(W, "mail"))
    with open(os.path.join(W, "offlineimaprc"), "w") as f:
        f.write("""[general]
accounts = t
metadata = %s/meta
maxsyncaccounts = 1

[Account t]
localrepository = L
remoterepository = R

[Repository L]
type = Maildir
localfolders = %s/mail

[Repository R]
type = IMAP
remotehost = localhost
remoteport = %d
ssl = yes
sslcacertfile = %s
remoteuser = %s
remotepass = %s
maxconnections = 1
holdconnectionopen = no
timeout = 30
expunge = yes
""" % (W, W, D.port("imaps"), D.certs["ca"], USER, PW))


def offlineimap():
    env = dict(os.environ, HOME=W)
    r = subprocess.run(["offlineimap", "-c", os.path.join(W, "offlineimaprc"),
                        "-o", "-u", "basic"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=120)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and "ERROR" not in out, \
        "offlineimap exit %d:\n%s" % (r.returncode, out)
    return out


def local(folder="INBOX"):
    return maildir_sync.local(W, folder)


def imap():
    return maildir_sync.imap(D, USER, PW)


def server(c, mailbox="INBOX"):
    return maildir_sync.server(c, mailbox)[0]


@test(timeout=150)
def test_1_pull():
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
    out = offlineimap()
    loc = local()
    assert sorted(loc) == ["msg 1", "msg 2", "msg 3", "msg 4"], (sorted(loc), out)
    for n in (1, 2, 3, 4):
        assert lf(loc["msg %d" % n][2]) == lf(MSG[n]), (n, loc["msg %d" % n][2])
    assert loc["msg 4"][1] == "F", loc["msg 4"]
    assert all(loc["msg %d" % n][1] == "" for n in (1, 2, 3))
    lists = local("Lists")
    assert list(lists) == ["msg 7"] and lf(lists["msg 7"][2]) == lf(MSG[7]), lists


@test(timeout=150)
def test_2_push():
    loc = local()
    set_local_flags(loc["msg 1"][0], "S")
    set_local_flags(loc["msg 2"][0], "RS")
    os.unlink(loc["msg 3"][0])
    with open(os.path.join(W, "mail", "INBOX", "new",
                           "%d.M1P%d.testhost" % (int(time.time()), os.getpid())),
              "wb") as f:
        f.write(lf(MSG[5]))
    out = offlineimap()
    c = imap()
    try:
        srv = server(c)
    finally:
        c.logout()
    assert sorted(srv) == ["msg 1", "msg 2", "msg 4", "msg 5"], (sorted(srv), out)
    assert srv["msg 1"][1] == {"\\Seen"}, srv["msg 1"][1]
    assert srv["msg 2"][1] == {"\\Answered", "\\Seen"}, srv["msg 2"][1]
    assert srv["msg 4"][1] == {"\\Flagged"}, srv["msg 4"][1]
    assert crlf(strip_added(srv["msg 5"][2])) == MSG[5], srv["msg 5"][2]
    with D.connect("pop3s") as p:
        p.login(USER, PW)
        assert int(p.ok("STAT").split()[1]) == 4
        p.quit()


@test(timeout=150)
def test_3_pull_server_changes():
    c = imap()
    try:
        srv = server(c)
        c.uid("STORE", str(srv["msg 4"][0]), "+FLAGS", "(\\Seen)")
        c.uid("STORE", str(srv["msg 1"][0]), "+FLAGS", "(\\Deleted)")
        c.expunge()
    finally:
        c.logout()
    D.deliver(USER, MSG[6])
    out = offlineimap()
    loc = local()
    assert sorted(loc) == ["msg 2", "msg 4", "msg 5", "msg 6"], (sorted(loc), out)
    assert loc["msg 4"][1] == "FS", loc["msg 4"]
    assert loc["msg 2"][1] == "RS", loc["msg 2"]
    assert lf(loc["msg 6"][2]) == lf(MSG[6])


if __name__ == "__main__":
    harness.main(setup=setup)
