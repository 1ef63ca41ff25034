#!/usr/bin/env python3
"""test_pam.py - `auth pam { }` end to end, without touching the system PAM.

The daemon runs under pam_wrapper (LD_PRELOAD=libpam_wrapper.so with
PAM_WRAPPER=1): PAM reads its service file from our own
PAM_WRAPPER_SERVICE_DIR, where `mailaccess` stacks pam_matrix.so over a
passdb file of ours. On an ASan build the ASan runtime must come first in
LD_PRELOAD (ASan refuses to start otherwise), so it is prepended.
Then POP3 logins with good and bad passwords, USER/PASS and AUTH PLAIN.
"""

import glob
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "protocol"))
import harness  # noqa: E402
from harness import test, b64  # noqa: E402

D = None
SERVICE = "mailaccess"
USER, PW = "pamuser", "pam secret 1"
USER2, PW2 = "other", "0ther-pw"


def find_lib(pattern):
    for p in sorted(glob.glob(pattern)):
        return p
    return None


def asan_runtime(binary):
    """Path of the ASan runtime binary links against, or None."""
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split("(")[0].strip()
    return None


def setup():
    global D
    wrapper = find_lib("/usr/lib/*/libpam_wrapper.so*") or find_lib("/usr/lib/libpam_wrapper.so*")
    matrix = find_lib("/usr/lib/*/pam_wrapper/pam_matrix.so")
    if not wrapper or not matrix:
        raise harness.Skip("pam_wrapper / pam_matrix not installed (libpam-wrapper)")
    if not os.path.exists(os.path.join(harness.build_dir(), "plugins",
                                       "auth-pam", "auth-pam.so")):
        raise AssertionError("auth-pam.so not built")
    D = harness.Daemon("pam", listeners=[
        dict(name="pop3s", tls="implicit"),
        dict(name="pop3plain", tls="none"),
    ], auth=[("pam", {"service": SERVICE})])
    svc = os.path.join(D.dir, "pam.d")
    os.makedirs(svc)
    passdb = os.path.join(D.dir, "passdb")
    with open(passdb, "w") as f:
        f.write("%s:%s:%s\n%s:%s:%s\n" % (USER, PW, SERVICE, USER2, PW2, SERVICE))
    with open(os.path.join(svc, SERVICE), "w") as f:
        for kind in ("auth", "account", "password", "session"):
            f.write("%-8s required %s passdb=%s\n" % (kind, matrix, passdb))
    preload = [wrapper]
    asan = asan_runtime(harness.daemon_path())
    if asan:
        preload.insert(0, asan)
    D.preload = " ".join(preload)
    D.env["PAM_WRAPPER"] = "1"
    D.env["PAM_WRAPPER_SERVICE_DIR"] = svc
    D.start()


@test(timeout=60)
def test_pam_user_pass_good():
    with D.connect("pop3s") as c:
        c.ok("USER " + USER)
        r = c.cmd("PASS " + PW)
        assert r.startswith("+OK"), r
        r = c.ok("STAT")
        assert r.split()[1] == "0", r  # a new user has an empty INBOX
        c.quit()


@test(timeout=60)
def test_pam_auth_plain_good():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER2, PW2)))
        assert r.startswith("+OK"), r
        c.quit()


@test(timeout=60)
def test_pam_plaintext_on_loopback():
    with D.connect("pop3plain") as c:
        c.login(USER, PW)
        c.quit()


@test(timeout=60)
def test_pam_wrong_password():
    with D.connect("pop3s") as c:
        c.ok("USER " + USER)
        t0 = time.monotonic()
        r = c.cmd("PASS not-the-password")
        assert r.startswith("-ERR [AUTH]"), r
        assert time.monotonic() - t0 >= 0.8  # auth_fail_delay = 1s
        # the right one still works afterwards in the same session
        c.ok("USER " + USER)
        assert c.cmd("PASS " + PW).startswith("+OK")
        c.quit()


@test(timeout=60)
def test_pam_unknown_user():
    with D.connect("pop3s") as c:
        r = c.cmd("AUTH PLAIN " + b64("\0nosuchuser\0whatever"))
        assert r.startswith("-ERR [AUTH]"), r


@test(timeout=60)
def test_pam_password_of_other_user():
    with D.connect("pop3s") as c:
        c.ok("USER " + USER)
        r = c.cmd("PASS " + PW2)
        assert r.startswith("-ERR [AUTH]"), r


@test()
def test_pam_daemon_alive():
    assert D.alive(), D.log_tail()
    with D.connect("pop3plain") as c:
        assert c.greeting.startswith(b"+OK")


if __name__ == "__main__":
    harness.main(setup=setup)
