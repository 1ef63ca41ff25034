#!/usr/bin/env python3
"""test-ctl-user.py - `mailaccessctl user ...` against auth-passwd: exit
codes (0/64/65/67/73/78), password from the argument, from stdin and from a
terminal (asked twice, never echoed), the file it writes (mode 0640, one
line per user), --source.

Run by meson with MA_BUILD_ROOT set; stdlib only."""
import os
import pty
import select
import signal
import shutil
import subprocess
import sys
import tempfile
import time

BUILD = os.environ["MA_BUILD_ROOT"]
CTL = os.path.join(BUILD, "core", "mailaccessctl")
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAILED:", what, file=sys.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="test-ctl-user.")
    try:
        run_tests(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("test-ctl-user: %d failures" % failures, file=sys.stderr)
        return 1
    print("test-ctl-user: ok")
    return 0


def run_tests(tmp):
    users = os.path.join(tmp, "users")
    conf = os.path.join(tmp, "mailaccess.conf")
    plugin_dirs = ":".join(os.path.join(BUILD, d) for d in
                           ("plugins/auth-passwd", "plugins/auth-pam",
                            "backends/lmdb"))
    with open(conf, "w") as f:
        f.write("plugin_dir = %s\nstate_dir = %s\n"
                "store {\n  backend = lmdb\n  path = %s/mail\n}\n"
                "auth passwd {\n  file = %s\n  rounds = 5000\n}\n"
                % (plugin_dirs, tmp, tmp, users))
    env = dict(os.environ)
    env.pop("MAILACCESS_PLUGIN_DIR", None)

    def ctl(*args, stdin=None):
        p = subprocess.run([CTL, "-c", conf, "user"] + list(args),
                           input=stdin, capture_output=True, text=True,
                           env=env, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def hash_of(user):
        with open(users) as f:
            for line in f:
                if line.split(":", 1)[0] == user:
                    return line.rstrip("\n").split(":", 1)[1]
        return None

    rc, out, err = ctl("add", "alice@example.org", "secret1")
    check(rc == 0, "add: rc=%d %s" % (rc, err))
    check(os.stat(users).st_mode & 0o777 == 0o640, "file mode 0640")
    h1 = hash_of("alice@example.org")
    check(h1 is not None and h1.startswith("{SHA512-CRYPT}$6$"), "hash %r" % h1)
    check("secret1" not in open(users).read(), "no plaintext in the file")

    rc, out, err = ctl("add", "Alice@Example.org", "x")
    check(rc == 73, "duplicate add: rc=%d" % rc)
    rc, out, err = ctl("add", "bob", stdin="pw from stdin\n")
    check(rc == 0, "add from stdin: rc=%d %s" % (rc, err))
    check("pw from stdin" not in out + err, "password not echoed")
    rc, out, err = ctl("add", "bad:name", "x")
    check(rc == 65, "bad name: rc=%d" % rc)
    rc, out, err = ctl("add", "carol", stdin="")
    check(rc == 65, "no password on stdin: rc=%d" % rc)
    rc, out, err = ctl("add", "carol", stdin="x" * 5000 + "\n")
    check(rc == 65, "over-long password: rc=%d" % rc)
    rc, out, err = ctl("passwd", "nobody", "x")
    check(rc == 67, "passwd unknown: rc=%d" % rc)
    rc, out, err = ctl("del", "nobody")
    check(rc == 67, "del unknown: rc=%d" % rc)

    rc, out, err = ctl("list")
    check(rc == 0 and out == "alice@example.org\nbob\n", "list: %r" % out)

    rc, out, err = ctl("passwd", "ALICE@example.org", stdin="newpw\n")
    check(rc == 0, "passwd: rc=%d %s" % (rc, err))
    h2 = hash_of("alice@example.org")
    check(h2 is not None and h2 != h1, "passwd changed the hash")

    rc, out, err = ctl("del", "bob")
    check(rc == 0, "del: rc=%d" % rc)
    rc, out, err = ctl("--source", "passwd", "list")
    check(rc == 0 and out == "alice@example.org\n", "list after del: %r" % out)

    # usage errors
    for args in (["frob"], ["add"], ["del"], ["del", "a", "b"],
                 ["list", "x"], ["add", "a", "b", "c"], []):
        rc, out, err = ctl(*args)
        check(rc == 64, "usage %r: rc=%d" % (args, rc))
    rc, out, err = ctl("--source", "nosuch", "list")
    check(rc == 78, "unknown source: rc=%d" % rc)
    p = subprocess.run([CTL, "-c", os.path.join(tmp, "missing.conf"), "user",
                        "list"], capture_output=True, env=env, timeout=60)
    check(p.returncode == 78, "missing config: rc=%d" % p.returncode)

    # on a terminal: asked twice, echo off
    def tty_run(args, answers):
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(CTL, [CTL, "-c", conf, "user"] + args, env)
        seen = b""
        sent = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1)
            if not r:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            seen += data
            # answer each prompt once it is shown (the tool flushes
            # typed-ahead input when it turns echo off)
            if sent < len(answers) and seen.count(b"assword: ") > sent:
                os.write(fd, answers[sent].encode() + b"\n")
                sent += 1
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")

    rc, seen = tty_run(["add", "dave"], ["tty secret", "tty secret"])
    check(rc == 0, "tty add: rc=%d %r" % (rc, seen))
    check("tty secret" not in seen, "tty password echoed: %r" % seen)
    check("Retype" in seen, "asked twice: %r" % seen)
    rc, seen = tty_run(["passwd", "dave"], ["one", "two"])
    check(rc == 65, "tty mismatch: rc=%d" % rc)


if __name__ == "__main__":
    sys.exit(main())
