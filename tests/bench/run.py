#!/usr/bin/env python3
"""run.py - mailaccess side by side with Dovecot: one run, one table.

Owns the benchmark of issue 6: it prepares one set of users and one mail
corpus, serves it from three servers on loopback -- a private Dovecot
instance (tests/bench/dovecot/dovecot.conf.in), mailaccessd with the LMDB
store and mailaccessd with the Maildir store -- and drives each row of the
table with ma-loadgen (tests/bench/loadgen) against all three, one after
the other, repetitions interleaved (D L M D L M ...) so that the noise of a
shared machine falls on every server alike. It prints a markdown table and
writes the raw figures to tests/bench/results/<UTC date>.json.

    python3 tests/bench/run.py                   # the full run (~15-20 min)
    python3 tests/bench/run.py --quick           # smoke test, small sizes (< 2 min)
    python3 tests/bench/run.py --only mixed,lmtp # some rows
    python3 tests/bench/run.py --doc docs/performance.md   # also update the doc
    python3 tests/bench/run.py --quick --profile select --profile-store lmdb
                                                 # callgrind of mailaccessd (workers = 0) on one row
    python3 tests/bench/run.py --quick --profile idle-plain --profile-tool massif --profile-clients 500
                                                 # its heap with 500 idle connections

What is measured, per row and server:
  - throughput: ops/s or bytes/s from ma-loadgen's --json;
  - CPU seconds of the whole server (every process, also those that exited
    during the run): a cgroup (v1 cpuacct, or v2) per server, read before
    and after; without a writable cgroup the process tree's
    utime+stime+cutime+cstime from /proc;
  - peak RSS and peak PSS summed over the server's processes, sampled every
    100 ms. RSS counts a page shared by N processes N times (Dovecot's many
    processes share libraries and code); PSS divides it among them, so
    PSS is the fairer total. For the idle-connection rows the figure is the
    peak while all connections are held (after a settling time longer than
    Dovecot's imap_hibernate_timeout), not during the ramp. Dovecot holds
    fewer of them (idle_conns_dovecot: its ~25-30 ms of CPU per login
    makes 10,000 take too long on this machine); the ratio of those rows
    compares (RSS held - RSS before) per connection.

Run as root: it starts Dovecot (which drops to its own users), makes
cgroups, and raises fs.inotify.max_user_instances for the run (restored
at the end; Dovecot needs one inotify instance per IDLE client).

Everything listens on 127.0.0.1 only. Every process started here (servers,
ma-loadgen) is stopped at the end, also on errors and Ctrl-C. Stdlib only.
"""

import argparse
import base64
import datetime
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

PASSWORD = "bench-Pass-7"
NEEDLE = "zebraneedle"
DOVECOT_UID = 5000           # mail uid of the Dovecot instance (no passwd entry needed)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NOFILE = 200000              # fd limit for servers and ma-loadgen (10k connections)
# SHA512-CRYPT rounds of the bench users: glibc's and `doveadm pw`'s
# default. mailaccessctl's default (50000) costs ~30 ms of CPU per login
# here, so the 10,000 logins of an idle row would take minutes per server;
# both servers check the very same hashes either way.
HASH_ROUNDS = 5000

STORES = ("dovecot", "lmdb", "maildir")
LABEL = {"dovecot": "Dovecot", "lmdb": "mailaccess-lmdb", "maildir": "mailaccess-maildir"}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def raise_nofile():
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------ build & tools

def is_release(build):
    """(release?, why not): no sanitizer, optimised."""
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            opts = {o["name"]: o.get("value") for o in json.load(f)}
    except (OSError, ValueError):
        return False, "no meson-info"
    if opts.get("b_sanitize") not in ("none", "", None):
        return False, "sanitizers: %s" % opts.get("b_sanitize")
    if opts.get("buildtype") not in ("release", "debugoptimized") and \
            opts.get("optimization") not in ("2", "3"):
        return False, "buildtype %s" % opts.get("buildtype")
    return True, opts.get("buildtype")


def pick_build(arg):
    cands = [arg] if arg else [os.path.join(ROOT, "build-bench"),
                               os.path.join(ROOT, "build-benchrun")]
    for c in cands:
        if c and os.path.exists(os.path.join(c, "core", "mailaccessd")):
            ok, why = is_release(c)
            if ok:
                return os.path.abspath(c)
            log("skipping %s: not a release build (%s)" % (c, why))
    sys.exit("no release build with core/mailaccessd (run tests/bench/run.sh, "
             "or: meson setup build-benchrun --buildtype=release && ninja -C build-benchrun)")


def pick_loadgen(arg, build):
    cands = [arg] if arg else [
        os.path.join(build, "tests", "bench", "ma-loadgen"),
        os.path.join(build, "tests", "bench", "loadgen", "ma-loadgen"),
        os.path.join(ROOT, "build-bench", "tests", "bench", "ma-loadgen"),
        os.path.join(ROOT, "build-bench", "tests", "bench", "loadgen", "ma-loadgen")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("ma-loadgen not found (tried %s); build tests/bench first" % ", ".join(c for c in cands if c))


# ------------------------------------------------------------- accounting

class ProcGroup:
    """The processes of one server: a cgroup when one can be made (CPU of
    exited processes included), else the process tree under the main pid."""

    def __init__(self, name):
        self.name = name
        self.path = None
        self.kind = None
        self.main = None
        base = "benchrun-%d-%s" % (os.getpid(), name)
        for kind, root in (("v1", "/sys/fs/cgroup/cpuacct"), ("v2", "/sys/fs/cgroup/unified"),
                           ("v2", "/sys/fs/cgroup")):
            if kind == "v1" and not os.path.exists(os.path.join(root, "cpuacct.stat")):
                continue
            if kind == "v2" and not os.path.exists(os.path.join(root, "cgroup.controllers")):
                continue
            p = os.path.join(root, base)
            try:
                os.mkdir(p)
                # v2: a process can join only a leaf without internal-process
                # trouble; cpu.stat exists in every v2 group.
                open(os.path.join(p, "cgroup.procs")).close()
                self.path, self.kind = p, kind
                break
            except OSError:
                try:
                    os.rmdir(p)
                except OSError:
                    pass

    def preexec(self):
        """In the child before exec: join the cgroup, raise the fd limit."""
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write("0")
        raise_nofile()
        os.setsid()

    def pids(self):
        if self.path:
            try:
                with open(os.path.join(self.path, "cgroup.procs")) as f:
                    return [int(x) for x in f.read().split()]
            except OSError:
                return []
        return self._tree()

    def _tree(self):
        if not self.main:
            return []
        kids = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                ppid = int(s[s.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                continue
        out, todo = [], [self.main]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    def cpu(self):
        """(user s, system s) consumed so far by the group."""
        if self.path and self.kind == "v1":
            with open(os.path.join(self.path, "cpuacct.stat")) as f:
                v = dict(l.split() for l in f)
            return int(v["user"]) / CLK_TCK, int(v["system"]) / CLK_TCK
        if self.path:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                v = dict(l.split() for l in f)
            return int(v["user_usec"]) / 1e6, int(v["system_usec"]) / 1e6
        u = s = 0.0
        for p in self._tree():
            try:
                with open("/proc/%d/stat" % p) as f:
                    st = f.read()
                x = st[st.rindex(")") + 2:].split()
                u += (int(x[11]) + int(x[13])) / CLK_TCK
                s += (int(x[12]) + int(x[14])) / CLK_TCK
            except (OSError, ValueError, IndexError):
                continue
        return u, s

    def kill_all(self, sig=signal.SIGKILL):
        for p in self.pids():
            try:
                os.kill(p, sig)
            except OSError:
                pass

    def destroy(self):
        if not self.path:
            return
        for _ in range(50):
            if not self.pids():
                break
            self.kill_all()
            time.sleep(0.1)
        try:
            os.rmdir(self.path)
        except OSError as e:
            log("cannot remove cgroup %s: %s" % (self.path, e))
        self.path = None


def mem_of(pid, with_pss):
    """(rss bytes, pss bytes) of one process; pss None unless asked."""
    rss = pss = None
    try:
        with open("/proc/%d/statm" % pid) as f:
            rss = int(f.read().split()[1]) * PAGE
        if with_pss:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for l in f:
                    if l.startswith("Pss:"):
                        pss = int(l.split()[1]) * 1024
                        break
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


class MemSampler(threading.Thread):
    """Sums RSS (and PSS) over a ProcGroup every `interval` seconds."""

    def __init__(self, group, interval=0.1):
        super().__init__(daemon=True)
        self.group = group
        self.interval = interval
        self.samples = []   # (t, rss, pss, nprocs)
        self.stop_ev = threading.Event()

    def run(self):
        n = 0
        while not self.stop_ev.is_set():
            pids = self.group.pids()
            # smaps_rollup walks every mapping: with thousands of processes
            # (Dovecot's ramp) take PSS every 10th sample only.
            with_pss = len(pids) < 200 or n % 10 == 0
            rss = pss = 0
            for p in pids:
                r, s = mem_of(p, with_pss)
                rss += r or 0
                pss += s or 0
            self.samples.append((time.monotonic(), rss, pss if with_pss else None, len(pids)))
            n += 1
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.join(10)

    def peak(self, t0=None, t1=None):
        rss = [s[1] for s in self.samples if (t0 is None or s[0] >= t0) and (t1 is None or s[0] <= t1)]
        pss = [s[2] for s in self.samples if s[2] is not None
               and (t0 is None or s[0] >= t0) and (t1 is None or s[0] <= t1)]
        procs = [s[3] for s in self.samples if (t0 is None or s[0] >= t0) and (t1 is None or s[0] <= t1)]
        return (max(rss) if rss else None, max(pss) if pss else None, max(procs) if procs else None)


# ------------------------------------------------------------------ corpus

WORDS = ("the of and to in is that for it as was with be by on not he this are or his "
         "from at which but have an they you were her she there been one all we their "
         "has would when if so no will more about up out who them what some could into "
         "than then other time only new these two may first any like now my such over "
         "meeting invoice report quarter budget server release patch review deadline "
         "customer contract shipment schedule backup storage network latency outage "
         "kernel mailbox delivery password account travel lunch agenda minutes draft").split()

NAMES = ("Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia "
         "Peggy Rupert Sybil Trent Victor Walter Yvonne").split()


def text_block(rng, nbytes, needle=False):
    out, size, line = [], 0, []
    ll = 0
    while size < nbytes:
        w = rng.choice(WORDS)
        line.append(w)
        ll += len(w) + 1
        if ll > 66 or rng.random() < 0.02:
            s = " ".join(line) + ("." if rng.random() < 0.5 else ",")
            out.append(s)
            size += len(s) + 1
            line, ll = [], 0
            if rng.random() < 0.1:
                out.append("")
                size += 1
    if needle:
        out.insert(len(out) // 2, "The secret word is %s, do not forget it." % NEEDLE)
    return "\n".join(out) + "\n"


def pick_size(rng, cap):
    """A message size drawn from a mix like a real mailbox: mostly small
    text mails, some with attachments, a few large ones."""
    r = rng.random()
    if r < 0.40:
        s = rng.randint(1200, 4000)
    elif r < 0.75:
        s = rng.randint(4000, 16000)
    elif r < 0.90:
        s = rng.randint(16000, 64000)
    elif r < 0.98:
        s = rng.randint(64000, 256000)
    else:
        s = rng.randint(256000, 1000000)
    return min(s, cap)


def make_message(rng, uid, rcpt, size, needle=False):
    """One RFC 5322 message with LF line ends, about `size` bytes: plain
    text up to 16 kB, multipart/mixed with a base64 attachment above."""
    a = rng.choice(NAMES)
    day = 1 + uid % 28
    subj = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
    hdr = ("Return-Path: <%s@example.org>\n"
           "Received: from mx.example.org (mx.example.org [192.0.2.%d])\n"
           "\tby mail.example.com with ESMTPS id %08X\n"
           "\tfor <%s>; Mon, %d Jan 2024 10:%02d:%02d +0000\n"
           "From: %s <%s@example.org>\n"
           "To: %s\n"
           "Subject: %s\n"
           "Date: Mon, %d Jan 2024 10:%02d:%02d +0000\n"
           "Message-ID: <%08x.%d@example.org>\n"
           "MIME-Version: 1.0\n"
           % (a.lower(), uid % 250 + 1, rng.getrandbits(32), rcpt, day, uid % 60, uid % 59,
              a, a.lower(), rcpt, subj, day, uid % 60, uid % 59, rng.getrandbits(32), uid))
    if size <= 16000:
        body = text_block(rng, max(200, size - len(hdr) - 60), needle)
        return (hdr + "Content-Type: text/plain; charset=us-ascii\n\n" + body).encode()
    bnd = "=_bench_%08x" % rng.getrandbits(32)
    text = text_block(rng, 1500, needle)
    raw_len = max(1000, (size - len(hdr) - len(text) - 400) * 3 // 4)
    raw = rng.randbytes(raw_len)
    b64 = base64.encodebytes(raw).decode()
    return (hdr + 'Content-Type: multipart/mixed; boundary="%s"\n\n'
            "This is a multi-part message in MIME format.\n\n"
            "--%s\nContent-Type: text/plain; charset=us-ascii\n\n%s\n"
            "--%s\nContent-Type: application/octet-stream; name=\"file%d.bin\"\n"
            "Content-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"file%d.bin\"\n\n%s\n"
            "--%s--\n" % (bnd, bnd, text, bnd, uid, uid, b64, bnd)).encode()


def big_message(rng, uid, rcpt, size):
    """A message of exactly about `size` bytes (POP3 RETR rows)."""
    return make_message(rng, uid, rcpt, size)


def maildir_flags(rng):
    r = rng.random()
    if r < 0.7:
        return "S"
    if r < 0.8:
        return "FS"
    if r < 0.9:
        return "RS"
    return ""


class Corpus:
    """The users and the mail every server gets, generated once into a
    Maildir tree (written directly, the fastest way to make it)."""

    def __init__(self, root, cfg):
        self.root = root
        self.cfg = cfg

    def user_lists(self):
        c = self.cfg
        mixed = ["user%d@example.com" % i for i in range(1, c["users"] + 1)]
        pop = ["pop%d@example.com" % i for i in range(1, c["pop_users"] + 1)]
        lmtp = ["lmtp%d@example.com" % i for i in range(1, c["lmtp_users"] + 1)]
        return mixed, pop, lmtp, ["big@example.com"]

    def all_users(self):
        m, p, l, b = self.user_lists()
        return m + p + l + b

    def write(self):
        rng = random.Random(20261122)
        mixed, pop, lmtp, big = self.user_lists()
        t0 = time.monotonic()
        nmsg = nbytes = 0
        stamp = 1700000000
        for u in self.all_users():
            for d in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(self.root, u, d), exist_ok=True)

        def put(user, i, data, flags):
            nonlocal nmsg, nbytes
            vsize = len(data) + data.count(b"\n")
            name = "%d.M%dP%d.benchrun,S=%d,W=%d:2,%s" % (stamp + i, i, 1, len(data), vsize, flags)
            with open(os.path.join(self.root, user, "cur", name), "wb") as f:
                f.write(data)
            os.utime(os.path.join(self.root, user, "cur", name), (stamp + i, stamp + i))
            nmsg += 1
            nbytes += len(data)

        for u in mixed:
            for i in range(self.cfg["msgs_per_user"]):
                put(u, i, make_message(rng, i, u, pick_size(rng, self.cfg["size_cap"])),
                    maildir_flags(rng))
        for u in pop:
            put(u, 0, big_message(rng, 0, u, 1 << 20), "")
            put(u, 1, big_message(rng, 1, u, 10 << 20), "")
        nbig = self.cfg["big_msgs"]
        for i in range(nbig):
            # mailing-list sized mail, a needle in every 10,000th (at least 3)
            needle = i % max(1, min(10000, nbig // 3)) == 7
            put("big@example.com", i,
                make_message(rng, i, "big@example.com", rng.randint(800, 4000), needle),
                maildir_flags(rng))
        self.needles = sum(1 for i in range(nbig) if i % max(1, min(10000, nbig // 3)) == 7)
        log("corpus: %d messages, %.1f MB, %d users, in %.1f s"
            % (nmsg, nbytes / 1e6, len(self.all_users()), time.monotonic() - t0))
        return dict(messages=nmsg, bytes=nbytes, users=len(self.all_users()),
                    big_msgs=nbig, needles=self.needles)

    def messages(self, user):
        """(bytes, maildir flags) of a user's mail, in file-name order."""
        cur = os.path.join(self.root, user, "cur")
        names = sorted(os.listdir(cur), key=lambda n: int(n.split(".")[0]))
        for n in names:
            with open(os.path.join(cur, n), "rb") as f:
                yield f.read(), n.rsplit(":2,", 1)[1]


# ----------------------------------------------------------- tiny clients

def wait_port(port, timeout=30, proc=None):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.settimeout(5)
            g = s.recv(512)
            s.close()
            if g:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("port %d does not answer" % port)


class Imap:
    """Just enough IMAP for loading and warming: tagged commands, literals
    sent pipelined with LITERAL+ when the server has it."""

    def __init__(self, port, timeout=600):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.n = 0
        self.line()

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def cmd(self, text):
        self.n += 1
        tag = b"w%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            ln = self.line()
            m = re.search(rb"\{(\d+)\}$", ln)
            if m:   # skip a literal in the response
                need = int(m.group(1))
                while len(self.buf) < need:
                    d = self.s.recv(1 << 20)
                    if not d:
                        raise EOFError("connection closed")
                    self.buf += d
                del self.buf[:need]
            if ln.startswith(tag + b" "):
                if not ln[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError("%s -> %r" % (text[:60], ln))
                return lines
            lines.append(ln)

    def append_many(self, mailbox, msgs, window=500):
        """APPEND every (bytes, maildir flags), pipelined; returns count."""
        caps = b" ".join(self.cmd("CAPABILITY")).upper()
        plus = b"LITERAL+" in caps
        fl = {"S": "\\Seen", "F": "\\Flagged", "R": "\\Answered", "T": "\\Deleted", "D": "\\Draft"}
        sent = done = 0
        pending = []
        err = []
        if not plus:
            for data, flags in msgs:
                data = data.replace(b"\n", b"\r\n")
                self.n += 1
                f = " ".join(fl[c] for c in flags if c in fl)
                self.s.sendall(b"a%d APPEND %s (%s) {%d}\r\n" % (self.n, mailbox.encode(), f.encode(), len(data)))
                ln = self.line()
                if not ln.startswith(b"+"):
                    raise RuntimeError("APPEND: %r" % ln)
                self.s.sendall(data + b"\r\n")
                while True:
                    ln = self.line()
                    if ln.startswith(b"a%d " % self.n):
                        if b" OK" not in ln:
                            raise RuntimeError("APPEND: %r" % ln)
                        break
                done += 1
            return done
        sem = threading.Semaphore(window)

        def reader():
            nonlocal done
            try:
                while True:
                    ln = self.line()
                    if ln.startswith(b"a"):
                        if b" OK" not in ln:
                            raise RuntimeError("APPEND: %r" % ln)
                        done += 1
                        sem.release()
                    elif ln.startswith(b"E "):
                        return
            except Exception as e:   # noqa: BLE001 - reported below
                err.append(e)
                for _ in range(window):
                    sem.release()

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        chunk, size = [], 0
        for data, flags in msgs:
            sem.acquire()
            if err:
                break
            data = data.replace(b"\n", b"\r\n")
            f = " ".join(fl[c] for c in flags if c in fl)
            sent += 1
            chunk.append(b"a%d APPEND %s (%s) {%d+}\r\n" % (sent, mailbox.encode(), f.encode(), len(data))
                         + data + b"\r\n")
            size += len(chunk[-1])
            if size > 256 * 1024:
                self.s.sendall(b"".join(chunk))
                chunk, size = [], 0
        chunk.append(b"E NOOP\r\n")
        self.s.sendall(b"".join(chunk))
        th.join()
        if err:
            raise err[0]
        if done != sent:
            raise RuntimeError("APPEND: %d of %d acknowledged" % (done, sent))
        return done

    def close(self):
        try:
            self.s.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.s.close()


# ----------------------------------------------------------------- servers

class Server:
    def __init__(self, store, workdir):
        self.store = store
        self.label = LABEL[store]
        self.dir = os.path.join(workdir, store)
        os.makedirs(self.dir, exist_ok=True)
        self.ports = {k: free_port() for k in ("imap", "imaps", "pop3", "lmtp")}
        self.proc = None
        self.group = None
        self.log_path = os.path.join(self.dir, "server.log")
        self.starts = 0

    def start(self):
        self.group = ProcGroup(self.store + str(self.starts))
        self.starts += 1
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, preexec_fn=self.group.preexec, cwd=self.dir)
        logf.close()
        self.group.main = self.proc.pid
        self.accounting = "cgroup " + self.group.kind if self.group.path else "/proc tree"
        for k in ("imap", "pop3", "lmtp"):
            wait_port(self.ports[k], 60, self.proc)

    def stop(self, timeout=15):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s: no exit after SIGTERM, killing" % self.label)
                self.proc.kill()
                self.proc.wait(5)
        if self.group:
            self.group.destroy()
            self.group = None
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def log_tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


INOTIFY = "/proc/sys/fs/inotify/max_user_instances"


def raise_inotify(conns):
    """Dovecot keeps one inotify instance per IDLE client (also once
    hibernated), all under the one mail uid; the kernel's default of 128
    per uid stops hibernation after ~128 clients ("Inotify instance limit
    for user UID 5000 exceeded"). An admin serving 10,000 IDLE clients
    raises it; so does this run, and puts the old value back at the end.
    Returns the old value (None if unchanged)."""
    try:
        with open(INOTIFY) as f:
            old = int(f.read())
        want = 2 * conns + 1024
        if old >= want:
            return None
        with open(INOTIFY, "w") as f:
            f.write(str(want))
        log("fs.inotify.max_user_instances %d -> %d for this run" % (old, want))
        return old
    except (OSError, ValueError) as e:
        log("cannot raise fs.inotify.max_user_instances (%s): Dovecot will not hibernate "
            "more than ~128 IDLE clients" % e)
        return None


def restore_inotify(old):
    if old is not None:
        with open(INOTIFY, "w") as f:
            f.write(str(old))
        log("fs.inotify.max_user_instances back to %d" % old)


def grp_gid(name):
    import grp
    return grp.getgrnam(name).gr_gid


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Dovecot(Server):
    def __init__(self, workdir, certs, users_file, mail_root):
        super().__init__("dovecot", workdir)
        self.mail_root = mail_root
        for d in ("base", "state"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.passwd = os.path.join(self.dir, "passwd")
        with open(users_file) as f, open(self.passwd, "w") as out:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                user, pw = line.split(":", 2)[:2]
                out.write("%s:%s:%d:%d::%s::\n" % (user, pw, DOVECOT_UID, DOVECOT_UID,
                                                    os.path.join(mail_root, user)))
        os.chown(self.passwd, 0, grp_gid("dovecot"))
        os.chmod(self.passwd, 0o640)
        dh = "/usr/share/dovecot/dh.pem"
        subst = dict(BASE_DIR=os.path.join(self.dir, "base"), STATE_DIR=os.path.join(self.dir, "state"),
                     LOG=self.log_path, CERT=certs["cert"], KEY=certs["key"], DH=dh,
                     PASSWD=self.passwd, UID=str(DOVECOT_UID),
                     IMAP_PORT=str(self.ports["imap"]), IMAPS_PORT=str(self.ports["imaps"]),
                     POP3_PORT=str(self.ports["pop3"]), LMTP_PORT=str(self.ports["lmtp"]))
        with open(os.path.join(HERE, "dovecot", "dovecot.conf.in")) as f:
            text = f.read()
        for k, v in subst.items():
            text = text.replace("@%s@" % k, v)
        live = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        if re.search(r"@[A-Z0-9_]+@", live):
            raise RuntimeError("unreplaced @NAME@ in dovecot.conf.in")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        r = subprocess.run(["doveconf", "-c", self.conf, "-n"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("doveconf -n: %s" % r.stderr.decode(errors="replace"))
        self.doveconf_warnings = [l for l in r.stderr.decode(errors="replace").splitlines() if l.strip()]
        for w in self.doveconf_warnings:
            log("doveconf: %s" % w)
        with open(os.path.join(self.dir, "doveconf-n.txt"), "wb") as f:
            f.write(r.stdout)

    def command(self):
        return ["dovecot", "-F", "-c", self.conf]


class MailAccess(Server):
    def __init__(self, store, workdir, build, certs, users_file, store_path, workers,
                 limits_extra=None):
        super().__init__(store, workdir)
        self.build = build
        self.store_path = store_path
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        self.conf = os.path.join(self.dir, "mailaccess.conf")
        write_ma_config(self.conf, build, self.dir, certs, users_file, store, store_path,
                        self.ports, workers, limits_extra=limits_extra)

    def command(self):
        return [os.path.join(self.build, "core", "mailaccessd"), "-c", self.conf]


PLUGINS = {"pop3.so": ("proto-pop3",), "imap.so": ("proto-imap",),
           "lmtp.so": ("plugins", "lmtp"),
           "store-lmdb.so": ("backends", "lmdb"), "store-maildir.so": ("backends", "maildir"),
           "auth-passwd.so": ("plugins", "auth-passwd")}


def make_plugin_dir(build, dest):
    os.makedirs(dest, mode=0o755, exist_ok=True)
    for name, sub in PLUGINS.items():
        src = os.path.join(build, *sub, name)
        if os.path.exists(src) and not os.path.lexists(os.path.join(dest, name)):
            os.symlink(src, os.path.join(dest, name))
    return dest


def write_ma_config(path, build, d, certs, users_file, store, store_path, ports, workers,
                    rounds=None, limits_extra=None):
    c = ["# written by tests/bench/run.py: the equivalent of tests/bench/dovecot/dovecot.conf.in",
         "plugin_dir = %s" % make_plugin_dir(build, os.path.join(d, "plugins")),
         "state_dir = %s" % os.path.join(d, "state"),
         "log = stderr",
         "log_level = info"]
    if workers:
        c.append("workers = %s" % workers)
    c += ["", "tls {", "  cert = %s" % certs["cert"], "  key = %s" % certs["key"], "}"]
    for name, proto, tls in (("imap", "imap", "none"), ("imaps", "imap", "implicit"),
                             ("pop3", "pop3", "none"), ("lmtp", "lmtp", "none")):
        c += ["", "listener %s {" % name, "  protocol = %s" % proto, "  address = 127.0.0.1",
              "  port = %d" % ports[name], "  tls = %s" % tls, "}"]
    c += ["", "store {", "  backend = %s" % store, "  path = %s" % store_path]
    if store == "maildir":
        c.append("  fsync = yes")
    c += ["}", "", "auth passwd {", "  file = %s" % users_file, "  scheme = SHA512-CRYPT"]
    if rounds:
        c.append("  rounds = %d" % rounds)
    c += ["}",
          "", "limits {",
          "  max_connections = 25000",
          "  max_connections_per_ip = 25000",
          "  idle_timeout = 30m",
          "  auth_fail_lockout = 0"]
    for k, v in (limits_extra or {}).items():
        c.append("  %s = %s" % (k, v))
    c += ["}", "",
          "pop3 {", "  uidl_format = dovecot", "}", "",
          # Dovecot creates no folders at login: neither do we here.
          "imap {", "  autocreate = \"\"", "}"]
    with open(path, "w") as f:
        f.write("\n".join(c) + "\n")


# mailaccess settings beyond the config above: every worker (one per CPU),
# server-wide limits sized for the 10,000-connection rows, and no
# per-session command rate: the single-operation rows loop one command as
# fast as the server answers (a real client does not), and Dovecot has no
# such limit.
BENCH_WORKERS = "auto"
BENCH_LIMITS = {"max_sessions_per_user": "25000", "auth_max_pending": "25000",
                "commands_per_second": "0"}


def ma_bench_settings():
    """(workers, {limits key: value}) for the mailaccessd under test."""
    return BENCH_WORKERS, dict(BENCH_LIMITS)


# ------------------------------------------------------------------- rows

def row_defs(cfg):
    """Every row: loadgen mode and options, which port, what is the figure."""
    d, w, reps = cfg["duration"], cfg["warmup"], cfg["reps"]
    n = cfg["big_msgs"]
    nk = "%dk" % (n // 1000) if n >= 1000 else str(n)
    conns = cfg["idle_conns"]
    ck = "%dk" % (conns // 1000) if conns >= 1000 else str(conns)
    mixed_users = "user%d@example.com"
    return [
        dict(key="mixed", title="IMAP mixed load, %d clients" % cfg["mixed_clients"], mode="imap-mixed",
             port="imap", users_fmt=mixed_users, users=cfg["users"], clients=cfg["mixed_clients"],
             duration=cfg["dur_mixed"], warmup=w, reps=reps, metric="ops_per_sec", unit="ops/s",
             target=("ratio_min", 2.0, "at least 2x Dovecot's ops/s")),
        dict(key="idle-plain", title="%s idle IMAP connections (IDLE), plaintext" % ck,
             mode="imap-idle-conns", port="imap", users_fmt=mixed_users, users=cfg["users"],
             extra=["--conns", str(conns), "--rate", str(cfg["idle_rate"]),
                    "--hold", str(cfg["idle_hold"]), "--source-ips", "127.0.0.2-127.0.0.41"],
             reps=1, metric="hold_rss", unit="MB RSS", restart=True,
             target=("max_abs", 200e6, "at most 200 MB RSS for the whole server")),
        dict(key="idle-tls", title="%s idle IMAP connections (IDLE), TLS" % ck,
             mode="imap-idle-conns", port="imaps", tls=True, users_fmt=mixed_users, users=cfg["users"],
             extra=["--conns", str(conns), "--rate", str(cfg["idle_rate_tls"]),
                    "--hold", str(cfg["idle_hold"]), "--source-ips", "127.0.0.2-127.0.0.41"],
             reps=1, metric="hold_rss", unit="MB RSS", restart=True,
             target=("max_abs", 200e6, "at most 200 MB RSS for the whole server")),
        dict(key="pop3-1m", title="POP3 RETR 1 MB, 1 client, plaintext", mode="pop3-retr", port="pop3",
             users_fmt="pop%d@example.com", users=1, clients=1, extra=["--msg", "1"],
             duration=cfg["dur_pop3"], warmup=w, reps=reps, metric="bytes_per_sec", unit="MB/s",
             target=None),
        dict(key="pop3-10m", title="POP3 RETR 10 MB, 1 client, plaintext", mode="pop3-retr", port="pop3",
             users_fmt="pop%d@example.com", users=1, clients=1, extra=["--msg", "2"],
             duration=cfg["dur_pop3"], warmup=w, reps=reps, metric="bytes_per_sec", unit="MB/s",
             target=("min_abs", 1e9, "at least 1 GB/s")),
        dict(key="lmtp", title="LMTP deliveries, %d clients, 10 kB, durable" % cfg["lmtp_clients"],
             mode="lmtp", port="lmtp", users_fmt="lmtp%d@example.com", users=cfg["lmtp_users"],
             clients=cfg["lmtp_clients"], extra=["--size", "10240"],
             duration=cfg["dur_lmtp"], warmup=w, reps=reps, metric="ops_per_sec", unit="msg/s",
             target=("ratio_min", 2.0, "at least 2x Dovecot's deliveries/s")),
        dict(key="select", title="SELECT INBOX of %s messages (warm)" % nk, mode="imap-select",
             port="imap", users_fmt="big@example.com", users=1, clients=1, extra=["--mailbox", "INBOX"],
             duration=d, warmup=w, reps=reps, metric="ops_per_sec", unit="ops/s",
             target=("ratio_gt", 1.0, "faster than Dovecot (warm indexes)")),
        dict(key="fetch-flags", title="FETCH 1:* (UID FLAGS) on %s" % nk, mode="imap-fetch-flags",
             port="imap", users_fmt="big@example.com", users=1, clients=1,
             duration=d, warmup=w, reps=reps, metric="ops_per_sec", unit="ops/s", target=None),
        dict(key="search-text", title="SEARCH TEXT on %s" % nk, mode="imap-search-text",
             port="imap", users_fmt="big@example.com", users=1, clients=1,
             extra=["--text", NEEDLE, "--count", str(cfg["search_count"])],
             duration=0, warmup=0, reps=reps, metric="ops_per_sec", unit="ops/s", target=None),
    ]


def run_loadgen(lg, row, server, cfg):
    """One ma-loadgen run against one server, with its CPU and memory."""
    cmd = [lg, row["mode"], "--host", "127.0.0.1", "--port", str(server.ports[row["port"]]),
           "--users-fmt", row["users_fmt"], "--users", str(row["users"]), "--password", PASSWORD,
           "--timeout", str(cfg["op_timeout"]), "--json"]
    if row.get("tls"):
        cmd.append("--tls")
    if row["mode"] != "imap-idle-conns":
        cmd += ["--clients", str(row["clients"]), "--duration", str(row["duration"]),
                "--warmup", str(row["warmup"])]
    extra = list(row.get("extra", []))
    if row["mode"] == "imap-idle-conns" and server.store == "dovecot":
        # Dovecot spends ~25-30 ms of CPU per login here (fork+exec of an
        # imap process, auth, hibernation): open its connections no faster
        # than it can log them in, or the queue would time out.
        extra[extra.index("--rate") + 1] = str(cfg["idle_rate_dovecot_tls" if row.get("tls")
                                                   else "idle_rate_dovecot"])
        extra[extra.index("--conns") + 1] = str(cfg["idle_conns_dovecot"])
    cmd += extra
    group = server.group
    sampler = MemSampler(group)
    sampler.start()
    time.sleep(0.15)
    cpu0 = group.cpu()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=raise_nofile)
    hold = {}
    errlines = []

    def read_err():
        for ln in p.stderr:
            s = ln.decode(errors="replace").rstrip()
            if s.startswith("HOLDING") and "t" not in hold:
                hold["t"] = time.monotonic()
                hold["line"] = s
            if len(errlines) < 200:
                errlines.append(s)

    outbuf = []

    def read_out():
        outbuf.append(p.stdout.read())

    th = threading.Thread(target=read_err, daemon=True)
    th.start()
    th2 = threading.Thread(target=read_out, daemon=True)
    th2.start()
    limit = row.get("duration", 0) + row.get("warmup", 0) + cfg["op_timeout"] + 120
    if row["mode"] == "imap-idle-conns":
        cmd[cmd.index("--timeout") + 1] = "300"
    if "--count" in row.get("extra", []):
        limit += cfg["op_timeout"] * int(row["extra"][row["extra"].index("--count") + 1])
    if row["mode"] == "imap-idle-conns":
        limit = max(cfg["idle_conns"] / cfg["idle_rate_tls"],
                    cfg["idle_conns_dovecot"] / cfg["idle_rate_dovecot_tls"]) + cfg["idle_hold"] + 400
    try:
        p.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        log("%s %s: ma-loadgen timed out after %ds" % (row["key"], server.label, limit))
    th.join(5)
    th2.join(5)
    out = outbuf[0] if outbuf else b""
    t1 = time.monotonic()
    cpu1 = group.cpu()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.stop()
    res = None
    for ln in reversed(out.decode(errors="replace").splitlines()):
        if ln.startswith("{"):
            try:
                res = json.loads(ln)
                break
            except ValueError:
                pass
    rss, pss, nproc = sampler.peak()
    base_rss = sampler.samples[0][1] if sampler.samples else None
    conns = int(extra[extra.index("--conns") + 1]) if "--conns" in extra else None
    r = dict(server=server.store, exit=p.returncode, wall=t1 - t0, loadgen=res, conns=conns,
             cpu_user=cpu1[0] - cpu0[0], cpu_sys=cpu1[1] - cpu0[1],
             cpu=(cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1]),
             loadgen_cpu=(ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
             peak_rss=rss, peak_pss=pss, peak_procs=nproc, base_rss=base_rss,
             cmd=" ".join(cmd), stderr_tail=errlines[-8:])
    if row["mode"] == "imap-idle-conns":
        if "t" in hold:
            ts = hold["t"] + cfg["idle_settle"]
            hr, hp, hn = sampler.peak(ts, None)
            r.update(hold_rss=hr, hold_pss=hp, hold_procs=hn, holding=hold["line"])
        else:
            r.update(hold_rss=None, hold_pss=None, holding=None)
    if res is None or p.returncode != 0:
        log("%s %s: ma-loadgen exit %s; stderr: %s" % (row["key"], server.label, p.returncode,
                                                      " | ".join(errlines[-5:])))
    return r


def figure(row, r):
    """The row's number from one run (None when the run failed)."""
    if r is None:
        return None
    if row["metric"] == "hold_rss":
        if not r.get("loadgen") or r["loadgen"].get("established", 0) < 0.99 * r["conns"]:
            return None
        return r.get("hold_rss")
    lg = r.get("loadgen")
    if not lg or r["exit"] not in (0,):
        return None
    return lg.get(row["metric"])


# ----------------------------------------------------------------- output

def fmt_num(v, row):
    if v is None:
        return "failed"
    if row["unit"] == "MB/s":
        return "%.0f MB/s" % (v / 1e6)
    if row["unit"] == "MB RSS":
        return "%.0f MB" % (v / 1e6)
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def summarize(rows, results, stores):
    """Median per row and server, spread, ratios, target verdicts."""
    out = []
    for row in rows:
        runs = results.get(row["key"])
        if not runs:
            continue
        s = dict(key=row["key"], title=row["title"], unit=row["unit"], servers={})
        for st in stores:
            rs = runs.get(st, [])
            figs = [figure(row, r) for r in rs]
            good = [f for f in figs if f is not None]
            med = statistics.median(good) if good else None
            spread = (max(good) - min(good)) / 2 / med * 100 if good and med else None

            def m(k):
                v = [r[k] for r in rs if r.get(k) is not None]
                return statistics.median(v) if v else None
            s["servers"][st] = dict(value=med, runs=figs, spread_pct=spread, cpu=m("cpu"),
                                    peak_rss=m("peak_rss"), peak_pss=m("peak_pss"),
                                    hold_pss=m("hold_pss"), loadgen_cpu=m("loadgen_cpu"),
                                    errors=[(r.get("loadgen") or {}).get("errors") for r in rs])
        if row["metric"] == "hold_rss":
            # the servers may hold different numbers of connections:
            # compare per connection
            # compare the cost per connection: RSS while held minus the
            # RSS before the run, divided by the connections
            for st in stores:
                rs = [r for r in runs.get(st, []) if r.get("conns")]
                c = rs[0]["conns"] if rs else None
                base = rs[0].get("base_rss") if rs else None
                s["servers"][st]["conns"] = c
                s["servers"][st]["base_rss"] = base
                v = s["servers"][st]["value"]
                s["servers"][st]["per_conn"] = (v - (base or 0)) / c if v is not None and c else None
            key = "per_conn"
        else:
            key = "value"
        dv = s["servers"].get("dovecot", {}).get(key)
        for st in ("lmdb", "maildir"):
            v = s["servers"].get(st, {}).get(key)
            s["ratio_" + st] = v / dv if v is not None and dv else None
        s["target"] = verdict(row, s)
        out.append(s)
    return out


def verdict(row, s):
    t = row.get("target")
    if not t:
        return None
    kind, val, text = t
    parts = []
    for st in ("lmdb", "maildir"):
        if st not in s["servers"]:
            continue
        v = s["servers"][st]["value"]
        ratio = s.get("ratio_" + st)
        if v is None:
            parts.append("%s: no figure" % st)
            continue
        if kind == "ratio_min":
            ok = ratio is not None and ratio >= val
            how = "%.2fx" % ratio if ratio is not None else "?"
        elif kind == "ratio_gt":
            ok = ratio is not None and ratio > val
            how = "%.2fx" % ratio if ratio is not None else "?"
        elif kind == "max_abs":
            ok = v <= val
            how = "%.0f MB" % (v / 1e6)
        else:
            ok = v >= val
            how = "%.2f GB/s" % (v / 1e9)
        parts.append("%s %s (%s)" % (st, "met" if ok else "MISSED", how))
    return dict(text=text, verdict="; ".join(parts))


def markdown(summary, stores, meta):
    head = ["row", "metric"] + [LABEL[s] for s in stores]
    if "dovecot" in stores:
        head += ["%s / Dovecot" % LABEL[s].split("-")[1] for s in stores if s != "dovecot"]
    head += ["CPU s (%s)" % " / ".join(s[0].upper() for s in stores),
             "peak RSS MB (%s)" % " / ".join(s[0].upper() for s in stores),
             "peak PSS MB (%s)" % " / ".join(s[0].upper() for s in stores),
             "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        metric = {"ops/s": "ops/s", "msg/s": "deliveries/s", "MB/s": "bytes/s",
                  "MB RSS": "RSS while held (lower is better)"}[s["unit"]]
        cells = [s["title"], metric]
        row = dict(unit=s["unit"])
        for st in stores:
            sv = s["servers"][st]
            c = fmt_num(sv["value"], row)
            if sv.get("conns") and sv["value"] is not None:
                c += " (%s conns, +%.1f kB each)" % (
                    "%dk" % (sv["conns"] // 1000) if sv["conns"] >= 1000 else sv["conns"],
                    sv["per_conn"] / 1e3)
            if sv["spread_pct"] is not None and len([x for x in sv["runs"] if x is not None]) > 1:
                c += " ±%.0f%%" % sv["spread_pct"]
            cells.append(c)
        if "dovecot" in stores:
            for st in stores:
                if st == "dovecot":
                    continue
                r = s.get("ratio_" + st)
                cells.append("%.2f" % r if r is not None else "-")
        cells.append(" / ".join("%.1f" % s["servers"][st]["cpu"] if s["servers"][st]["cpu"] is not None
                                else "-" for st in stores))

        def mb(st, k):
            v = s["servers"][st].get(k)
            return "%.0f" % (v / 1e6) if v else "-"
        cells.append(" / ".join(mb(st, "peak_rss") for st in stores))
        cells.append(" / ".join(mb(st, "peak_pss") for st in stores))
        t = s.get("target")
        cells.append("%s: %s" % (t["text"], t["verdict"]) if t else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------- profiling

def profile(args, cfg, ctx):
    """mailaccessd under callgrind (one process) for one row, briefly."""
    rows = {r["key"]: r for r in row_defs(cfg)}
    row = dict(rows[args.profile])
    store = args.profile_store
    srv = ctx["servers"][store]
    srv.stop()
    tool = args.profile_tool
    if tool in ("callgrind", "massif") and ctx.get("workers"):
        # one process (no master, no auth process) so callgrind sees it all
        write_ma_config(srv.conf, ctx["build"], srv.dir, ctx["certs"], os.path.join(ctx["workdir"], "users"),
                        store, srv.store_path, srv.ports, "0", limits_extra=ctx.get("limits_extra"))
    out = os.path.join(ctx["workdir"], "%s.%s.%s.out" % (tool, row["key"], store))
    base = srv.command
    if tool == "strace":
        # wall time spent in each system call, all threads and processes
        srv.command = lambda: ["strace", "-f", "-c", "-w", "-o", out] + base()
    elif tool == "massif":
        # heap by allocation site at the peak (the idle rows: memory per connection)
        srv.command = lambda: ["valgrind", "--tool=massif", "--massif-out-file=" + out,
                               "--threshold=0.5"] + base()
    else:
        srv.command = lambda: ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                               "--trace-children=yes"] + base()
    srv.start()
    if row["mode"] == "imap-idle-conns":
        e = row["extra"] = list(row["extra"])
        e[e.index("--conns") + 1] = str(args.profile_clients)
        e[e.index("--rate") + 1] = "50"
        cfg["idle_conns"] = args.profile_clients
    else:
        row["clients"] = min(row.get("clients", 1), args.profile_clients)
        row["duration"] = args.profile_seconds
        row["warmup"] = 0
    cfg2 = dict(cfg, op_timeout=120)
    r = run_loadgen(ctx["loadgen"], row, srv, cfg2)
    srv.stop(300)   # callgrind writes its file at exit
    log("%s run: %s" % (tool, json.dumps(r.get("loadgen"))))
    path = os.path.join(HERE, "results", "profile-%s-%s-%s.txt" % (tool, row["key"], store))
    if tool == "strace":
        with open(out) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write("# %s\n# row %s, store %s, loadgen: %s\n\n%s" % (
                " ".join(srv.command()), row["key"], store, json.dumps(r.get("loadgen")), text))
        print(text[:6000])
        log("profile written to %s" % path)
        return
    if tool == "massif":
        text = subprocess.run(["ms_print", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=300).stdout.decode(errors="replace")
        with open(path, "w") as f:
            f.write("# %s\n# row %s, store %s, loadgen: %s\n\n%s" % (
                " ".join(srv.command()), row["key"], store, json.dumps(r.get("loadgen")), text[:200000]))
        log("profile written to %s" % path)
        return
    outs = sorted(x for x in os.listdir(ctx["workdir"]) if x.startswith(os.path.basename(out)))
    out = os.path.join(ctx["workdir"], outs[-1]) if outs else out
    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", out], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=300).stdout.decode(errors="replace")
    inc = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=300).stdout.decode(errors="replace")
    with open(path, "w") as f:
        f.write("# %s\n# row %s, store %s, loadgen: %s\n\n## self\n%s\n\n## inclusive\n%s\n"
                % (" ".join(srv.command()), row["key"], store, json.dumps(r.get("loadgen")),
                   ann[:60000], inc[:60000]))
    print(ann[:6000])
    log("profile written to %s (callgrind data %s)" % (path, out))


# -------------------------------------------------------------------- main

def configs(quick):
    """Sizes and durations. dur_*: seconds measured per run of that row."""
    if quick:
        return dict(users=20, msgs_per_user=10, size_cap=256000, pop_users=1, lmtp_users=5,
                    big_msgs=3000, duration=1, dur_mixed=2, dur_pop3=1, dur_lmtp=1.5,
                    warmup=0.5, reps=1, mixed_clients=20,
                    idle_conns=100, idle_rate=200, idle_rate_tls=200, idle_hold=7.5, idle_settle=6,
                    idle_rate_dovecot=30, idle_rate_dovecot_tls=30, idle_conns_dovecot=100,
                    lmtp_clients=5, op_timeout=30, search_count=2, restart_every_row=False)
    return dict(users=200, msgs_per_user=40, size_cap=1000000, pop_users=1, lmtp_users=20,
                big_msgs=100000, duration=5, dur_mixed=8, dur_pop3=4, dur_lmtp=6,
                warmup=2, reps=3, mixed_clients=100,
                idle_conns=10000, idle_rate=500, idle_rate_tls=500, idle_hold=12, idle_settle=7,
                idle_rate_dovecot=20, idle_rate_dovecot_tls=20, idle_conns_dovecot=2000,
                lmtp_clients=10, op_timeout=120, search_count=3, restart_every_row=True)


def cp_tree(src, dst, link):
    subprocess.run(["cp", "-a" + ("l" if link else ""), src, dst], check=True, timeout=3600)


def prepare(args, cfg, ctx):
    workdir = ctx["workdir"]
    build = ctx["build"]
    sys.path.insert(0, os.path.join(ROOT, "tests", "protocol"))
    os.environ["MA_BUILD_DIR"] = build
    import harness  # noqa: E402  (certificates with certtool)
    certs = harness.make_certs(os.path.join(workdir, "tls"))
    ctx["certs"] = certs

    # users: mailaccessctl user add (SHA512-CRYPT, HASH_ROUNDS rounds);
    # Dovecot gets the same hashes in its passwd-file.
    corpus = Corpus(os.path.join(workdir, "maildir-master"), cfg)
    users_file = os.path.join(workdir, "users")
    bootstrap = os.path.join(workdir, "ctl.conf")
    write_ma_config(bootstrap, build, os.path.join(workdir, "ctl"), certs, users_file, "lmdb",
                    os.path.join(workdir, "ctl", "mail"), {k: free_port() for k in
                                                          ("imap", "imaps", "pop3", "lmtp")}, None,
                    rounds=HASH_ROUNDS)
    t0 = time.monotonic()
    ctl = os.path.join(build, "core", "mailaccessctl")
    for u in corpus.all_users():
        subprocess.run([ctl, "-c", bootstrap, "user", "add", u], input=(PASSWORD + "\n").encode(),
                       check=True, timeout=60, stdout=subprocess.DEVNULL)
    log("%d users added with mailaccessctl in %.1f s" % (len(corpus.all_users()), time.monotonic() - t0))
    ctx["corpus"] = corpus.write()

    stores = ctx["stores"]
    servers = {}
    # Dovecot: a hard-linked copy of the tree (message files never change
    # in place in a Maildir), owned by its mail uid.
    if "dovecot" in stores:
        root = os.path.join(workdir, "dovecot-mail")
        os.makedirs(root)
        for u in corpus.all_users():
            cp_tree(os.path.join(corpus.root, u), os.path.join(root, u), True)
        subprocess.run(["chown", "-R", "%d:%d" % (DOVECOT_UID, DOVECOT_UID), root], check=True)
        servers["dovecot"] = Dovecot(workdir, certs, users_file, root)
    workers, limits_extra = ma_bench_settings()
    ctx["workers"] = workers
    ctx["limits_extra"] = limits_extra
    log("mailaccessd: workers = %s; limits %s" % (workers, limits_extra))
    if "maildir" in stores:
        root = os.path.join(workdir, "ma-maildir-mail")
        os.makedirs(root)
        for u in corpus.all_users():
            cp_tree(os.path.join(corpus.root, u), os.path.join(root, u), True)
        servers["maildir"] = MailAccess("maildir", workdir, build, certs, users_file, root, workers,
                                        limits_extra)
    if "lmdb" in stores:
        # Load over IMAP APPEND (pipelined, LITERAL+) into a store on tmpfs,
        # where each commit's fsync costs nothing, then copy it to the disk
        # the other servers use.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else workdir
        stage = tempfile.mkdtemp(prefix="benchrun-lmdb-", dir=shm)
        ctx["cleanup_dirs"].append(stage)
        loader = MailAccess("lmdb", os.path.join(workdir, "lmdb-loader"), build, certs, users_file,
                            os.path.join(stage, "mail"), None, limits_extra)
        ctx["live"].append(loader)
        loader.start()
        t0 = time.monotonic()
        n = 0
        for u in corpus.all_users():
            c = Imap(loader.ports["imap"])
            c.cmd('LOGIN "%s" "%s"' % (u, PASSWORD))
            n += c.append_many("INBOX", corpus.messages(u))
            c.close()
        loader.stop()
        ctx["live"].remove(loader)
        dt = time.monotonic() - t0
        log("LMDB store loaded over IMAP APPEND: %d messages in %.1f s (%.0f/s)" % (n, dt, n / dt))
        ctx["lmdb_load"] = dict(messages=n, seconds=dt)
        root = os.path.join(workdir, "ma-lmdb-mail")
        cp_tree(os.path.join(stage, "mail"), root, False)
        shutil.rmtree(stage, ignore_errors=True)
        servers["lmdb"] = MailAccess("lmdb", workdir, build, certs, users_file, root, workers,
                                     limits_extra)
    ctx["servers"] = servers

    # Warm: the first SELECT of the big mailbox (Dovecot builds its index,
    # our Maildir store adopts the folder); timed, not part of the table.
    ctx["first_open"] = {}
    for st in stores:
        srv = servers[st]
        ctx["live"].append(srv)
        srv.start()
        t0 = time.monotonic()
        c = Imap(srv.ports["imap"])
        c.cmd('LOGIN "big@example.com" "%s"' % PASSWORD)
        c.cmd("SELECT INBOX")
        t1 = time.monotonic()
        c.cmd("FETCH 1:* (UID FLAGS)")
        t2 = time.monotonic()
        hits = c.cmd("SEARCH TEXT %s" % NEEDLE)
        t3 = time.monotonic()
        c.close()
        nhits = sum(len(l.split()) - 2 for l in hits if l.upper().startswith(b"* SEARCH"))
        ctx["accounting"] = srv.accounting
        ctx["first_open"][st] = dict(select=t1 - t0, fetch=t2 - t1, search=t3 - t2, search_hits=nhits)
        log("%s: first SELECT of the %d-message INBOX %.2f s, FETCH 1:* (UID FLAGS) %.2f s, "
            "SEARCH TEXT %.2f s (%d hits, %d expected)"
            % (srv.label, cfg["big_msgs"], t1 - t0, t2 - t1, t3 - t2, nhits, ctx["corpus"]["needles"]))


def update_doc(path, md_block):
    begin, end = "<!-- benchrun:begin", "<!-- benchrun:end -->"
    with open(path) as f:
        text = f.read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < 0:
        text = text.rstrip("\n") + "\n\n" + md_block + "\n"
    else:
        text = text[:i] + md_block + text[j + len(end):]
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one short run per row (< 2 min)")
    ap.add_argument("--only", help="comma-separated row keys: mixed,idle-plain,idle-tls,pop3-1m,"
                                   "pop3-10m,lmtp,select,fetch-flags,search-text")
    ap.add_argument("--stores", default="dovecot,lmdb,maildir", help="servers to measure")
    ap.add_argument("--build", help="release build dir (default build-bench, build-benchrun)")
    ap.add_argument("--loadgen", help="ma-loadgen binary")
    ap.add_argument("--workdir", help="where data and servers live (default a new dir in /var/tmp, on disk)")
    ap.add_argument("--reps", type=int, help="runs per row and server (median reported)")
    ap.add_argument("--duration", type=float, help="seconds per run")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--doc", help="also write the table into this markdown file (docs/performance.md)")
    ap.add_argument("--profile", help="instead of the table: callgrind of mailaccessd on this row")
    ap.add_argument("--profile-store", default="lmdb")
    ap.add_argument("--profile-tool", choices=("callgrind", "strace", "massif"), default="callgrind",
                    help="callgrind: instructions per function; strace: wall time per system call; "
                         "massif: heap by allocation site")
    ap.add_argument("--profile-clients", type=int, default=10)
    ap.add_argument("--profile-seconds", type=float, default=10)
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("run.py runs Dovecot and sets up cgroups: run it as root")
    cfg = configs(args.quick)
    if args.reps:
        cfg["reps"] = args.reps
    if args.duration:
        for k in ("duration", "dur_mixed", "dur_pop3", "dur_lmtp"):
            cfg[k] = args.duration
    stores = [s for s in args.stores.split(",") if s]
    for s in stores:
        if s not in STORES:
            sys.exit("unknown store %s" % s)
    if "dovecot" in stores and not shutil.which("dovecot"):
        sys.exit("dovecot is not installed (tests/bench/run.sh installs it)")
    build = pick_build(args.build)
    lg = pick_loadgen(args.loadgen, build)
    rows = row_defs(cfg)
    if args.only:
        keys = args.only.split(",")
        bad = [k for k in keys if k not in [r["key"] for r in rows]]
        if bad:
            sys.exit("unknown rows: %s" % ", ".join(bad))
        rows = [r for r in rows if r["key"] in keys]
    if args.profile:
        stores = [args.profile_store]
    raise_nofile()

    workdir = args.workdir or tempfile.mkdtemp(prefix="benchrun-", dir="/var/tmp")
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    ctx = dict(workdir=workdir, build=build, loadgen=lg, stores=stores, live=[], cleanup_dirs=[])
    started = datetime.datetime.now(datetime.timezone.utc)
    log("build %s, loadgen %s, work dir %s, %s" % (build, lg, workdir, "quick" if args.quick else "full"))

    def on_signal(sig, frm):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    results = {}
    inotify_old = raise_inotify(cfg["idle_conns"])
    ctx["inotify"] = dict(old=inotify_old)
    try:
        prepare(args, cfg, ctx)
        if args.profile:
            profile(args, cfg, ctx)
            return 0
        for row in rows:
            results[row["key"]] = {s: [] for s in stores}
            log("row %s: %s" % (row["key"], row["title"]))
            for st in stores:   # fresh processes (every row, or where memory is the figure)
                if cfg["restart_every_row"] or row.get("restart") or not ctx["servers"][st].proc:
                    ctx["servers"][st].restart()
            for rep in range(row["reps"]):
                for st in stores:
                    srv = ctx["servers"][st]
                    if row.get("restart") and rep > 0:
                        srv.restart()
                    r = run_loadgen(lg, row, srv, cfg)
                    results[row["key"]][st].append(r)
                    f = figure(row, r)
                    log("  %-18s run %d: %s  cpu %.1fs  rss %s  pss %s  (loadgen cpu %.1fs)"
                        % (srv.label, rep + 1, fmt_num(f, row), r["cpu"],
                           "%.0fMB" % (r["peak_rss"] / 1e6) if r["peak_rss"] else "-",
                           "%.0fMB" % (r["peak_pss"] / 1e6) if r["peak_pss"] else "-", r["loadgen_cpu"]))
                    if srv.proc.poll() is not None:
                        log("%s died (exit %s); log tail:\n%s" % (srv.label, srv.proc.returncode, srv.log_tail()))
                        srv.restart()
    except KeyboardInterrupt as e:
        log("interrupted: %s" % e)
    finally:
        for srv in list(ctx.get("servers", {}).values()) + ctx["live"]:
            try:
                srv.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log("stopping %s: %s" % (srv.label, e))
        for d in ctx["cleanup_dirs"]:
            shutil.rmtree(d, ignore_errors=True)
        restore_inotify(inotify_old)

    if args.profile:
        if not args.keep:
            subprocess.run(["rm", "-rf", workdir])
        return 0
    summary = summarize(rows, results, stores)
    md = markdown(summary, stores, None)
    finished = datetime.datetime.now(datetime.timezone.utc)
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    meta = dict(started=started.isoformat(), finished=finished.isoformat(), quick=args.quick,
                cfg=cfg, build=build, loadgen=lg, cpus=os.cpu_count(), cpu_model=cpu_model,
                dovecot=subprocess.run(["dovecot", "--version"], stdout=subprocess.PIPE).stdout.decode().strip()
                if shutil.which("dovecot") else None,
                workers=ctx.get("workers"), limits_extra=ctx.get("limits_extra"), corpus=ctx.get("corpus"), first_open=ctx.get("first_open"),
                lmdb_load=ctx.get("lmdb_load"), accounting=ctx.get("accounting"),
                command=" ".join(["python3", "tests/bench/run.py"] + sys.argv[1:]))
    resdir = os.path.join(HERE, "results")
    os.makedirs(resdir, exist_ok=True)
    rpath = os.path.join(resdir, "%s%s.json" % (started.strftime("%Y-%m-%dT%H%M%SZ"), "-quick" if args.quick else ""))
    with open(rpath, "w") as f:
        json.dump(dict(meta=meta, summary=summary, runs=results), f, indent=1, default=str)
    print()
    print(md)
    print()
    print("raw results: %s" % os.path.relpath(rpath, ROOT))
    if args.doc:
        block = doc_block(md, meta, summary)
        update_doc(args.doc, block)
        log("wrote the table into %s" % args.doc)
    if not args.keep:
        subprocess.run(["rm", "-rf", workdir])
    else:
        log("work dir kept: %s" % workdir)
    failed = [s["key"] for s in summary if any(v["value"] is None for v in s["servers"].values())]
    if failed:
        log("rows with a failed run: %s" % ", ".join(failed))
    return 1 if failed else 0


def doc_block(md, meta, summary):
    c = meta["cfg"]
    lines = ["<!-- benchrun:begin (written by tests/bench/run.py --doc) -->",
             "## The table: mailaccess and Dovecot side by side", "",
             "Command: `%s` (run %s to %s UTC; %d cores, %s; %s; mailaccessd %s)."
             % (meta["command"], meta["started"][:16].replace("T", " "), meta["finished"][11:16],
                meta["cpus"], meta["cpu_model"], meta["dovecot"] and "Dovecot " + meta["dovecot"],
                "workers = auto" if meta["workers"] else "one process (no `workers` yet)"), "",
             "Each figure is the median of %d runs per server, the runs interleaved Dovecot, LMDB, "
             "Maildir, Dovecot, ...; ± is half the spread of the runs. A run measures %g s "
             "(mixed %g s, POP3 %g s, LMTP %g s) after %g s of warm-up; SEARCH TEXT runs %d searches. "
             "The idle rows are one run each: %d connections opened at up to %d/s (TLS %d/s), held "
             "%g s; the RSS is the peak from %g s after the last one was established (Dovecot has "
             "moved its IDLE clients to imap-hibernate by then). CPU s: server CPU time (user + "
             "system, every process of the server, %s) during one run, median. Ratios: "
             "mailaccess / Dovecot (higher is better, except the RSS rows, where lower is). "
             "Dovecot's idle rows hold %d connections opened at %d/s, not %d: see the caveats "
             "above; their ratio compares what a connection adds: (RSS while held - RSS before) "
             "/ connections, the '+kB each' in the cells."
             % (c["reps"], c["duration"], c["dur_mixed"], c["dur_pop3"], c["dur_lmtp"], c["warmup"],
                c["search_count"], c["idle_conns"], c["idle_rate"], c["idle_rate_tls"], c["idle_hold"],
                c["idle_settle"], "from its cgroup" if "cgroup" in str(meta.get("accounting"))
                else "from /proc", c["idle_conns_dovecot"], c["idle_rate_dovecot"], c["idle_conns"]), "",
             md, ""]
    lines.append("<!-- benchrun:end -->")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
