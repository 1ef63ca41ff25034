#!/usr/bin/env python3
"""test_imap_fetchmail.py - Debian's fetchmail over IMAP against mailaccessd.

fetchmail (`protocol IMAP`) with implicit TLS and with STARTTLS, checking
the server certificate against the test CA (sslcertck + sslcertfile),
hands each message to an MDA that writes one file per message. fetchmail
asks for BODY.PEEK[HEADER] and BODY.PEEK[TEXT] (or RFC822.HEADER /
BODY[TEXT]) separately and joins them, so the messages must arrive
byte-identical through the server's header/body split (fetchmail gives
the MDA LF line ends; `invisible` adds no Received: header).

- `keep`: mail stays on the server, flagged \\Seen; a second run finds
  nothing new (exit 1);
- `nokeep` + `fetchall` over STARTTLS: everything is fetched again and
  then deleted and expunged: the server's INBOX is empty for IMAP and POP3.

Run: python3 tests/clients/test_imap_fetchmail.py
"""

import glob
import imaplib
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

D = None
W = None  # fetchmail's home, rc file, output dir
USER = "ifetch@example.com"
PW = "ifetch pw 4"

MESSAGES = [
    b"From: a@example.org\nTo: ifetch@example.com\nSubject: first\n\nplain body\n",
    b"From: a@example.org\nTo: ifetch@example.com\nSubject: dots\n\n.\n..\n.dot\nend\n",
    b"From: a@example.org\nTo: ifetch@example.com\nSubject: 8bit\n"
    b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    + "gr\u00fc\u00dfe aus K\u00f6ln\n".encode(),
    b"From: a@example.org\nTo: ifetch@example.com\nSubject: multipart\n"
    b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=XX\n\n"
    b"--XX\nContent-Type: text/plain\n\nplain\n--XX\nContent-Type: text/html\n\n"
    b"<p>html</p>\n--XX--\n",
    b"From: a@example.org\nTo: ifetch@example.com\nSubject: big\n\n"
    + b"".join(b"line %06d of a larger message, to cross buffer sizes\n" % i
               for i in range(6000)),
]


def lf(msg):
    m = msg.replace(b"\r\n", b"\n")
    return m if m.endswith(b"\n") else m + b"\n"


def setup():
    global D, W
    if not shutil.which("fetchmail"):
        raise harness.Skip("fetchmail not installed")
    D = harness.Daemon("imapfetchmail", listeners=[
        dict(name="imap", protocol="imap", tls="starttls"),
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="pop3s", tls="implicit"),
    ])
    D.add_user(USER, PW)
    D.start()
    W = os.path.join(D.dir, "fetchmail")
    os.makedirs(os.path.join(W, "out"))
    mda = os.path.join(W, "mda.sh")
    with open(mda, "w") as f:
        # one file per message, numbered in arrival order
        f.write('#!/bin/sh\nn=$(ls "%s/out" | wc -l)\n'
                'exec cat > "%s/out/$(printf %%04d $n).eml"\n' % (W, W))
    os.chmod(mda, 0o755)


def fetchmail(mode, keep, fetchall=False):
    """Run fetchmail once; returns (exit code, output). mode: implicit|starttls."""
    rc = os.path.join(W, "fetchmailrc")
    port = D.port("imaps" if mode == "implicit" else "imap")
    tls = "ssl" if mode == "implicit" else "sslproto tls1.2+"
    with open(rc, "w") as f:
        f.write('set no syslog\nset invisible\nset idfile "%s/fetchids"\n' % W)
        f.write('poll localhost protocol IMAP port %d\n' % port)
        f.write('  user "%s" there with password "%s" is "root" here\n' % (USER, PW))
        f.write('  %s sslcertck sslcertfile "%s"\n' % (tls, D.certs["ca"]))
        f.write('  %s%s\n' % ("keep" if keep else "nokeep",
                              " fetchall" if fetchall else ""))
        f.write('  no rewrite mda "%s/mda.sh"\n' % W)
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=W, FETCHMAILHOME=W)
    r = subprocess.run(["fetchmail", "-v", "-f", rc], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace")


def fetched():
    out = []
    for p in sorted(glob.glob(os.path.join(W, "out", "*.eml"))):
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def server_flags():
    """[flags string] of each INBOX message, over IMAP."""
    c = imaplib.IMAP4_SSL("127.0.0.1", D.port("imaps"),
                          ssl_context=harness.client_context(D.certs), timeout=10)
    try:
        c.login(USER, PW)
        typ, data = c.select("INBOX", readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return []
        typ, data = c.fetch("1:*", "(FLAGS)")
        return [re.search(rb"FLAGS \(([^)]*)\)", d).group(1).decode() for d in data]
    finally:
        c.logout()


@test(timeout=150)
def test_fetchmail_imap_implicit_tls_keep():
    for m in MESSAGES:
        D.deliver(USER, m)
    rc, out = fetchmail("implicit", keep=True)
    assert rc == 0, "fetchmail exit %d:\n%s" % (rc, out)
    assert re.search(r"IMAP> A\d+ (LOGIN|AUTHENTICATE)", out), out[-3000:]
    got = fetched()
    assert got == [lf(m) for m in MESSAGES], ([g[:80] for g in got], out[-3000:])
    flags = server_flags()
    assert len(flags) == len(MESSAGES), "keep must leave mail on the server"
    assert all("\\Seen" in f for f in flags), flags


@test(timeout=150)
def test_fetchmail_imap_keep_finds_nothing_new():
    rc, out = fetchmail("implicit", keep=True)
    assert rc == 1, "fetchmail exit %d (want 1: no mail):\n%s" % (rc, out)
    assert len(fetched()) == len(MESSAGES)


@test(timeout=150)
def test_fetchmail_imap_starttls_nokeep():
    extra = b"From: b@example.org\nTo: ifetch@example.com\nSubject: over starttls\n\nvia STARTTLS\n"
    D.deliver(USER, extra)
    rc, out = fetchmail("starttls", keep=False, fetchall=True)
    assert rc == 0, "fetchmail exit %d:\n%s" % (rc, out)
    assert re.search(r"IMAP> A\d+ STARTTLS", out), "fetchmail did not use STARTTLS:\n" + out
    got = fetched()
    want = [lf(m) for m in MESSAGES] * 2 + [lf(extra)]
    assert sorted(got) == sorted(want), (len(got), out[-3000:])
    assert server_flags() == [], "nokeep must delete and expunge what was fetched"
    with D.connect("pop3s") as p:
        p.login(USER, PW)
        assert p.ok("STAT").split()[1] == "0"
        p.quit()


if __name__ == "__main__":
    harness.main(setup=setup)
