#!/usr/bin/env python3
"""test_processes.py - the master/worker process model (docs/processes.md).

A real mailaccessd with `workers = 2`: the master forks an auth process
(ma-auth) and two workers (ma-worker), named so in /proc. A worker killed
with -9 is restarted and the sessions on the other worker go on; a crash
loop is slowed down. SIGHUP loads a changed config (a listener added, one
dropped, the kept one still the same socket) while an open IMAP session in
IDLE stays up and is still woken; a broken config is refused with a log
line and the server goes on. IDLE in one worker wakes within a second on
an APPEND made through another worker. SIGTERM gives "* BYE" and "-ERR"
to open sessions and the master exits 0 with no child left; a worker whose
master was killed closes its listeners at once. `workers = 0` is the
single-process mode. Bad `workers` values are config errors.

Run: python3 tests/protocol/test_processes.py [test_name ...]
(MA_BUILD_DIR selects the build.)
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

PW = "Proc pw 5"
USER = "proc@example.com"
D = None


def listeners(extra=()):
    return [dict(name="imap", protocol="imap", tls="none",
                 allow_plaintext_auth=True),
            dict(name="pop3", tls="none", allow_plaintext_auth=True)] + list(extra)


def make(name, workers=2, extra_listeners=()):
    d = harness.Daemon(name, listeners=listeners(extra_listeners),
                       workers=workers, log_level="info")
    d.add_user(USER, PW)
    return d


def setup():
    global D
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap",
                                       "imap.so")):
        raise harness.Skip("imap.so not built")
    D = make("procs")
    D.start()
    wait_for(lambda: len(D.worker_pids()) == 2, 5, "2 workers")


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def session(d, select=True):
    c = d.imap("imap")
    c.login(USER, PW)
    if select:
        c.select()
    return c


def sessions_on_two_workers(d, max_tries=40):
    """Logged-in sessions until at least two workers serve one: returns
    ({pid: [client, ...]}, [all clients])."""
    by_pid, all_c = {}, []
    for _ in range(max_tries):
        c = session(d)
        all_c.append(c)
        pid = d.serving_pid(c.sock)
        assert pid is not None, "no server process holds the session socket"
        by_pid.setdefault(pid, []).append(c)
        if len(by_pid) >= 2 and len(all_c) >= 6:
            return by_pid, all_c
    raise AssertionError("all %d sessions landed on one worker: %r"
                         % (len(all_c), list(by_pid)))


def first_line(sock, timeout=10):
    """What the server sends next, up to its first CRLF (b"" at EOF)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while b"\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    return got


def msg(subject):
    return ("From: a@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n"
            % (USER, subject)).encode()


@test()
def test_process_tree():
    kids = D.children()
    names = sorted(c for _, c in kids)
    assert names == ["ma-auth", "ma-worker", "ma-worker"], kids
    with open(D.pid_path) as f:
        assert int(f.read()) == D.proc.pid, "pid file is not the master's"
    # The master forks: it must never have started a thread.
    tasks = os.listdir("/proc/%d/task" % D.proc.pid)
    assert len(tasks) == 1, "master has %d threads" % len(tasks)
    # The master serves nothing itself: a session is held by a worker.
    c = session(D, select=False)
    try:
        pid = D.serving_pid(c.sock)
        assert pid in D.worker_pids(), "session served by %r, workers %r" % (
            pid, D.worker_pids())
    finally:
        c.logout()
    log = D.log_text()
    assert re.search(r"started, listening on .*, 2 workers", log), log[-2000:]
    for pid, comm in kids:
        role = "auth process" if comm == "ma-auth" else "worker"
        assert "%s %d started" % (role, pid) in log, (role, pid)


@test(timeout=60)
def test_worker_killed_restarted_others_go_on():
    by_pid, all_c = sessions_on_two_workers(D)
    victim, survivor = list(by_pid)[:2]
    before = set(D.worker_pids())
    os.kill(victim, signal.SIGKILL)
    # Sessions of the killed worker are gone...
    for c in by_pid[victim]:
        try:
            st, _ = c.cmd("NOOP")
            raise AssertionError("session on killed worker answered %r" % st)
        except (EOFError, OSError):
            pass
    # ...the others go on, mailbox included.
    D.deliver(USER, msg("after the kill"))
    for pid, cs in by_pid.items():
        if pid == victim:
            continue
        for c in cs:
            st, u = c.ok("NOOP")
            c.ok("FETCH 1:* (FLAGS)")
    new = wait_for(lambda: (set(D.worker_pids()) - before) if
                   len(D.worker_pids()) == 2 else None, 5, "a new worker")
    assert victim not in D.worker_pids()
    log = D.log_text()
    assert "worker %d exited on signal 9" % victim in log, log[-2000:]
    (newpid,) = new
    assert "worker %d started" % newpid in log
    # The new worker serves: sessions until one lands on it.
    got = False
    extra = []
    for _ in range(30):
        c = session(D, select=False)
        extra.append(c)
        if D.serving_pid(c.sock) == newpid:
            c.ok("NOOP")
            got = True
            break
    for c in all_c + extra:
        c.close()
    assert got, "no session landed on the restarted worker %d" % newpid


@test(timeout=60)
def test_crash_loop_is_slowed_down():
    # A worker that dies right after its start is restarted with a
    # growing delay, not at once in a loop.
    pids = set(D.worker_pids())
    victim = min(pids)
    for round_ in range(3):
        os.kill(victim, signal.SIGKILL)
        # Its replacement, killed as soon as it appears (a fast death).
        new = wait_for(lambda: set(D.worker_pids()) - pids
                       if len(D.worker_pids()) == 2 else None, 10,
                       "the replacement of %d" % victim)
        pids = set(D.worker_pids())
        (victim,) = new
    delays = [float(x) for x in
              re.findall(r"after its start, restarting in ([0-9.]+)s",
                         D.log_text())]
    assert len(delays) >= 2, D.log_tail()
    assert delays[-1] > delays[-2] > 0, delays
    # Let the slot forget the fast deaths before other tests kill workers.
    time.sleep(1.1)


@test(timeout=30)
def test_idle_wakes_across_workers():
    by_pid, all_c = sessions_on_two_workers(D)
    a_pid, b_pid = list(by_pid)[:2]
    a, b = by_pid[a_pid][0], by_pid[b_pid][0]
    try:
        n = a.exists
        a.idle_start()
        time.sleep(0.2)
        t0 = time.monotonic()
        b.ok("APPEND INBOX", literal=msg("cross worker"))
        line, seen = a.idle_wait(rb"^\* %d EXISTS" % (n + 1), 5)
        took = time.monotonic() - t0
        assert line, "no EXISTS in IDLE on worker %d after APPEND on %d; saw %r" % (
            a_pid, b_pid, seen)
        assert took < 1.0, "IDLE woke after %.2fs" % took
        a.idle_done()
    finally:
        for c in all_c:
            c.close()


@test(timeout=90)
def test_sighup_reload_keeps_sessions():
    d = make("procs-hup", extra_listeners=[
        dict(name="gone", protocol="imap", tls="none", allow_plaintext_auth=True)])
    d.start()
    try:
        wait_for(lambda: len(d.worker_pids()) == 2, 5, "2 workers")
        old_workers = set(d.worker_pids())
        (old_auth,) = [p for p, c in d.children() if c == "ma-auth"]
        old_sess = session(d)
        served_by = d.serving_pid(old_sess.sock)
        n = old_sess.exists
        old_sess.idle_start()
        gone_port = d.port("gone")
        imap_port = d.port("imap")
        # New config: "gone" dropped, "added" new, a changed limit.
        d.listeners = [l for l in d.listeners if l["name"] != "gone"] + [
            dict(name="added", protocol="pop3", tls="none",
                 allow_plaintext_auth=True)]
        d.ports.pop("gone")
        d.ports["added"] = harness.free_port()
        d.limits["max_connections_per_ip"] = 77
        d.write_config()
        os.kill(d.proc.pid, signal.SIGHUP)
        wait_for(lambda: "configuration reloaded (generation 2)" in d.log_text(),
                 10, "the reload log line")
        log = d.log_text()
        assert "SIGHUP" in log and "Address already in use" not in log, log[-3000:]
        assert d.port("imap") == imap_port
        # New children; the old worker with the open session drains.
        new_workers = wait_for(lambda: set(d.worker_pids()) - old_workers
                               if len(set(d.worker_pids()) - old_workers) == 2
                               else None, 10, "2 new workers")
        assert pid_alive(served_by), "the worker holding the session exited"
        wait_for(lambda: "worker[%d]: info: draining: listeners closed" % served_by
                 in d.log_text(), 5, "the old worker to drain")
        wait_for(lambda: not pid_alive(old_auth), 10, "the old auth process to stop")
        # The added listener answers, the dropped one does not.
        p = harness.Pop3Client(d.port("added"))
        assert p.greeting.startswith(b"+OK"), p.greeting
        p.ok("USER %s" % USER)
        p.ok("PASS %s" % PW)
        p.ok("QUIT")
        try:
            socket.create_connection(("127.0.0.1", gone_port), timeout=2).close()
            raise AssertionError("dropped listener still accepts")
        except ConnectionRefusedError:
            pass
        # New sessions on the kept port are served by the new workers.
        c = session(d, select=False)
        assert d.serving_pid(c.sock) in new_workers
        c.ok("NOOP")
        # The old session in IDLE is still woken (delivery from another
        # process) and still works after DONE.
        d.deliver(USER, msg("during drain"))
        line, seen = old_sess.idle_wait(rb"^\* %d EXISTS" % (n + 1), 5)
        assert line, "old IDLE session not woken after reload; saw %r" % seen
        old_sess.idle_done()
        old_sess.ok("FETCH %d (BODY.PEEK[HEADER.FIELDS (SUBJECT)])" % (n + 1))
        # ...and once it logs out, its old worker exits, not restarted.
        old_sess.logout()
        wait_for(lambda: not pid_alive(served_by), 10, "the drained worker to exit")
        wait_for(lambda: "generation 1 finished" in d.log_text(), 10,
                 "generation 1 finished")
        assert set(d.worker_pids()) == new_workers
        c.logout()
    finally:
        assert d.stop() == 0


@test(timeout=60)
def test_sighup_broken_config_keeps_running():
    before = sorted(D.worker_pids())
    c = session(D)
    with open(D.conf_path) as f:
        good = f.read()
    try:
        with open(D.conf_path, "a") as f:
            f.write("\nworkers_typo = 3\n")
        os.kill(D.proc.pid, signal.SIGHUP)
        wait_for(lambda: re.search(r"SIGHUP: .*workers_typo.*keeping the running "
                                   r"configuration", D.log_text()), 10,
                 "the reload error in the log")
        # workers = 0 cannot be reached by a reload.
        assert "workers = 2\n" in good
        with open(D.conf_path, "w") as f:
            f.write(good.replace("workers = 2\n", "workers = 0\n"))
        os.kill(D.proc.pid, signal.SIGHUP)
        wait_for(lambda: "needs a restart, not a reload" in D.log_text(), 10,
                 "workers = 0 refused at reload")
    finally:
        with open(D.conf_path, "w") as f:
            f.write(good)
    time.sleep(0.3)
    assert D.alive()
    assert sorted(D.worker_pids()) == before, (before, D.worker_pids())
    c.ok("NOOP")
    c.logout()
    c2 = session(D, select=False)
    c2.logout()


@test(timeout=60)
def test_sigterm_ends_sessions_politely():
    d = make("procs-term")
    d.start()
    wait_for(lambda: len(d.worker_pids()) == 2, 5, "2 workers")
    kids = [p for p, _ in d.children()]
    im = session(d)
    po = d.connect("pop3")
    po.ok("USER %s" % USER)
    po.ok("PASS %s" % PW)
    d.proc.send_signal(signal.SIGTERM)
    got = first_line(im.sock)
    assert got.startswith(b"* BYE"), got
    pline = po.readline()
    assert pline.startswith(b"-ERR"), pline
    assert d.stop() == 0
    for p in kids:
        assert not pid_alive(p), "child %d still alive after the master" % p


@test(timeout=60)
def test_master_killed_workers_let_go():
    d = make("procs-orphan")
    d.start()
    wait_for(lambda: len(d.worker_pids()) == 2, 5, "2 workers")
    kids = [p for p, _ in d.children()]
    im = session(d)
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(5)
    # PDEATHSIG: the workers close their listeners at once and end
    # their sessions politely.
    got = first_line(im.sock)
    assert got.startswith(b"* BYE"), got
    wait_for(lambda: not any(pid_alive(p) for p in kids), 10,
             "the orphaned children to exit")
    try:
        socket.create_connection(("127.0.0.1", d.port("imap")), timeout=2).close()
        raise AssertionError("port still accepts after master and workers died")
    except ConnectionRefusedError:
        pass
    # Killed on purpose: not a failed exit for the final check.
    d.proc = None
    d.exit_code = None
    if d._log_fh:
        d._log_fh.close()
        d._log_fh = None


@test(timeout=60)
def test_single_process_mode():
    d = make("procs-single", workers=0)
    d.start()
    try:
        assert d.children() == [], d.children()
        assert "single process" in d.log_text()
        c = session(d)
        assert d.serving_pid(c.sock) == d.proc.pid
        d.deliver(USER, msg("single"))
        c.ok("NOOP")
        c.logout()
    finally:
        assert d.stop() == 0


@test(timeout=60)
def test_workers_config_values():
    d = make("procs-conf", workers=3)
    exe = harness.daemon_path()
    for bad in ("65", "abc", "-1", "2x"):
        d.workers = bad
        d.write_config()
        r = subprocess.run([exe, "-t", "-c", d.conf_path], capture_output=True,
                           timeout=30, env=d.env)
        assert r.returncode == 78, (bad, r.returncode, r.stderr)
        assert b"workers: expected auto or a number from 0 to 64" in r.stderr, r.stderr
        r = d.ctl("config", "check", check=False)
        assert r.returncode == 78, (bad, r.returncode)
    for good in ("auto", "0", "1", "64"):
        d.workers = good
        d.write_config()
        r = subprocess.run([exe, "-t", "-c", d.conf_path], capture_output=True,
                           timeout=30, env=d.env)
        assert r.returncode == 0, (good, r.stderr)
        d.ctl("config", "check")
    d.workers = "auto"
    d.write_config()
    d.start()
    try:
        n = os.sysconf("SC_NPROCESSORS_ONLN")
        wait_for(lambda: len(d.worker_pids()) == min(n, 64), 5,
                 "%d workers (auto)" % n)
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    harness.main(setup=setup)
