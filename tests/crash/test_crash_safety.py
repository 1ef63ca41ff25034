#!/usr/bin/env python3
"""test_crash_safety.py - kill -9 under load, then check nothing was lost.

Owns: the crash-safety test of issue 5. A real mailaccessd (harness.Daemon)
with IMAP, POP3 and LMTP listeners takes a concurrent load:

  - IMAP clients (one thread each) APPEND to INBOX, Archive and their own
    Work-N folder, UID STORE flags, UID MOVE, and expunge (UID EXPUNGE in
    the shared folders, plain EXPUNGE in their own folder);
  - a POP3 client runs sessions of TOP + DELE + QUIT on a second user;
  - an LMTP client delivers to one or both users.

Every message has a unique X-Crash-Id header and an X-Crash-Sum header
(SHA-256 of its body); the test keeps a model of where every message must
be. At a random moment (20..MA_CRASH_MAX_MS ms after the load starts) it
SIGKILLs one worker process ("ma-worker" child of the master), or in other
rounds the whole server (every process of it), then waits for the master
to restart the worker or starts the daemon again. Until the multi-process
daemon exists there is one process, and a worker round kills it too.

After every round, over IMAP on the live store and with
`mailaccessctl verify`:
  - every message whose APPEND got OK or whose LMTP delivery got 250 is
    present exactly once, in the mailbox the acknowledged MOVEs put it,
    with the UID the server acknowledged (APPENDUID/COPYUID) and the flags
    acknowledged STOREs set -- unless an acknowledged EXPUNGE or POP3
    DELE + QUIT(+OK) removed it, then it is absent;
  - a message whose operation was not acknowledged is in one of the places
    the operation allows (or absent), complete (checksum ok), never twice;
  - no message the model does not know, nothing removed comes back;
  - per mailbox UIDVALIDITY unchanged, UIDNEXT never goes down and is above
    every UID, a message keeps its UID, a new arrival has a UID above every
    UID seen before;
  - `mailaccessctl verify` exits 0;
  - no sanitizer report in the daemon log, the restart works.

Backends: MA_TEST_STORE if set, else every one in MA_TEST_STORES (default
"lmdb maildir") whose plugin is built. One PASS/FAIL line per backend and
the harness's RESULT line. On failure the evidence is printed (round,
message id, expected, seen) and the daemon dir (config, log, store) kept.

Knobs: MA_CRASH_ROUNDS (default 200 per backend), MA_CRASH_SEED,
MA_CRASH_MAX_MS (default 300), MA_CRASH_WATCHDOG (seconds, whole script,
default 900).

Run: python3 tests/crash/test_crash_safety.py
"""

import hashlib
import os
import random
import re
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402

harness.PLUGIN_FILES.setdefault("lmtp.so", ("plugins", "lmtp"))

ROUNDS = int(os.environ.get("MA_CRASH_ROUNDS", "200"))
SEED = int(os.environ.get("MA_CRASH_SEED", str(int(time.time()) % 1000000)))
MIN_MS = 20
MAX_MS = max(MIN_MS + 1, int(os.environ.get("MA_CRASH_MAX_MS", "300")))
WATCHDOG = float(os.environ.get("MA_CRASH_WATCHDOG", "900"))
WORKER_SHARE = 0.7          # share of rounds that kill one worker
IMAP_THREADS = 3
OWNED_SOFT_MAX = 12         # an IMAP client expunges more above this
POP_KEEP = 10               # the POP3 client deletes down to about this
SOCK_TIMEOUT = 5.0
JOIN_TIMEOUT = 20.0
RESTART_TIMEOUT = 20.0
MAX_BACKOFF_WAIT = 1.0      # longer worker restart backoffs: kill the server
MAX_EVIDENCE = 25

USER_A = "crash@example.com"      # IMAP load + LMTP
USER_P = "crashpop@example.com"   # POP3 load + LMTP
PW = "Crash pw 9"
WORK = ["Work-%d" % i for i in range(IMAP_THREADS)]
MAILBOXES = {USER_A: ["INBOX", "Archive"] + WORK, USER_P: ["INBOX"]}
TRACKED_FLAGS = ("\\flagged", "\\answered", "\\deleted", "$crash")


# ------------------------------------------------------------ processes

def proc_children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def proc_tree(pid):
    """pid and all its descendants (breadth first)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.append(p)
        todo += proc_children(p)
    return seen


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rfind(")") + 2] not in "ZX"
    except OSError:
        return False


def workers(master):
    return [p for p in proc_tree(master)[1:] if comm(p) == "ma-worker"]


# ------------------------------------------------------------- messages

_words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet "
          "kilo lima mike november oscar papa quebec romeo sierra tango "
          "uniform victor whiskey xray yankee zulu").split()


def make_message(mid, rng):
    """(message bytes, sha256 hex of everything from X-Crash-Id on)."""
    r = rng.random()
    if r < 0.08:
        nlines = rng.randint(400, 1500)     # 30..110 KB
    elif r < 0.3:
        nlines = rng.randint(40, 120)
    else:
        nlines = rng.randint(2, 30)
    lines = []
    for i in range(nlines):
        words = [rng.choice(_words) for _ in range(rng.randint(3, 11))]
        lines.append(("%s %d %s" % (mid, i, " ".join(words))).encode())
    body = b"\r\n".join(lines) + b"\r\n"
    bsum = hashlib.sha256(body).hexdigest()
    head = ("X-Crash-Id: %s\r\nX-Crash-Sum: %s\r\nFrom: load@example.org\r\n"
            "To: crash@example.com\r\nSubject: crash %s\r\n"
            "Message-ID: <%s@crash.test>\r\n\r\n" % (mid, bsum, mid, mid)).encode()
    msg = head + body
    return msg, hashlib.sha256(msg).hexdigest()


def parse_stored(data):
    """(mid or None, ok): the id and whether the bytes from X-Crash-Id on
    are intact (header block + body checksum)."""
    m = re.search(rb"(?:^|\r\n)(X-Crash-Id: ([^\r\n]+)\r\n)", data)
    if not m:
        return None, False
    mid = m.group(2).decode("ascii", "replace")
    own = data[m.start(1):]
    s = re.search(rb"\r\nX-Crash-Sum: ([0-9a-f]{64})\r\n", data)
    i = own.find(b"\r\n\r\n")
    if not s or i < 0:
        return mid, False
    body = own[i + 4:]
    return mid, hashlib.sha256(body).hexdigest() == s.group(1).decode()


# ---------------------------------------------------------------- model

class Rec:
    """One message of one user. state: present (mbox, uid may be None when
    the server did not say), absent, or uncertain with poss = list of
    (mbox, uid-or-None) it may be at, None meaning "may be absent"."""
    __slots__ = ("user", "mid", "sha", "state", "mbox", "uid", "flags",
                 "poss", "owner", "seen")

    def __init__(self, user, mid, sha, owner):
        self.user, self.mid, self.sha, self.owner = user, mid, sha, owner
        self.state = "uncertain"
        self.mbox = self.uid = None
        self.flags = None         # frozenset of TRACKED_FLAGS or None
        self.poss = []
        self.seen = None          # (mbox, uid) at the last verify

    def set_present(self, mbox, uid, flags):
        self.state, self.mbox, self.uid, self.flags = "present", mbox, uid, flags
        self.poss = []

    def set_uncertain(self, poss):
        self.state, self.poss, self.flags = "uncertain", poss, None

    def set_absent(self):
        self.state, self.mbox, self.uid, self.flags = "absent", None, None, None
        self.poss = []

    def expect(self):
        if self.state == "present":
            return "present in %s uid %s flags %s" % (
                self.mbox, self.uid if self.uid else "(any new)",
                sorted(self.flags) if self.flags is not None else "?")
        if self.state == "absent":
            return "absent"
        return "one of %s" % ", ".join(
            "absent" if p is None else "%s uid %s" % (p[0], p[1] or "(any new)")
            for p in self.poss)


class Stats:
    def __init__(self):
        self.c = {}

    def add(self, k, n=1):
        self.c[k] = self.c.get(k, 0) + n

    def __getitem__(self, k):
        return self.c.get(k, 0)


def tracked(flags_text):
    return frozenset(f for f in flags_text.lower().split() if f in TRACKED_FLAGS)


class Load:
    """State of one backend's run: daemon, model, counters."""

    def __init__(self, backend):
        self.backend = backend
        self.rng = random.Random("%s-%s" % (SEED, backend))
        self.lock = threading.Lock()
        self.recs = {}               # (user, mid) -> Rec
        self.uidvalidity = {}        # (user, mbox) -> int
        self.uidnext = {}            # (user, mbox) -> last UIDNEXT seen
        self.floor = {}              # (user, mbox) -> max UID ever seen
        self.acked_uid = {}          # (user, mbox) -> max UID acked this round
        self.stats = Stats()
        self.errors = []             # evidence of this round
        self.notes = []              # odd but allowed (NO replies)
        self.round = 0
        self.stop = threading.Event()
        self.D = None
        self.log_off = 0
        self.gone = set()            # keys of messages gone for good
        self.pending_victim = None   # (pid, workers before, log offset)
        self.backoff = False         # the master is backing off a restart

    # -- model updates (under self.lock)

    def new_rec(self, user, mid, sha, owner):
        r = Rec(user, mid, sha, owner)
        self.recs[(user, mid)] = r
        return r

    def note_uid(self, user, mbox, uid, uidvalidity, what, mid):
        """An acknowledged UID (APPENDUID/COPYUID): UIDVALIDITY as known,
        above every UID seen before."""
        k = (user, mbox)
        if uidvalidity is not None and k in self.uidvalidity \
                and uidvalidity != self.uidvalidity[k]:
            self.err("%s %s: %s acknowledged UIDVALIDITY %d, mailbox has %d"
                     % (mid, mbox, what, uidvalidity, self.uidvalidity[k]))
        if uid <= self.floor.get(k, 0):
            self.err("%s %s: %s acknowledged UID %d, not above %d (the highest "
                     "UID seen before): UID reuse" % (mid, mbox, what, uid,
                                                      self.floor.get(k, 0)))
        self.acked_uid[k] = max(self.acked_uid.get(k, 0), uid)

    def err(self, text):
        self.errors.append("round %d: %s" % (self.round, text))


# ----------------------------------------------------------- load: IMAP

def parse_code(line, code):
    m = re.search(rb"\[" + code + rb" (\d+) ([0-9:,]+) ?([0-9:,]*)\]", line)
    return m


def imap_client(L, user):
    c = L.D.imap("imap", timeout=SOCK_TIMEOUT)
    c.login(user, PW)
    return c


class ImapLoad(threading.Thread):
    def __init__(self, L, t):
        super().__init__(daemon=True, name="imap-%d" % t)
        self.L, self.t = L, t
        self.rng = random.Random(L.rng.random())
        self.seq = 0
        self.cur = None
        self.exc = None

    def owned(self):
        L = self.L
        with L.lock:
            return [r for r in L.recs.values()
                    if r.owner == self.t and r.user == USER_A
                    and r.state == "present" and r.uid]

    def run(self):
        try:
            self.c = imap_client(self.L, USER_A)
            while not self.L.stop.is_set():
                self.step()
        except (OSError, EOFError, harness.ProtocolError, ValueError):
            pass   # the server went away: the round's kill
        except Exception as e:  # a bug in the test itself
            self.exc = e
            import traceback
            self.L.err("IMAP client %d: %s" % (self.t, traceback.format_exc()))
        finally:
            try:
                self.c.close()
            except Exception:
                pass

    def select(self, mbox):
        if self.cur != mbox:
            self.cur = None
            self.c.select(mbox)
            self.cur = mbox

    def step(self):
        own = self.owned()
        r = self.rng.random()
        if len(own) > OWNED_SOFT_MAX:
            weights = (0.15, 0.15, 0.2, 0.5)
        elif not own:
            weights = (1, 0, 0, 0)
        else:
            weights = (0.4, 0.2, 0.2, 0.2)
        acc = 0
        for op, w in zip((self.append, self.store, self.move, self.expunge),
                         weights):
            acc += w
            if r < acc:
                return op(own)
        return self.append(own)

    def append(self, own):
        L = self.L
        self.seq += 1
        mid = "%s-r%d-i%d-%d" % (L.backend[0], L.round, self.t, self.seq)
        msg, sha = make_message(mid, self.rng)
        mbox = self.rng.choice(["INBOX", "Archive", WORK[self.t]])
        flags = frozenset()
        fl = ""
        if self.rng.random() < 0.3:
            flags = frozenset(["\\flagged"])
            fl = " (\\Flagged)"
        with L.lock:
            rec = L.new_rec(USER_A, mid, sha, self.t)
            rec.set_uncertain([None, (mbox, None)])
        L.stats.add("append sent")
        st, u = self.c.cmd('APPEND "%s"%s' % (mbox, fl), msg)
        with L.lock:
            if st.startswith(b"OK"):
                m = parse_code(st, rb"APPENDUID")
                uid = int(m.group(2)) if m else None
                if uid is not None:
                    L.note_uid(USER_A, mbox, uid, int(m.group(1)), "APPEND", mid)
                rec.set_present(mbox, uid, flags)
                L.stats.add("append acked")
            else:
                L.notes.append("APPEND %s -> %r" % (mid, st[:80]))
                rec.set_absent()

    def store(self, own):
        L = self.L
        rec = self.rng.choice(own)
        self.select(rec.mbox)
        flag = self.rng.choice(["\\Flagged", "\\Answered", "$Crash"])
        add = self.rng.random() < 0.6
        with L.lock:
            old = rec.flags
            rec.set_uncertain([(rec.mbox, rec.uid)])
        st, u = self.c.cmd("UID STORE %d %sFLAGS.SILENT (%s)"
                           % (rec.uid, "+" if add else "-", flag))
        with L.lock:
            if st.startswith(b"OK"):
                nf = set(old) if old is not None else set()
                (nf.add if add else nf.discard)(flag.lower())
                rec.set_present(rec.poss[0][0], rec.poss[0][1], frozenset(nf))
                L.stats.add("store acked")
            else:
                L.notes.append("STORE %s -> %r" % (rec.mid, st[:80]))
                rec.set_present(rec.poss[0][0], rec.poss[0][1], old)

    def move(self, own):
        L = self.L
        rec = self.rng.choice(own)
        src, uid = rec.mbox, rec.uid
        dst = self.rng.choice([m for m in ["INBOX", "Archive", WORK[self.t]]
                               if m != src])
        self.select(src)
        with L.lock:
            flags = rec.flags
            rec.set_uncertain([(src, uid), (dst, None)])
        st, u = self.c.cmd('UID MOVE %d "%s"' % (uid, dst))
        with L.lock:
            if st.startswith(b"OK"):
                m = parse_code(st, rb"COPYUID")
                for line, _ in u:
                    m = m or parse_code(line, rb"COPYUID")
                nuid = None
                if m:
                    nuid = int(m.group(3))
                    if m.group(2) != str(uid).encode():
                        L.err("%s: MOVE of UID %d answered COPYUID source %r"
                              % (rec.mid, uid, m.group(2)))
                    L.note_uid(USER_A, dst, nuid, int(m.group(1)), "MOVE",
                               rec.mid)
                rec.set_present(dst, nuid, flags)
                L.stats.add("move acked")
            else:
                L.notes.append("MOVE %s -> %r" % (rec.mid, st[:80]))
                rec.set_present(src, uid, flags)

    def expunge(self, own):
        L = self.L
        rec = self.rng.choice(own)
        mbox, uid = rec.mbox, rec.uid
        self.select(mbox)
        with L.lock:
            flags = rec.flags
            rec.set_uncertain([(mbox, uid)])
        st, u = self.c.cmd("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
        with L.lock:
            if not st.startswith(b"OK"):
                L.notes.append("STORE \\Deleted %s -> %r" % (rec.mid, st[:80]))
                rec.set_present(mbox, uid, flags)
                return
            rec.set_present(mbox, uid,
                            (flags or frozenset()) | {"\\deleted"})
            if mbox in WORK:
                # plain EXPUNGE: every \Deleted message of this folder (only
                # this client puts messages into its Work folder)
                gone = [r for r in L.recs.values()
                        if r.user == USER_A and r.state == "present"
                        and r.mbox == mbox and r.flags is not None
                        and "\\deleted" in r.flags]
                cmd = "EXPUNGE"
            else:
                gone = [rec]
                cmd = "UID EXPUNGE %d" % uid
            before = [(g, g.flags) for g in gone]
            for g in gone:
                g.set_uncertain([(g.mbox, g.uid), None])
        st, u = self.c.cmd(cmd)
        with L.lock:
            if st.startswith(b"OK"):
                for g in gone:
                    g.set_absent()
                L.stats.add("expunge acked", len(gone))
            else:
                L.notes.append("%s %s -> %r" % (cmd, rec.mid, st[:80]))
                for g, f in before:
                    g.set_present(g.poss[0][0], g.poss[0][1], f)


# ----------------------------------------------------------- load: POP3

class PopLoad(threading.Thread):
    def __init__(self, L):
        super().__init__(daemon=True, name="pop3")
        self.L = L
        self.rng = random.Random(L.rng.random())

    def run(self):
        L = self.L
        try:
            while not L.stop.is_set():
                self.session()
        except (OSError, EOFError, harness.ProtocolError, ValueError):
            pass
        except Exception:
            import traceback
            L.err("POP3 client: %s" % traceback.format_exc())

    def session(self):
        L = self.L
        c = L.D.connect("pop3plain", timeout=SOCK_TIMEOUT)
        try:
            c.ok("USER " + USER_P)
            r = c.cmd("PASS " + PW)
            if not r.startswith("+OK"):
                if "IN-USE" in r:   # the old session's lock, just let go
                    time.sleep(0.02)
                    return
                raise harness.ProtocolError("PASS -> %r" % r)
            listing = c.lines("LIST")
            L.stats.add("pop3 sessions")
            nums = [int(x.split()[0]) for x in listing]
            excess = max(0, len(nums) - POP_KEEP)
            want = max(excess, self.rng.randint(0, 3))
            dele = []
            for n in self.rng.sample(nums, min(len(nums), want + 4)):
                if len(dele) >= want or L.stop.is_set():
                    break
                _, head = c.multi("TOP %d 0" % n)
                m = re.search(rb"\r\nX-Crash-Id: ([^\r\n]+)\r\n", b"\r\n" + head)
                if not m:
                    L.err("POP3 TOP %d of %s: no X-Crash-Id header: %r"
                          % (n, USER_P, head[:300]))
                    continue
                mid = m.group(1).decode()
                with L.lock:
                    rec = L.recs.get((USER_P, mid))
                    if rec is None or rec.state != "present" \
                            or rec.mbox != "INBOX":
                        continue   # its delivery is still in flight
                    rec.set_uncertain([(rec.mbox, rec.uid), None])
                dele.append((n, rec))
                c.ok("DELE %d" % n)
            r = c.cmd("QUIT")
            with L.lock:
                if r.startswith("+OK"):
                    for _, rec in dele:
                        rec.set_absent()
                    L.stats.add("pop3 dele acked", len(dele))
                else:
                    L.notes.append("POP3 QUIT -> %r" % r)
        finally:
            c.close()


# ----------------------------------------------------------- load: LMTP

class LmtpLoad(threading.Thread):
    def __init__(self, L):
        super().__init__(daemon=True, name="lmtp")
        self.L = L
        self.rng = random.Random(L.rng.random())
        self.seq = 0
        self.buf = bytearray()

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                l = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return l.decode("utf-8", "replace")
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("LMTP closed")
            self.buf += chunk

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines[-1]

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def run(self):
        L = self.L
        try:
            self.s = socket.create_connection(
                (L.D.host("lmtp"), L.D.port("lmtp")), timeout=SOCK_TIMEOUT)
            if not self.reply().startswith("220"):
                return
            if not self.cmd("LHLO crash.test").startswith("250"):
                raise harness.ProtocolError("LHLO refused")
            while not L.stop.is_set():
                self.deliver()
        except (OSError, EOFError, harness.ProtocolError, ValueError):
            pass
        except Exception:
            import traceback
            L.err("LMTP client: %s" % traceback.format_exc())
        finally:
            try:
                self.s.close()
            except Exception:
                pass

    def deliver(self):
        L = self.L
        self.seq += 1
        mid = "%s-r%d-l-%d" % (L.backend[0], L.round, self.seq)
        msg, sha = make_message(mid, self.rng)
        r = self.rng.random()
        users = [USER_A] if r < 0.35 else [USER_P] if r < 0.75 else [USER_A, USER_P]
        if not self.cmd("MAIL FROM:<load@example.org>").startswith("250"):
            raise harness.ProtocolError("MAIL FROM refused")
        for u in users:
            rr = self.cmd("RCPT TO:<%s>" % u)
            if not rr.startswith("250"):
                raise harness.ProtocolError("RCPT %s -> %r" % (u, rr))
        if not self.cmd("DATA").startswith("354"):
            raise harness.ProtocolError("DATA refused")
        recs = []
        with L.lock:
            for u in users:
                rec = L.new_rec(u, mid, sha, None)
                rec.set_uncertain([None, ("INBOX", None)])
                recs.append(rec)
        L.stats.add("lmtp sent", len(users))
        # no line of ours starts with "."; no stuffing needed
        self.s.sendall(msg + b".\r\n")
        for rec in recs:
            rr = self.reply()
            with L.lock:
                if rr.startswith("250"):
                    rec.set_present("INBOX", None, frozenset())
                    L.stats.add("lmtp acked")
                else:
                    L.notes.append("LMTP %s for %s -> %r" % (mid, rec.user, rr))
                    rec.set_absent()


# -------------------------------------------------------------- verify

def fetch_all(L, user):
    """{mbox: (uidvalidity, uidnext, [(uid, flags, data)])} over IMAP."""
    out = {}
    c = imap_client(L, user)
    try:
        for mbox in MAILBOXES[user]:
            info = c.select(mbox)
            msgs = []
            if info["exists"]:
                st, u = c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])")
                for line, lits in u:
                    if not re.match(rb"\* \d+ FETCH ", line):
                        continue
                    mu = re.search(rb"\bUID (\d+)", line)
                    mf = re.search(rb"\bFLAGS \(([^)]*)\)", line)
                    if not mu or not mf or len(lits) != 1:
                        L.err("%s %s: odd FETCH response %r" % (user, mbox, line[:200]))
                        continue
                    msgs.append((int(mu.group(1)), tracked(mf.group(1).decode()),
                                 lits[0]))
                if len(msgs) != info["exists"]:
                    L.err("%s %s: SELECT said %d EXISTS, FETCH 1:* gave %d"
                          % (user, mbox, info["exists"], len(msgs)))
            out[mbox] = (info["uidvalidity"], info.get("uidnext"), msgs)
        c.logout()
    finally:
        c.close()
    return out


def touch_all(L):
    """SELECT every mailbox once: a Maildir folder numbers the files a kill
    left without a UID at its next load (docs/maildir.md), which
    `mailaccessctl verify` would report until then."""
    for user in MAILBOXES:
        c = imap_client(L, user)
        try:
            for mbox in MAILBOXES[user]:
                c.select(mbox)
            c.logout()
        finally:
            c.close()


def verify(L):
    touch_all(L)
    # the server's own check runs meanwhile (both only read)
    ctl = {}

    def run_ctl():
        try:
            ctl["r"] = L.D.ctl("verify", USER_A, USER_P, check=False,
                               timeout=60)
        except Exception as e:
            ctl["e"] = e
    th = threading.Thread(target=run_ctl, daemon=True)
    th.start()
    try:
        verify_imap(L)
    finally:
        th.join(70)
    r = ctl.get("r")
    if r is None:
        L.err("mailaccessctl verify did not run: %r" % ctl.get("e", "hung"))
    elif r.returncode != 0:
        L.err("mailaccessctl verify exit %d:\n%s%s" % (
            r.returncode, r.stdout.decode(errors="replace")[-2000:],
            r.stderr.decode(errors="replace")[-1000:]))
    L.stats.add("ctl verify runs")
    if not L.errors:
        adopt(L)


def verify_imap(L):
    seen = {}     # (user, mid) -> [(mbox, uid, flags, ok)]
    L.seen = seen
    for user in MAILBOXES:
        boxes = fetch_all(L, user)
        for mbox, (uv, un, msgs) in boxes.items():
            k = (user, mbox)
            if k in L.uidvalidity and L.uidvalidity[k] != uv:
                L.err("%s %s: UIDVALIDITY changed %d -> %d"
                      % (user, mbox, L.uidvalidity[k], uv))
            L.uidvalidity.setdefault(k, uv)
            maxuid = max([m[0] for m in msgs] + [0])
            if un is None:
                L.err("%s %s: SELECT without UIDNEXT" % (user, mbox))
            else:
                if un < L.uidnext.get(k, 0):
                    L.err("%s %s: UIDNEXT went down %d -> %d"
                          % (user, mbox, L.uidnext[k], un))
                if un <= maxuid or un <= L.acked_uid.get(k, 0):
                    L.err("%s %s: UIDNEXT %d not above UID %d (highest present) "
                          "/ %d (highest acknowledged)"
                          % (user, mbox, un, maxuid, L.acked_uid.get(k, 0)))
                L.uidnext[k] = max(L.uidnext.get(k, 0), un)
            uids = [m[0] for m in msgs]
            if len(set(uids)) != len(uids):
                L.err("%s %s: a UID listed twice: %s" % (user, mbox, sorted(uids)))
            for uid, flags, data in msgs:
                mid, ok = parse_stored(data)
                if mid is None:
                    L.err("%s %s UID %d: message without X-Crash-Id (%d bytes): %r"
                          % (user, mbox, uid, len(data), data[:200]))
                    continue
                rec = L.recs.get((user, mid))
                if rec is not None and ok and \
                        hashlib.sha256(data[data.find(b"X-Crash-Id: "):]).hexdigest() != rec.sha:
                    ok = False
                if not ok:
                    L.err("%s %s UID %d: %s is damaged (%d bytes, checksum "
                          "wrong); expected %s" % (user, mbox, uid, mid, len(data),
                                                   rec.expect() if rec else "?"))
                seen.setdefault((user, mid), []).append((mbox, uid, flags))
    # every observation against the model
    stats = L.stats
    for key, obs in seen.items():
        rec = L.recs.get(key)
        user, mid = key
        if rec is None:
            L.err("%s: %s at %s: %s" % (
                user, mid, obs, "RESURRECTED: it was gone at an earlier check"
                if key in L.gone else "a message the test never sent"))
            continue
        if len(obs) > 1:
            L.err("%s: %s DUPLICATED: at %s; expected %s"
                  % (user, mid, obs, rec.expect()))
            stats.add("duplicated")
            continue
        mbox, uid, flags = obs[0]
        if rec.state == "absent":
            L.err("%s: %s is at %s UID %d but was removed (acknowledged "
                  "EXPUNGE / DELE+QUIT) or never acknowledged and seen absent"
                  % (user, mid, mbox, uid))
            stats.add("resurrected")
            continue
        if rec.state == "present":
            allowed = [(rec.mbox, rec.uid)]
        else:
            allowed = [p for p in rec.poss if p is not None]
        if not any(a[0] == mbox and (a[1] is None or a[1] == uid)
                   for a in allowed):
            L.err("%s: %s is at %s UID %d; expected %s"
                  % (user, mid, mbox, uid, rec.expect()))
            continue
        # a message that arrived in this mailbox since the last check has a
        # UID above every UID seen there before
        # (or, if it was there at the last check, the same UID)
        fl = L.floor.get((user, mbox), 0)
        if rec.seen != (mbox, uid) and uid <= fl:
            L.err("%s: %s is in %s with UID %d, not above %d (the highest "
                  "UID seen there before) although it was %s at the last "
                  "check: UID reuse or a changed UID"
                  % (user, mid, mbox, uid, fl,
                     "not there" if rec.seen is None or rec.seen[0] != mbox
                     else "UID %d" % rec.seen[1]))
        if rec.state == "present" and rec.flags is not None \
                and flags != rec.flags:
            L.err("%s: %s in %s UID %d has flags %s; acknowledged STOREs "
                  "left %s" % (user, mid, mbox, uid, sorted(flags),
                               sorted(rec.flags)))
        if rec.state == "uncertain":
            stats.add("unacked kept")
    for key, rec in L.recs.items():
        if key in seen:
            continue
        if rec.state == "present":
            L.err("%s: %s LOST: expected %s, not in any mailbox"
                  % (key[0], key[1], rec.expect()))
            stats.add("lost")
        elif rec.state == "uncertain":
            stats.add("unacked gone")


def adopt(L):
    """The model becomes what was seen."""
    seen = L.seen
    for key, rec in list(L.recs.items()):
        obs = seen.get(key)
        if obs is None:
            rec.set_absent()
            rec.seen = None
            del L.recs[key]      # absent for good; an id is never reused
            L.gone.add(key)
            continue
        mbox, uid, flags = obs[0]
        rec.set_present(mbox, uid, flags)
        rec.seen = (mbox, uid)
        if rec.owner is None and key[0] == USER_A:
            rec.owner = L.rng.randrange(IMAP_THREADS)   # adopt LMTP mail
        k = (key[0], mbox)
        L.floor[k] = max(L.floor.get(k, 0), uid)
    for k, u in L.acked_uid.items():
        L.floor[k] = max(L.floor.get(k, 0), u)
    L.acked_uid = {}


# ---------------------------------------------------------- kill/restart

def log_problems(L):
    """A sanitizer report in the part of the log written since last call."""
    try:
        with open(L.D.log_path, "rb") as f:
            f.seek(L.log_off)
            text = f.read().decode(errors="replace")
            L.log_off = f.tell()
    except OSError:
        return None
    return harness.sanitizer_report(text)


def can_login(L):
    try:
        c = imap_client(L, USER_A)
        c.logout()
        return True
    except (OSError, EOFError, harness.ProtocolError):
        return False


def kill_round(L, mode):
    """SIGKILL one worker or the whole server; bring it back. Returns the
    kind of kill actually done: "worker" or "server"."""
    D = L.D
    master = D.proc.pid
    ws = workers(master)
    if mode == "worker" and ws and not L.backoff:
        victim = L.rng.choice(ws)
        try:
            off = os.path.getsize(D.log_path)
        except OSError:
            off = 0
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # The other workers go on serving: wait until a login works (the
        # master replacing the victim is checked before the next kill,
        # overlapping this round's verification: it may wait a backoff).
        deadline = time.monotonic() + RESTART_TIMEOUT
        while time.monotonic() < deadline:
            if not D.alive():
                L.err("the master exited after a worker was killed; log:\n%s"
                      % D.log_tail())
                return "worker"
            if victim not in workers(master) and can_login(L):
                L.pending_victim = (victim, len(ws), off)
                return "worker"
            time.sleep(0.02)
        L.err("no login possible %ss after killing worker %d (workers now %s)"
              % (RESTART_TIMEOUT, victim, workers(master)))
        return "worker"
    # the whole server: every process of it at once, master first
    tree = proc_tree(master)
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    D.kill()    # reaps the master, closes the log file handle
    L.backoff = False
    deadline = time.monotonic() + 10
    while any(alive(p) for p in tree[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "server"


def sabotage(L, rnd):
    """MA_CRASH_SABOTAGE=drop|dup|trunc (Maildir only, manual): damage the
    store behind the server's back in round 3, to see the checks fire."""
    what = os.environ.get("MA_CRASH_SABOTAGE")
    if not what or rnd != 3 or L.backend != "maildir":
        return
    cur = os.path.join(L.D.store_path, USER_A, "cur")
    names = sorted(os.listdir(cur))
    if not names:
        return
    victim = os.path.join(cur, names[0])
    print("sabotage %s: %s" % (what, victim))
    if what == "drop":
        os.unlink(victim)
    elif what == "dup":
        with open(victim, "rb") as f:
            data = f.read()
        with open(os.path.join(cur, "%d.sabotage.host:2," % time.time()), "wb") as f:
            f.write(data)
    elif what == "trunc":
        os.truncate(victim, os.path.getsize(victim) // 2)


def workers_back(L):
    """After a worker kill: the master has replaced the victim (as many
    workers as before, the victim not among them)."""
    if L.pending_victim is None or not L.D.alive():
        L.pending_victim = None
        return
    victim, count, off = L.pending_victim
    L.pending_victim = None
    # The master backs off a worker that keeps dying young (0.25 s,
    # doubling, up to 30 s): its "restarting in Xs" line says how long.
    delay = None
    deadline = time.monotonic() + RESTART_TIMEOUT
    while delay is None and time.monotonic() < deadline:
        try:
            with open(L.D.log_path, "rb") as f:
                f.seek(off)
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        m = re.search(r"worker %d exited[^\n]*restarting(?: in ([0-9.]+)s)?"
                      % victim, text)
        if m:
            delay = float(m.group(1) or 0)
        else:
            time.sleep(0.02)
    if delay is None:
        L.err("the master did not log a restart of killed worker %d within "
              "%ss" % (victim, RESTART_TIMEOUT))
        return
    if delay > MAX_BACKOFF_WAIT:
        # do not sit out the backoff: the next worker round kills the
        # whole server instead (a new master starts afresh)
        L.backoff = True
        L.stats.add("restart backoffs skipped")
        return
    deadline = time.monotonic() + delay + RESTART_TIMEOUT
    while time.monotonic() < deadline:
        now = workers(L.D.proc.pid)
        if len(now) >= count and victim not in now:
            return
        time.sleep(0.02)
    L.err("the master did not replace killed worker %d within %.1fs (its "
          "backoff %.2fs; workers now %s, before %d)"
          % (victim, delay + RESTART_TIMEOUT, delay, workers(L.D.proc.pid),
             count))


def restart(L):
    try:
        L.D.start(wait=RESTART_TIMEOUT)
    except harness.DaemonError as e:
        L.err("restart failed: %s" % e)
        return False
    return True


# --------------------------------------------------------------- a run

def make_daemon(backend):
    D = harness.Daemon("crash-" + backend, store=backend, log_level="info",
                       listeners=[
                           dict(name="imap", protocol="imap", tls="none"),
                           dict(name="pop3plain", tls="none"),
                           dict(name="lmtp", protocol="lmtp", tls="none"),
                       ], limits={"max_connections_per_ip": 1000,
                                  "max_connections": 1000})
    D.add_user(USER_A, PW)
    D.add_user(USER_P, PW)
    return D


def rnd_fail(L, rnd, mode):
    out = ["crash-safety %s: FAILED in round %d (%s kill, seed %d)"
           % (L.backend, rnd, mode, SEED)]
    out += L.errors[:MAX_EVIDENCE]
    if len(L.errors) > MAX_EVIDENCE:
        out.append("... %d more" % (len(L.errors) - MAX_EVIDENCE))
    out.append("daemon dir (config, log, store): %s" % L.D.dir)
    raise AssertionError("\n".join(out))


def run_backend(backend):
    L = Load(backend)
    L.D = make_daemon(backend)
    L.D.start()
    with imap_client(L, USER_A) as c:
        for m in MAILBOXES[USER_A]:
            if m != "INBOX":
                st, _ = c.cmd('CREATE "%s"' % m)
                if not st.startswith(b"OK") and b"ALREADYEXISTS" not in st:
                    raise harness.ProtocolError("CREATE %s -> %r" % (m, st))
        c.logout()
    verify(L)
    if L.errors:
        raise AssertionError("before any load:\n" + "\n".join(L.errors))
    st = L.stats
    t0 = time.monotonic()
    for rnd in range(1, ROUNDS + 1):
        L.round = rnd
        L.stop.clear()
        workers_back(L)
        if L.errors:
            rnd_fail(L, rnd, "previous")
        mode = "worker" if L.rng.random() < WORKER_SHARE else "server"
        threads = [ImapLoad(L, t) for t in range(IMAP_THREADS)]
        threads += [PopLoad(L), LmtpLoad(L)]
        for th in threads:
            th.start()
        tl = time.monotonic()
        time.sleep(L.rng.uniform(MIN_MS, MAX_MS) / 1000.0)
        tk = time.monotonic()
        backoff = L.backoff
        done = kill_round(L, mode)
        if done == "worker":
            st.add("worker kills")
        elif mode == "server":
            st.add("server kills")
        elif backoff:
            st.add("server kills (worker restart in backoff)")
        else:
            st.add("worker kills (one process: whole daemon)")
        L.stop.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for th in threads:
            th.join(max(0.1, deadline - time.monotonic()))
        hung = [th.name for th in threads if th.is_alive()]
        if hung:
            L.err("client threads still running %ss after the kill: %s "
                  "(server hung?)" % (JOIN_TIMEOUT, hung))
        rep = log_problems(L)
        if rep:
            L.err("sanitizer report in the daemon log:\n%s" % rep)
        tr = time.monotonic()
        if not L.errors and not L.D.alive():
            restart(L)
        tv = time.monotonic()
        if not L.errors:
            sabotage(L, rnd)
            try:
                verify(L)
            except (OSError, EOFError, harness.ProtocolError,
                    harness.DaemonError) as e:
                L.err("verification could not run: %r" % e)
        te = time.monotonic()
        st.add("ms load", 1000 * (tk - tl))
        st.add("ms kill+join", 1000 * (tr - tk))
        st.add("ms restart", 1000 * (tv - tr))
        st.add("ms verify", 1000 * (te - tv))
        if L.errors:
            rnd_fail(L, rnd, mode)
        if rnd % 50 == 0:
            print("  crash-safety %s: %d rounds done, %.0fs"
                  % (backend, rnd, time.monotonic() - t0))
            sys.stdout.flush()
    workers_back(L)
    if L.errors:
        rnd_fail(L, ROUNDS, "last")
    secs = time.monotonic() - t0
    wk = st["worker kills"]
    wk1 = st["worker kills (one process: whole daemon)"]
    sk = st["server kills"] + st["server kills (worker restart in backoff)"]
    line = ("crash-safety %s: %d rounds (%d worker kills%s, %d server kills) "
            "in %.0fs; %d acked appends, %d acked LMTP deliveries, %d acked "
            "moves, %d acked stores, %d acked expunges, %d acked POP3 "
            "deletes (%d sessions); unacknowledged: %d kept, %d gone; "
            "%d lost, %d duplicated; %d verify runs clean; seed %d"
            % (backend, ROUNDS, wk + wk1,
               " (single process: whole daemon)" if wk1 and not wk else
               (" (%d of them whole daemon: no workers)" % wk1 if wk1 else ""),
               sk, secs, st["append acked"], st["lmtp acked"],
               st["move acked"], st["store acked"], st["expunge acked"],
               st["pop3 dele acked"], st["pop3 sessions"],
               st["unacked kept"], st["unacked gone"], st["lost"],
               st["duplicated"], st["ctl verify runs"], SEED))
    print(line)
    print("  %d of the server kills instead of a worker kill: the master "
          "was backing off a worker restart (> %.1fs)"
          % (st["server kills (worker restart in backoff)"], MAX_BACKOFF_WAIT))
    print("  per round (ms): load %.0f, kill+join %.0f, restart %.0f, "
          "verify (IMAP + mailaccessctl) %.0f"
          % tuple(st["ms " + k] / ROUNDS for k in
                  ("load", "kill+join", "restart", "verify")))
    if L.notes:
        print("  %d NO/-ERR replies under load (allowed), e.g. %s"
              % (len(L.notes), L.notes[:3]))
    sys.stdout.flush()
    SUMMARY.append(line)


SUMMARY = []


def backends():
    one = os.environ.get("MA_TEST_STORE", "").strip()
    names = [one] if one else os.environ.get("MA_TEST_STORES",
                                             "lmdb maildir").split()
    return names


def register(backend):
    def fn():
        if not harness.have_store_plugin(backend):
            raise harness.Skip("store-%s.so not built" % backend)
        for so in (("proto-imap", "imap.so"), ("plugins", "lmtp", "lmtp.so"),
                   ("proto-pop3", "pop3.so")):
            if not os.path.exists(os.path.join(harness.build_dir(), *so)):
                raise harness.Skip("%s not built" % so[-1])
        run_backend(backend)
    fn.__name__ = "crash-safety-%s" % backend
    harness.test(timeout=WATCHDOG)(fn)


def watchdog():
    """The whole script never outlives MA_CRASH_WATCHDOG seconds."""
    time.sleep(WATCHDOG + 30)
    print("FAIL crash-safety watchdog: still running after %.0fs; killing"
          % (WATCHDOG + 30))
    for d in harness._daemons:
        if d.proc is not None:
            for p in proc_tree(d.proc.pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        print("kept %s for inspection" % d.dir)
    print("RESULT passed=0 failed=1 skipped=0")
    sys.stdout.flush()
    os._exit(1)


if __name__ == "__main__":
    print("crash-safety: seed %d, %d rounds per backend, kill after %d..%d ms"
          % (SEED, ROUNDS, MIN_MS, MAX_MS))
    sys.stdout.flush()
    for b in backends():
        register(b)
    threading.Thread(target=watchdog, daemon=True).start()
    harness.main()
