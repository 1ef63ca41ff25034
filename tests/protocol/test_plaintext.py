#!/usr/bin/env python3
"""test_plaintext.py - plaintext passwords are refused before TLS on a
non-loopback connection unless the listener says allow_plaintext_auth = yes.

On loopback they are always allowed (nobody can sniff it), so this needs a
non-loopback address. The file re-runs itself in a private network
namespace (`unshare -n`, root only) that has nothing but its own `lo`, on
which it puts 192.0.2.1 (TEST-NET-1, RFC 5737): the daemon sees a
non-loopback peer, and no packet can leave the namespace. Where unshare is
not permitted the tests are skipped.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, b64  # noqa: E402

ADDR = "192.0.2.1"
USER, PW = "pt@example.com", "pt secret"
D = None


def reexec_in_netns():
    script = ("ip link set lo up && ip addr add %s/32 dev lo && exec \"$0\" \"$@\""
              % ADDR)
    env = dict(os.environ, MA_IN_NETNS="1")
    try:
        probe = subprocess.run(["unshare", "-n", "sh", "-c",
                                "ip link set lo up && ip addr add %s/32 dev lo" % ADDR],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        probe = None
        why = str(e)
    if probe is None or probe.returncode != 0:
        why = probe.stdout.decode(errors="replace").strip() if probe else why
        n = len(harness._tests)
        for name, _, _ in harness._tests:
            print("SKIP %s: no private network namespace (%s)" % (name, why))
        print("RESULT passed=0 failed=0 skipped=%d" % n)
        sys.exit(0)
    os.execvpe("unshare", ["unshare", "-n", "sh", "-c", script,
                           sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
               env)


def setup():
    global D
    D = harness.Daemon("plaintext", listeners=[
        dict(name="stls", tls="starttls", address=ADDR),
        dict(name="plain", tls="none", address=ADDR),
        dict(name="allowed", tls="none", address=ADDR, allow_plaintext_auth=True),
        dict(name="implicit", tls="implicit", address=ADDR),
        dict(name="loop", tls="none", address="127.0.0.1"),
    ])
    D.add_user(USER, PW)
    D.start()


def capa(c):
    return [l.upper() for l in c.capa()]


def refused(c):
    """USER/PASS and AUTH PLAIN with the right password must not log in."""
    r = c.cmd("USER " + USER)
    if r.startswith("+OK"):
        r = c.cmd("PASS " + PW)
    assert r.startswith("-ERR"), r
    r = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)))
    assert r.startswith("-ERR"), r
    assert c.cmd("STAT").startswith("-ERR")  # still not logged in


@test()
def test_refused_without_tls():
    with D.connect("plain") as c:
        caps = capa(c)
        assert not any(l.startswith("SASL") and "PLAIN" in l for l in caps), caps
        assert "USER" not in caps, caps
        refused(c)


@test()
def test_refused_before_stls_allowed_after():
    with D.connect("stls") as c:
        caps = capa(c)
        assert "STLS" in caps, caps
        assert "USER" not in caps, caps
        refused(c)
        c.stls()
        caps = capa(c)
        assert "USER" in caps, caps
        assert any(l.startswith("SASL") and "PLAIN" in l for l in caps), caps
        c.login(USER, PW)
        c.quit()


@test()
def test_implicit_tls_allowed():
    with D.connect("implicit") as c:
        r = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PW)))
        assert r.startswith("+OK"), r
        c.quit()


@test()
def test_allow_plaintext_auth_yes():
    with D.connect("allowed") as c:
        assert "USER" in capa(c)
        c.login(USER, PW)
        c.quit()


@test()
def test_loopback_allowed():
    with D.connect("loop") as c:
        c.login(USER, PW)
        c.quit()


if __name__ == "__main__":
    if os.environ.get("MA_IN_NETNS") != "1":
        reexec_in_netns()
    harness.main(setup=setup)
