#!/usr/bin/env python3
"""test_postfix.py - a real Postfix (Debian's package) delivering into
mailaccessd over LMTP, once over TCP and once over a UNIX socket.

A private Postfix instance: its own config_directory with main.cf and
master.cf in a temp dir, its own queue_directory and data_directory there,
smtpd on a free loopback port, no local delivery (mydestination empty),
virtual_mailbox_domains = example.com and virtual_transport = lmtp:... into
our daemon. Mail is submitted with smtplib to Postfix on 127.0.0.1, and we
wait (bounded) until POP3 shows it in the store. `postfix -c DIR stop`
at the end; nothing listens beyond 127.0.0.1.

Skips when Postfix is not installed or we are not root (postfix start
needs root to drop to mail_owner).

Run: python3 tests/lmtp/test_postfix.py
"""

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

harness.PLUGIN_FILES.setdefault("lmtp.so", ("plugins", "lmtp"))

D = None
PW = "Secret-pw 1"
PF = None          # the Postfix instance dir
SOCK = None
SMTP_PORT = None
POSTFIX = "/usr/sbin/postfix"
WAIT = 30.0

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {dir}
maillog_file = {dir}/postfix.log
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.invalid
mydomain = test.invalid
myorigin = test.invalid
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = example.com
virtual_mailbox_maps =
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
transport_maps = inline:{{ unix@example.com=lmtp:unix:{sock} }}
smtputf8_enable = no
# nothing leaves the host: no DNS, no outbound SMTP (bounces to the
# sender fail locally)
default_transport = error:outbound mail disabled in this test
relay_transport = error:outbound mail disabled in this test
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
lmtp_tls_security_level = none
smtp_tls_security_level = none
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


def postfix(*args, check=True):
    r = subprocess.run([POSTFIX, "-c", PF, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError("postfix %s -> %d: %s\n%s" % (
            " ".join(args), r.returncode, r.stdout.decode(errors="replace"),
            postfix_log()))
    return r


def postfix_log():
    try:
        with open(os.path.join(PF, "postfix.log"), errors="replace") as f:
            return "".join(f.readlines()[-40:])
    except OSError:
        return "(no postfix log)"


def setup():
    global D, PF, SOCK, SMTP_PORT
    if not os.path.exists(os.path.join(harness.build_dir(), "plugins",
                                       "lmtp", "lmtp.so")):
        raise harness.Skip("lmtp.so not built")
    if not os.path.exists(POSTFIX):
        raise harness.Skip("postfix not installed (apt-get install postfix)")
    if os.geteuid() != 0:
        raise harness.Skip("postfix start needs root")
    # Postfix's processes run as `postfix`: the instance dir (queue,
    # our UNIX socket) must be reachable for it, unlike the daemon's 0700
    # temp dir.
    PF = tempfile.mkdtemp(prefix="ma-postfix-")
    os.chmod(PF, 0o755)
    SOCK = os.path.join(PF, "lmtp.sock")
    D = harness.Daemon("lmtp-postfix", listeners=[
        dict(name="pop3plain", tls="none"),
        dict(name="lmtp", protocol="lmtp", tls="none"),
    ])
    # The socket belongs to postfix and nobody else may use it.
    D.extra = ("listener lmtpunix {\n  protocol = lmtp\n  path = %s\n"
               "  mode = 0600\n  user = postfix\n}\n" % SOCK)
    D.write_config()
    for u in ("tcp@example.com", "unix@example.com"):
        D.add_user(u, PW)
    D.start()
    SMTP_PORT = harness.free_port()
    import pwd
    pf_uid = pwd.getpwnam("postfix").pw_uid
    for d in ("queue", "data"):
        os.makedirs(os.path.join(PF, d), exist_ok=True)
    # data_directory belongs to mail_owner (postfix check warns otherwise)
    os.chown(os.path.join(PF, "data"), pf_uid, -1)
    with open(os.path.join(PF, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(port=SMTP_PORT))
    with open(os.path.join(PF, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(dir=PF, lmtp_port=D.port("lmtp"), sock=SOCK))
    postfix("check")
    postfix("start")
    deadline = time.monotonic() + 20
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=5) as s:
                s.noop()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("postfix smtpd not up:\n" + postfix_log())
            time.sleep(0.2)


def teardown():
    if PF is None:
        return
    postfix("stop", check=False)
    # `postfix status` is 0 while a master runs; the master pid file stays
    # after a stop (it is a lock), so it alone does not tell
    deadline = time.monotonic() + 10
    while postfix("status", check=False).returncode == 0:
        if time.monotonic() > deadline:
            pid = _master_pid()
            if pid is not None:
                os.kill(pid, 9)
            break
        time.sleep(0.2)
    if not os.environ.get("MA_KEEP_TMP"):
        shutil.rmtree(PF, ignore_errors=True)


def _master_pid():
    """Our instance's master pid, only if that process is a Postfix
    master (never a recycled pid)."""
    try:
        with open(os.path.join(PF, "queue", "pid", "master.pid")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read()
    except (OSError, ValueError):
        return None
    return pid if b"master" in cmd else None


def pop3_wait(user, n, timeout=WAIT):
    """Polls POP3 until user's INBOX has n messages; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        c = D.connect("pop3plain")
        try:
            c.login(user, PW)
            count = int(c.ok("STAT").split()[1])
            if count >= n:
                out = [c.multi("RETR %d" % i)[1] for i in range(1, count + 1)]
                c.quit()
                return out
            c.quit()
        finally:
            c.close()
        if time.monotonic() > deadline:
            raise AssertionError("%s: no mail after %ss; postfix log:\n%s\n"
                                 "daemon log:\n%s" % (user, timeout,
                                                      postfix_log(),
                                                      D.log_tail(20)))
        time.sleep(0.3)


def send(rcpt, subject, body):
    msg = crlf(b"From: alice@example.org\nTo: " + rcpt.encode() +
               b"\nSubject: " + subject.encode() + b"\nMessage-ID: <" +
               subject.encode() + b"@example.org>\n\n" + body)
    with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=10) as s:
        s.ehlo("client.example.org")
        refused = s.sendmail("alice@example.org", [rcpt], msg)
        assert refused == {}, refused
    return msg


def check(stored, rcpt, subject, body):
    # ours first (Postfix's lmtp client connected to us), then Postfix's
    # own Received: line, then the message as submitted
    assert stored.startswith(b"Return-Path: <alice@example.org>\r\n"), stored[:200]
    assert b"\r\nReceived: from mx.test.invalid (" in stored, stored[:400]
    assert b"by mx.test.invalid (Postfix) with ESMTP" in stored, stored[:800]
    assert b"Subject: " + subject.encode() + b"\r\n" in stored
    assert stored.endswith(crlf(body)), stored[-200:]


@test(timeout=60)
def test_postfix_lmtp_over_tcp():
    body = b"Delivered by Postfix over LMTP/TCP.\n.leading dot\n"
    send("tcp@example.com", "pf-tcp", body)
    msgs = pop3_wait("tcp@example.com", 1)
    assert len(msgs) == 1, len(msgs)
    check(msgs[0], "tcp@example.com", "pf-tcp", body)
    assert b"(127.0.0.1)" in msgs[0].split(b"\r\n\r\n")[0]


@test(timeout=60)
def test_postfix_lmtp_over_unix_socket():
    st = os.stat(SOCK)
    assert oct(st.st_mode & 0o777) == "0o600", oct(st.st_mode)
    import pwd
    assert st.st_uid == pwd.getpwnam("postfix").pw_uid, st.st_uid
    body = b"Delivered by Postfix over LMTP on a UNIX socket.\n"
    send("unix@example.com", "pf-unix", body)
    msgs = pop3_wait("unix@example.com", 1)
    assert len(msgs) == 1, len(msgs)
    check(msgs[0], "unix@example.com", "pf-unix", body)
    assert b"(unix)" in msgs[0].split(b"\r\n\r\n")[0]


@test(timeout=60)
def test_postfix_unknown_user_bounces_not_delivered():
    # RCPT gets 550 from us: Postfix bounces the message (the bounce to
    # alice@example.org fails locally: no outbound transport). The log
    # shows our 550 as the reason.
    send("nobody@example.com", "pf-nobody", b"to nobody\n")
    deadline = time.monotonic() + WAIT
    while "5.1.1" not in postfix_log():
        if time.monotonic() > deadline:
            raise AssertionError("no 5.1.1 in postfix log:\n" + postfix_log())
        time.sleep(0.3)
    assert "User unknown" in postfix_log()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
