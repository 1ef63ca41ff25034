#!/usr/bin/env python3
"""test_ctl.py - mailaccessctl as an admin and an MTA use it, checked
through a running daemon: config check, user add/passwd/del/list, deliver
exit codes (sysexits: 0, 64 usage, 67 unknown user) and LF/CRLF input.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

D = None


def setup():
    global D
    D = harness.Daemon("ctl", listeners=[dict(name="pop3plain", tls="none")])
    D.add_user("alice@example.com", "alice pw")
    D.add_user("bob@example.com", "bob pw")
    D.start()


def can_login(user, pw):
    with D.connect("pop3plain") as c:
        c.ok("USER " + user)
        r = c.cmd("PASS " + pw)
        if r.startswith("+OK"):
            c.quit()
            return True
        assert r.startswith("-ERR"), r
        return False


@test()
def test_config_check_ok_and_bad():
    r = D.ctl("config", "check")
    assert r.returncode == 0
    bad = os.path.join(D.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("listener x {\n  protocol = pop3\n  port = notaport\n")  # no }
    r = subprocess.run([harness.ctl_path(), "-c", bad, "config", "check"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=D.env, timeout=60)
    assert r.returncode != 0, r
    assert r.stderr.strip(), "a bad config must say why on stderr"
    assert not harness.sanitizer_report(r.stderr.decode(errors="replace"))


@test()
def test_user_list():
    out = D.ctl("user", "list").stdout.decode().split()
    assert "alice@example.com" in out and "bob@example.com" in out, out


@test()
def test_user_add_duplicate_fails():
    r = D.ctl("user", "add", "alice@example.com", "x", check=False)
    assert r.returncode != 0


@test()
def test_user_add_password_from_stdin():
    D.ctl("user", "add", "carol@example.com", input="carol stdin pw\n")
    time.sleep(0.1)
    assert can_login("carol@example.com", "carol stdin pw")


@test(timeout=60)
def test_user_passwd_and_del():
    assert can_login("bob@example.com", "bob pw")
    D.ctl("user", "passwd", "bob@example.com", "bob new pw")
    time.sleep(0.1)
    assert can_login("bob@example.com", "bob new pw")
    assert not can_login("bob@example.com", "bob pw")
    D.ctl("user", "del", "bob@example.com")
    time.sleep(0.1)
    assert not can_login("bob@example.com", "bob new pw")
    assert "bob@example.com" not in D.ctl("user", "list").stdout.decode().split()


@test()
def test_deliver_exit_codes():
    r = D.deliver("nobody@example.com", b"Subject: x\n\nx\n", check=False)
    assert r.returncode == 67, (r.returncode, r.stderr)
    r = D.ctl("deliver", check=False)
    assert r.returncode == 64, (r.returncode, r.stderr)
    r = D.deliver("alice@example.com", b"Subject: ok\n\nok\n", check=False)
    assert r.returncode == 0, (r.returncode, r.stderr)


@test()
def test_deliver_lf_and_crlf_read_back():
    a = b"Subject: lf\n\none\ntwo\n"
    b = b"Subject: crlf\r\n\r\none\r\ntwo\r\n"
    with D.connect("pop3plain") as c:
        c.login("alice@example.com", "alice pw")
        n0 = int(c.ok("STAT").split()[1])
        c.quit()
    D.deliver("alice@example.com", a)
    D.deliver("alice@example.com", b)
    with D.connect("pop3plain") as c:
        c.login("alice@example.com", "alice pw")
        assert int(c.ok("STAT").split()[1]) == n0 + 2
        assert c.multi("RETR %d" % (n0 + 1))[1] == crlf(a)
        assert c.multi("RETR %d" % (n0 + 2))[1] == b
        c.quit()


@test()
def test_daemon_t_checks_config():
    r = subprocess.run([harness.daemon_path(), "-c", D.conf_path, "-t"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=D.env, timeout=60)
    assert r.returncode == 0, r
    bad = os.path.join(D.dir, "bad-t.conf")
    with open(bad, "w") as f:
        f.write("store {\n  backend = nosuchbackend\n}\n")
    r = subprocess.run([harness.daemon_path(), "-c", bad, "-t"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=D.env, timeout=60)
    assert r.returncode == 78, (r.returncode, r.stderr)  # EX_CONFIG
    assert r.stderr.strip()
    for out in (r.stdout, r.stderr):
        assert not harness.sanitizer_report(out.decode(errors="replace"))


@test(timeout=60)
def test_daemon_d_backgrounds_and_sigterm_stops():
    d = harness.Daemon("ctl-bg", listeners=[dict(name="p", tls="none")])
    log = open(os.path.join(d.dir, "bg.log"), "wb")
    r = subprocess.run([harness.daemon_path(), "-c", d.conf_path, "-d",
                        "-p", d.pid_path], stdin=subprocess.DEVNULL,
                       stdout=log, stderr=log, env=d.env, timeout=30)
    assert r.returncode == 0, r
    pid = None
    for _ in range(100):
        try:
            with open(d.pid_path) as f:
                pid = int(f.read().strip())
            with d.connect("p") as c:
                assert c.greeting.startswith(b"+OK")
            break
        except (OSError, ValueError, ConnectionError):
            time.sleep(0.1)
    assert pid, "no pid file / no listener after -d"
    os.kill(pid, 15)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        raise AssertionError("background daemon ignored SIGTERM")
    log.close()
    with open(os.path.join(d.dir, "bg.log"), "rb") as f:
        assert not harness.sanitizer_report(f.read().decode(errors="replace"))


if __name__ == "__main__":
    harness.main(setup=setup)
