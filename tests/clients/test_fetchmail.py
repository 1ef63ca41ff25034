#!/usr/bin/env python3
"""test_fetchmail.py - Debian's fetchmail against a real mailaccessd.

fetchmail fetches over POP3 with implicit TLS and with STLS, checking the
server certificate against the test CA (sslcertck + sslcertfile), and hands
each message to an MDA that writes one file per message. Messages must
arrive byte-identical (fetchmail gives the MDA LF line ends and no
Received: header with `invisible`). `keep` leaves mail on the server and
its UIDL bookkeeping (idfile) must skip what it has seen; `nokeep` removes
what it fetched.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "protocol"))
import harness  # noqa: E402
from harness import test  # noqa: E402

D = None
W = None  # fetchmail's home, rc file, idfile, output dir
USER = "fetch@example.com"
PW = "fetch pw 7"

MESSAGES = [
    b"From: a@example.org\nTo: fetch@example.com\nSubject: first\n\nplain body\n",
    b"From: a@example.org\nTo: fetch@example.com\nSubject: dots\n\n.\n..\n.dot\nend\n",
    b"From: a@example.org\nTo: fetch@example.com\nSubject: 8bit\n"
    b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    + "gr\u00fc\u00dfe aus K\u00f6ln\n".encode(),
]


def lf(msg):
    m = msg.replace(b"\r\n", b"\n")
    return m if m.endswith(b"\n") else m + b"\n"


def setup():
    global D, W
    if not shutil.which("fetchmail"):
        raise harness.Skip("fetchmail not installed")
    D = harness.Daemon("fetchmail", listeners=[
        dict(name="pop3", tls="starttls"),
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
    """Run fetchmail once; returns (exit code, output). mode: implicit|stls."""
    rc = os.path.join(W, "fetchmailrc")
    port = D.port("pop3s" if mode == "implicit" else "pop3")
    tls = "ssl" if mode == "implicit" else "sslproto tls1.2+"
    with open(rc, "w") as f:
        f.write('set no syslog\nset invisible\nset idfile "%s/fetchids"\n' % W)
        f.write('poll localhost protocol POP3 port %d uidl\n' % port)
        f.write('  user "%s" there with password "%s" is "root" here\n' % (USER, PW))
        f.write('  %s sslcertck sslcertfile "%s"\n' % (tls, D.certs["ca"]))
        f.write('  %s%s\n' % ("keep" if keep else "nokeep",
                              " fetchall" if fetchall else ""))
        f.write('  no rewrite mda "%s/mda.sh"\n' % W)
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=W, FETCHMAILHOME=W)
    r = subprocess.run(["fetchmail", "-v", "-f", rc], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=120)
    out = r.stdout.decode(errors="replace")
    return r.returncode, out


def fetched():
    out = []
    for p in sorted(glob.glob(os.path.join(W, "out", "*.eml"))):
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def server_count():
    with D.connect("pop3s") as c:
        c.login(USER, PW)
        n = int(c.ok("STAT").split()[1])
        c.quit()
    return n


@test(timeout=150)
def test_fetchmail_implicit_tls_keep():
    for m in MESSAGES:
        D.deliver(USER, m)
    rc, out = fetchmail("implicit", keep=True)
    assert rc == 0, "fetchmail exit %d:\n%s" % (rc, out)
    got = fetched()
    assert sorted(got) == sorted(lf(m) for m in MESSAGES), (got, out)
    assert server_count() == len(MESSAGES), "keep must leave mail on the server"


@test(timeout=150)
def test_fetchmail_keep_skips_seen_by_uidl():
    rc, out = fetchmail("implicit", keep=True)
    # 1 = no new mail
    assert rc == 1, "fetchmail exit %d (want 1: no mail):\n%s" % (rc, out)
    assert len(fetched()) == len(MESSAGES)


@test(timeout=150)
def test_fetchmail_stls_nokeep():
    extra = b"From: b@example.org\nTo: fetch@example.com\nSubject: over stls\n\nvia STLS\n"
    D.deliver(USER, extra)
    rc, out = fetchmail("stls", keep=False, fetchall=True)
    assert rc == 0, "fetchmail exit %d:\n%s" % (rc, out)
    assert re.search(r"POP3> STLS", out), "fetchmail did not use STLS:\n" + out
    got = fetched()
    want = [lf(m) for m in MESSAGES] * 2 + [lf(extra)]
    assert sorted(got) == sorted(want), (len(got), out)
    assert server_count() == 0, "nokeep must delete what was fetched"


if __name__ == "__main__":
    harness.main(setup=setup)
