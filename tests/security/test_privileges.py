#!/usr/bin/env python3
"""test_privileges.py - the processes that handle mail hold no root
privileges (checked from /proc), and mail still works.

Needs root (CI runs as root; otherwise every test SKIPs). The daemon is
started as root with `user = nobody` / `group = nogroup`, its directory
(store, state, users file) owned by nobody. Then, for every worker process
-- children of the master whose /proc/<pid>/comm is "ma-worker"; while the
daemon is still one process, that process itself -- and every thread of
it (/proc/<pid>/task/<tid>/status):
- real, effective, saved and filesystem UID and GID are non-zero (and are
  nobody / nogroup);
- no supplementary group is 0 (root);
- CapEff, CapPrm, CapInh and CapAmb are 0.
A master or an "ma-auth" process may stay root; that is only reported.
First (so the auth threads exist when /proc is read) login, APPEND, LMTP
delivery (when lmtp.so is built), SELECT, FETCH and POP3 RETR work, and
every file and directory the daemon created in the
store is owned by nobody and has no permission bits for "other".

Run: python3 tests/security/test_privileges.py [test ...]
"""

import grp
import os
import pwd
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))
harness.PLUGIN_FILES.setdefault("lmtp.so", ("plugins", "lmtp"))

USER, PW = "priv@example.com", "priv pw 1"
D = None
UID = GID = None
HAVE_LMTP = False


def setup():
    global D, UID, GID, HAVE_LMTP
    if os.geteuid() != 0:
        raise harness.Skip("needs root (the daemon must start as root to drop privileges)")
    try:
        UID = pwd.getpwnam("nobody").pw_uid
        GID = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        raise harness.Skip("no user nobody / group nogroup")
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap", "imap.so")):
        raise harness.Skip("imap.so not built")
    HAVE_LMTP = os.path.exists(os.path.join(harness.build_dir(), "plugins", "lmtp", "lmtp.so"))
    listeners = [dict(name="imap", protocol="imap"), dict(name="pop3")]
    if HAVE_LMTP:
        listeners.append(dict(name="lmtp", protocol="lmtp"))
    D = harness.Daemon("privileges", listeners=listeners,
                       extra_top="user = nobody\ngroup = nogroup")
    D.add_user(USER, PW)
    # What the daemon needs after the drop belongs to nobody; the
    # plugins (symlinks to the root-owned build) and the TLS key stay
    # root's: they are read before the drop.
    for root, dirs, files in os.walk(D.dir):
        if os.path.basename(root) == "plugins":
            dirs[:] = []
            continue
        for n in dirs + files:
            p = os.path.join(root, n)
            if not os.path.islink(p) and not p.startswith(D.plugin_dir):
                os.chown(p, UID, GID)
    os.chown(D.dir, UID, GID)
    os.chmod(D.dir, 0o700)
    D.start()
    # the master says "started" once the workers are forked; each worker
    # logs its drop a moment later
    end = time.monotonic() + 10
    while "running as user nobody" not in D.log_text() and time.monotonic() < end:
        time.sleep(0.05)
    assert "running as user nobody" in D.log_text(), D.log_tail()


def status(pid, tid=None):
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(status(int(d))["PPid"][0]) == pid:
                    out.append(int(d))
            except (OSError, KeyError):
                pass
    return out


def workers():
    """(worker pids, description): ma-worker children, else the daemon."""
    master = D.proc.pid
    kids = children(master)
    w = [p for p in kids if comm(p) == "ma-worker"]
    names = {p: comm(p) for p in kids}
    if w:
        return w, "%d ma-worker processes (children: %s)" % (len(w), names)
    return [master], "single process (pid %d, comm %s; children: %s)" % (
        master, comm(master), names)


def check_unprivileged(pid):
    tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    for tid in tids:
        st = status(pid, tid)
        uids = [int(x) for x in st["Uid"]]
        gids = [int(x) for x in st["Gid"]]
        where = "pid %d tid %d (%s)" % (pid, tid, comm(pid))
        assert uids == [UID] * 4, (where, "Uid real/eff/saved/fs", uids)
        assert gids == [GID] * 4, (where, "Gid real/eff/saved/fs", gids)
        groups = [int(x) for x in st.get("Groups", [])]
        assert 0 not in groups, (where, "supplementary groups", groups)
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            if cap in st:
                assert int(st[cap][0], 16) == 0, (where, cap, st[cap])
        # no exec can raise privileges again (setuid bits ignored)
        assert st.get("NoNewPrivs", ["0"])[0] == "1", (where, "NoNewPrivs", st.get("NoNewPrivs"))
    return len(tids), status(pid)


def lmtp_deliver(rcpt, body):
    s = socket.create_connection(("127.0.0.1", D.port("lmtp")), timeout=10)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if len(line) < 4 or line[3:4] != b"-":
                return line
    assert reply().startswith(b"220")
    for c in (b"LHLO t", b"MAIL FROM:<a@example.org>", b"RCPT TO:<%s>" % rcpt.encode(), b"DATA"):
        s.sendall(c + b"\r\n")
        r = reply()
        assert r[:1] in (b"2", b"3"), (c, r)
    s.sendall(body + b".\r\n")
    r = reply()
    assert r.startswith(b"250"), r
    s.sendall(b"QUIT\r\n")
    s.close()


@test(timeout=60)
def test_mail_works_and_store_files_private():
    m1 = b"From: a@example.org\r\nSubject: appended\r\n\r\nvia APPEND\r\n"
    m2 = b"From: a@example.org\r\nSubject: lmtp\r\n\r\nvia LMTP\r\n"
    with D.imap("imap") as c:
        c.login(USER, PW)
        c.ok('CREATE "Folder"')
        c.ok('APPEND "INBOX"', literal=m1)
        c.ok('APPEND "Folder"', literal=m1)
        c.logout()
    n = 1
    if HAVE_LMTP:
        lmtp_deliver(USER, m2)
        n = 2
    with D.imap("imap") as c:
        c.login(USER, PW)
        info = c.select("INBOX")
        assert info["exists"] == n, info
        f = c.fetch("1", "BODY.PEEK[]")
        assert f[1][1][0] == m1, f
        c.ok("STORE 1 +FLAGS (\\Seen)")
        c.logout()
    with D.connect("pop3") as p:
        p.login(USER, PW)
        st = p.ok("STAT")
        assert st.split()[1] == str(n), st
        _, body = p.multi("RETR 1")
        assert body == m1, body
        p.quit()
    bad = []
    count = 0
    udir = os.path.join(D.store_path, USER)
    assert os.path.isdir(udir), os.listdir(D.store_path)
    for root, dirs, files in os.walk(udir):
        for name in [""] + dirs + files:
            p = os.path.join(root, name) if name else root
            stt = os.lstat(p)
            count += 1
            if stt.st_uid != UID or stt.st_mode & 0o007:
                bad.append((os.path.relpath(p, D.store_path), stt.st_uid, oct(stt.st_mode)))
    assert not bad, ("store files not owned by nobody or world-accessible", bad[:20])
    print("  %d files and directories in the store: all owned by nobody, mode o-rwx" % count)


@test(timeout=60)
def test_workers_hold_no_root_privileges():
    pids, how = workers()
    for p in pids:
        n, st = check_unprivileged(p)
        print("  %s: pid %d, %d threads, Uid %s Gid %s Groups %s CapEff %s CapBnd %s"
              % (how, p, n, "/".join(st["Uid"]), "/".join(st["Gid"]),
                 ",".join(st.get("Groups", [])) or "-", st["CapEff"][0], st["CapBnd"][0]))
    others = [p for p in children(D.proc.pid) if p not in pids]
    for p in others + ([D.proc.pid] if D.proc.pid not in pids else []):
        st = status(p)
        print("  (also %s pid %d: Uid %s CapEff %s)" % (comm(p), p, "/".join(st["Uid"]),
                                                        st["CapEff"][0]))


@test(timeout=60)
def test_worker_has_no_root_only_files_open():
    # the TLS private key (root's, mode 0600) is read before the drop and
    # must not stay open in a worker
    pids, _ = workers()
    for p in pids:
        for fd in os.listdir("/proc/%d/fd" % p):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (p, fd))
            except OSError:
                continue
            assert target != D.certs["key"], ("worker holds the TLS key open", p, fd)


if __name__ == "__main__":
    harness.main(setup=setup)
