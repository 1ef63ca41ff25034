#!/usr/bin/env python3
"""test_slowloris.py - 2,000 concurrent connections, most of them
slow-loris clients, do not stop a normal client from logging in and
reading mail within one second.

The load (asyncio in a thread, so this client scales too) holds 2,000
connections spread over source addresses 127.0.0.2..127.0.0.41 (50 each,
under max_connections_per_ip = 100): half IMAP, half POP3, per protocol
- 300 that trickle "a1 LOGIN loaduser" / "USER loaduser" one byte every
  2-4 s and never send CRLF,
- 200 that send nothing after the greeting,
- 250 on the implicit-TLS port that trickle a ClientHello byte by byte,
- 230 on the implicit-TLS port that send nothing (handshake never starts),
- 20 logged-in sessions that send NOOP now and then;
plus 5 clients per protocol (MA_SLOWLORIS_LOOPERS) that log in, read and
log out in a loop, 1-2 s apart.
Meanwhile a client on 127.0.0.1 does 6 IMAP rounds (connect, LOGIN, SELECT,
FETCH 1 BODY[]) and 6 POP3 rounds (connect, USER, PASS, RETR 1); each round
must finish within 1 s. Figures printed: connections held by the daemon
(socket fds in /proc), worst and median round, daemon RSS.

A second test opens 100 connections from 127.0.0.42 and checks that the
101st is refused and logged (max_connections_per_ip).

The test raises its own RLIMIT_NOFILE before starting the daemon, which
inherits it. Whole file < 90 s.
Run: python3 tests/security/test_slowloris.py [test ...]
"""

import asyncio
import os
import random
import resource
import socket
import ssl
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

USER, PW = "normal@example.com", "normal pw 1"
LOAD, LPW = "load@example.com", "load pw 1"
MSG = b"From: a@example.org\r\nSubject: read me\r\n\r\nThe message body.\r\n"
N_IPS = 40
HELD = 2000
LIMIT_S = 1.0
# Clients per protocol logging in, reading and logging out in a loop, and
# their pause between rounds (env MA_SLOWLORIS_LOOPERS to try more).
LOOPERS = int(os.environ.get("MA_SLOWLORIS_LOOPERS", "5"))
LOOP_PAUSE = (1.0, 2.0)
D = None


def setup():
    global D
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap", "imap.so")):
        raise harness.Skip("imap.so not built")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192
    if hard != resource.RLIM_INFINITY and hard < want:
        raise harness.Skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    D = harness.Daemon("slowloris", log_level="info", listeners=[
        dict(name="imap", protocol="imap", tls="none"),
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="pop3", protocol="pop3", tls="none"),
        dict(name="pop3s", protocol="pop3", tls="implicit"),
    ], limits={"max_connections": 3000, "max_connections_per_ip": 100})
    D.add_user(USER, PW)
    D.add_user(LOAD, LPW)
    # POP3 locks the maildrop: every POP3 session of the load has its own
    # user. They share load@'s password hash (one slow hash, not 40).
    with open(D.users_file) as f:
        line = [l for l in f if l.startswith(LOAD + ":")][0]
    with open(D.users_file, "a") as f:
        for i in range(40):
            f.write(pop_user(i) + line[len(LOAD):])
    D.deliver(USER, MSG)
    D.deliver(LOAD, MSG)
    for i in range(40):
        D.deliver(pop_user(i), MSG)
    D.start()


def pop_user(i):
    return "pop%02d@example.com" % i


def daemon_pids():
    """The master and its children (workers, auth)."""
    pids = [D.proc.pid]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == D.proc.pid:
                        pids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def daemon_sockets():
    n = 0
    for p in daemon_pids():
        for fd in os.listdir("/proc/%d/fd" % p):
            try:
                if os.readlink("/proc/%d/fd/%s" % (p, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
    return n


def daemon_rss_kb():
    total = 0
    for p in daemon_pids():
        with open("/proc/%d/status" % p) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# ------------------------------------------------------------------ load

def partial_hello():
    """The first 200 bytes of a TLS ClientHello (the rest never comes)."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()[:200]


class Load:
    def __init__(self):
        self.stop = None
        self.loop = None
        self.opened = 0
        self.closed_by_server = 0
        self.errors = []       # connections of the 2,000 that could not open
        self.loop_errors = []  # looper rounds that failed
        self.logins = 0
        self.login_fail = 0
        self.ready = threading.Event()
        self.thread = None
        self.hello = partial_hello()

    def ip(self, k):
        return "127.0.0.%d" % (2 + k % N_IPS)

    async def open(self, k, listener, greet):
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", D.port(listener), local_addr=(self.ip(k), 0)), 30)
        if greet:
            line = await asyncio.wait_for(r.readline(), 30)
            if not line:
                raise EOFError("closed before greeting")
        self.opened += 1
        return r, w

    async def watch(self, r):
        """Read until EOF; count a close by the server."""
        try:
            while True:
                d = await r.read(4096)
                if not d:
                    if not self.stop.is_set():
                        self.closed_by_server += 1
                    return
        except (OSError, asyncio.CancelledError):
            return

    async def held(self, k, kind, listener, data, proto, user=LOAD):
        try:
            r, w = await self.open(k, listener, greet=listener in ("imap", "pop3"))
        except Exception as e:
            self.errors.append("%s %s: %r" % (kind, listener, e))
            return
        watcher = asyncio.ensure_future(self.watch(r))
        i = 0
        try:
            if kind == "session":
                if proto == "imap":
                    w.write(b"l1 LOGIN %s \"%s\"\r\n" % (LOAD.encode(), LPW.encode()))
                else:
                    w.write(b"USER %s\r\nPASS %s\r\n" % (user.encode(), LPW.encode()))
            while not self.stop.is_set():
                try:
                    await asyncio.wait_for(self.stop.wait(), random.uniform(2, 4))
                except asyncio.TimeoutError:
                    pass
                if self.stop.is_set() or watcher.done():
                    break
                if kind == "trickle" and i < len(data):
                    w.write(data[i:i + 1])
                    i += 1
                elif kind == "session":
                    w.write(b"n NOOP\r\n" if proto == "imap" else b"NOOP\r\n")
        finally:
            watcher.cancel()
            w.close()

    async def looper(self, k, proto, user=LOAD):
        """Real logins, over and over, until stopped."""
        while not self.stop.is_set():
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", D.port(proto), local_addr=(self.ip(k), 0)), 10)
                await asyncio.wait_for(r.readline(), 10)
                if proto == "imap":
                    script = [(b"a LOGIN %s \"%s\"\r\n" % (LOAD.encode(), LPW.encode()), b"a "),
                              (b"b SELECT INBOX\r\n", b"b "),
                              (b"c FETCH 1 BODY[]\r\n", b"c "),
                              (b"d LOGOUT\r\n", b"d ")]
                else:
                    script = [(b"USER %s\r\n" % user.encode(), b""),
                              (b"PASS %s\r\n" % LPW.encode(), b""),
                              (b"RETR 1\r\n", b"."), (b"QUIT\r\n", b"")]
                ok = True
                for i, (cmd, end) in enumerate(script):
                    w.write(cmd)
                    while True:
                        line = await asyncio.wait_for(r.readline(), 10)
                        if not line:
                            ok = False
                            break
                        if proto == "imap" and line.startswith(end):
                            ok = ok and line[len(end):].startswith(b"OK")
                            break
                        if proto == "pop3" and line.startswith(b"-ERR"):
                            ok = False
                            break
                        if proto == "pop3" and (end == b"" or line.rstrip() == b"."):
                            break
                    if not ok:
                        self.loop_errors.append("%s %r -> %r" % (proto, cmd[:6], line[:80]))
                        break
                if ok:
                    self.logins += 1
                else:
                    self.login_fail += 1
                w.close()
            except Exception as e:
                self.login_fail += 1
                self.loop_errors.append("looper %s: %r" % (proto, e))
            await asyncio.sleep(random.uniform(*LOOP_PAUSE))

    async def main(self):
        self.stop = asyncio.Event()
        tasks = []
        k = 0
        plan = []
        for proto, tlsname, line in (("imap", "imaps", b"a1 LOGIN loaduser"),
                                     ("pop3", "pop3s", b"USER loaduser")):
            plan += [("trickle", proto, line, proto)] * 300
            plan += [("silent", proto, b"", proto)] * 200
            plan += [("trickle", tlsname, self.hello, proto)] * 250
            plan += [("silent", tlsname, b"", proto)] * 230
            plan += [("session", proto, b"", proto)] * 20
        assert len(plan) == HELD, len(plan)
        random.shuffle(plan)
        n_pop = 0
        # open in batches so the accept queue is never the limit
        for i in range(0, len(plan), 100):
            for kind, listener, data, proto in plan[i:i + 100]:
                user = LOAD
                if kind == "session" and proto == "pop3":
                    user = pop_user(20 + n_pop)
                    n_pop += 1
                tasks.append(asyncio.ensure_future(
                    self.held(k, kind, listener, data, proto, user)))
                k += 1
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 30
        while self.opened + len(self.errors) < HELD and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for j in range(LOOPERS):
            tasks.append(asyncio.ensure_future(self.looper(j, "imap")))
            tasks.append(asyncio.ensure_future(self.looper(j + 20, "pop3", pop_user(j))))
        self.ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    def start(self):
        def run():
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(self.main())
            finally:
                self.loop.close()
                self.ready.set()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self):
        if self.loop and self.stop:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


# ----------------------------------------------------------------- probe

PHASES = []  # (protocol, greeting, login, read) seconds of each round


def imap_round():
    t0 = time.monotonic()
    with D.imap("imap") as c:
        t1 = time.monotonic()
        c.login(USER, PW)
        t2 = time.monotonic()
        c.select("INBOX")
        f = c.fetch("1", "BODY[]")
        assert f[1][1][0] == MSG, f
        t3 = time.monotonic()
        c.logout()
    PHASES.append(("imap", t1 - t0, t2 - t1, t3 - t2))
    return t3 - t0


def pop3_round():
    t0 = time.monotonic()
    with D.connect("pop3") as c:
        t1 = time.monotonic()
        c.login(USER, PW)
        t2 = time.monotonic()
        _, body = c.multi("RETR 1")
        assert body == MSG, body
        t3 = time.monotonic()
        c.quit()
    PHASES.append(("pop3", t1 - t0, t2 - t1, t3 - t2))
    return t3 - t0


@test(timeout=80)
def test_normal_client_fast_under_2000_connections():
    base_rss = daemon_rss_kb()
    base = [imap_round(), pop3_round()]
    load = Load()
    t_start = time.monotonic()
    load.start()
    try:
        assert load.ready.wait(45), "load did not come up"
        t_up = time.monotonic() - t_start
        held = daemon_sockets()
        rss = daemon_rss_kb()
        times = []
        for i in range(6):
            times.append(("imap", imap_round()))
            times.append(("pop3", pop3_round()))
            time.sleep(0.5)
        held_end = daemon_sockets()
        rss_end = daemon_rss_kb()
    finally:
        load.finish()
    worst = max(times, key=lambda x: x[1])
    med = statistics.median(t for _, t in times)
    print("  load up in %.1fs: %d opened, %d open errors; daemon sockets %d at start "
          "of probing, %d at end; %d closed by server during the run"
          % (t_up, load.opened, len(load.errors), held, held_end, load.closed_by_server))
    print("  looper rounds (login+read+logout): %d ok, %d failed"
          % (load.logins, load.login_fail))
    print("  normal client (127.0.0.1): unloaded %.3f/%.3f s; under load worst %s %.3f s, "
          "median %.3f s over %d rounds" % (base[0], base[1], worst[0], worst[1], med, len(times)))
    worst_phase = max(PHASES[2:], key=lambda x: x[1] + x[2] + x[3])
    print("  slowest round phases: %s greeting %.3f s, login %.3f s, select+fetch/retr %.3f s"
          % worst_phase)
    print("  daemon RSS: %d kB idle, %d kB under load, %d kB at end"
          % (base_rss, rss, rss_end))
    assert not load.errors, load.errors[:5]
    assert load.opened == HELD, load.opened
    # the daemon itself holds them (listeners + 2,000 connections)
    assert held >= HELD, held
    assert load.logins > 0 and not load.loop_errors, (load.logins, load.loop_errors[:5])
    assert worst[1] < LIMIT_S, ("normal client too slow", times)
    # and it recovers: connections gone, still serving
    deadline = time.monotonic() + 15
    while daemon_sockets() > 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon_sockets() <= 50, daemon_sockets()
    assert imap_round() < LIMIT_S


@test(timeout=40)
def test_per_ip_limit_refuses_101st():
    ip = "127.0.0.42"
    socks = []
    try:
        for i in range(100):
            s = socket.socket()
            s.bind((ip, 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", D.port("pop3")))
            socks.append(s)
            g = s.recv(512)
            assert g.startswith(b"+OK"), (i, g)
        before = D.log_text()
        s = socket.socket()
        s.bind((ip, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", D.port("pop3")))
        try:
            data = s.recv(512)
        except ConnectionResetError:
            data = b""
        s.close()
        assert not data.startswith(b"+OK"), ("101st connection from one IP served", data)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            new = D.log_text()[len(before):]
            if "max_connections_per_ip" in new:
                break
            time.sleep(0.05)
        line = [l for l in new.splitlines() if "max_connections_per_ip" in l]
        assert line and ip in line[0], new[-2000:]
        print("  101st: %r; log: %s" % (data[:60], line[0][:200]))
        # another address is still served
        with D.connect("pop3", host="127.0.0.1") as c:
            assert c.greeting.startswith(b"+OK")
    finally:
        for s in socks:
            s.close()


if __name__ == "__main__":
    harness.main(setup=setup)
