#!/usr/bin/env python3
"""imap_100k.py - how mailaccessd's IMAP copes with a 100,000-message INBOX.

A measurement, not a pass/fail test (timings depend on the machine). It
starts a real mailaccessd (a build without sanitizers: see --build) on
loopback with the test harness, its store on tmpfs (--store-dir), then:

 1. times `mailaccessctl deliver` (one process per message) on a sample,
    to show why the bulk load uses IMAP instead;
 2. fills two INBOXes with N messages each over one IMAP connection,
    APPENDs pipelined with LITERAL+ (RFC 7888; synchronizing literals if
    the server lacks it): "small" (~0.3 kB messages) and "large" (the same
    headers, --large-size bytes in all, 10 kB by default);
 3. restarts the daemon and, on a fresh connection per mailbox, times
    SELECT (twice), `FETCH 1:* (UID FLAGS)` (twice; response bytes too)
    and `SEARCH TEXT` (a needle in every 10,000th message; the hit count
    is checked), with the server processes' CPU time and page faults.

Proof that SELECT and FETCH (UID FLAGS) read no message bodies: LMDB maps
its file, so reads are page accesses, not read() calls. Before each
command the accessed bits of the daemon's pages are cleared
(/proc/PID/clear_refs); afterwards the `Referenced` kB of the store's
mappings (/proc/PID/smaps) is what the command touched. The large INBOX
holds ~30x the bytes of the small one: SELECT and FETCH touch the same
few MB or kB in both, SEARCH TEXT (which must read bodies) the whole
mailbox.

    python3 tests/bench/imap_100k.py                 # N = 100000
    python3 tests/bench/imap_100k.py -n 20000        # quicker
    python3 tests/bench/imap_100k.py --doc docs/performance.md   # also write the doc

Only 127.0.0.1 is used; every socket read has a timeout.
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "protocol"))

NEEDLE = b"zebraneedle"
NEEDLE_EVERY = 10000


def pick_build(arg):
    """A build without sanitizers: --build, $MA_BUILD_DIR, build-tests, build."""
    cands = [arg, os.environ.get("MA_BUILD_DIR"),
             os.path.join(ROOT, "build-tests"), os.path.join(ROOT, "build")]
    for c in cands:
        if c and os.path.exists(os.path.join(c, "core", "mailaccessd")):
            return os.path.abspath(c)
    sys.exit("no build with core/mailaccessd found (use --build DIR)")


def sanitized(build):
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            for o in json.load(f):
                if o.get("name") == "b_sanitize":
                    return o.get("value") not in ("none", "", None)
    except (OSError, ValueError):
        pass
    return False


def message(i, body_size):
    """Message i: ~0.5 kB of headers and first line, padded to body_size."""
    head = (b"From: Sender %d <sender%d@example.org>\r\n"
            b"To: bench@example.com\r\n"
            b"Subject: benchmark message number %d\r\n"
            b"Message-ID: <bench-%d@example.org>\r\n"
            b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" % (i, i % 997, i, i))
    first = b"This is the body of message %d.%s\r\n" % (
        i, b" " + NEEDLE if i % NEEDLE_EVERY == 0 else b"")
    out = head + first
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\r\n"
    if body_size > len(out):
        n = (body_size - len(out)) // len(line)
        out += line * n
    return out


class Conn:
    """Minimal IMAP client for timing: plain loopback socket."""

    def __init__(self, port, timeout=120):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.n = 0
        self.rx = 0
        self.line()  # greeting

    def fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("server closed the connection")
        self.rx += len(d)
        self.buf += d

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            self.fill()

    def cmd(self, text):
        """(tagged line, [untagged lines], seconds, bytes received).

        Reads raw chunks until the tagged line, then splits: parsing line
        by line in Python would time the client, not the server. Only for
        commands whose responses carry no literals (SELECT, FETCH of UID
        and FLAGS, SEARCH, LOGIN)."""
        self.n += 1
        tag = b"b%d" % self.n
        acc = bytearray(self.buf)
        self.buf = bytearray()
        t0 = time.perf_counter()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        needle = b"\r\n" + tag + b" "
        pos = -1
        scan = 0
        while True:
            if pos < 0:
                if acc.startswith(tag + b" "):
                    pos = 0
                else:
                    i = acc.find(needle, scan)
                    if i >= 0:
                        pos = i + 2
                    else:
                        scan = max(0, len(acc) - len(needle))
            if pos >= 0:
                end = acc.find(b"\r\n", pos)
                if end >= 0:
                    break
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("server closed the connection")
            self.rx += len(d)
            acc += d
        dt = time.perf_counter() - t0
        tagged = bytes(acc[pos:end])
        self.buf = acc[end + 2:]
        un = bytes(acc[:pos]).split(b"\r\n")[:-1] if pos else []
        if not tagged[len(tag) + 1:].startswith(b"OK"):
            raise RuntimeError("%s -> %r" % (text, tagged))
        return tagged, un, dt, end + 2

    def close(self):
        try:
            self.cmd("LOGOUT")
        except Exception:
            pass
        self.s.close()


def bulk_append(port, user, pw, count, body_size, window=2000):
    """APPEND count messages over one connection, pipelined. Returns
    (seconds, bytes sent, how)."""
    c = Conn(port)
    c.cmd('LOGIN "%s" "%s"' % (user, pw))
    caps = b" ".join(c.cmd("CAPABILITY")[1]).upper()
    plus = b"LITERAL+" in caps
    sent = 0
    t0 = time.perf_counter()
    if plus:
        sem = threading.Semaphore(window)
        err = []

        def writer():
            nonlocal sent
            try:
                chunk = []
                size = 0
                for i in range(count):
                    sem.acquire()
                    m = message(i, body_size)
                    part = b"a%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n"
                    chunk.append(part)
                    size += len(part)
                    if size > 256 * 1024 or i == count - 1:
                        c.s.sendall(b"".join(chunk))
                        sent += size
                        chunk, size = [], 0
            except Exception as e:  # reported by the reader
                err.append(e)

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        done = 0
        while done < count:
            ln = c.line()
            if ln.startswith(b"a"):
                if b" OK" not in ln[:12]:
                    raise RuntimeError("APPEND failed: %r" % ln)
                done += 1
                sem.release()
            if err:
                raise err[0]
        th.join(10)
    else:
        for i in range(count):
            m = message(i, body_size)
            c.s.sendall(b"a%d APPEND INBOX {%d}\r\n" % (i, len(m)))
            ln = c.line()
            if not ln.startswith(b"+"):
                raise RuntimeError("APPEND literal refused: %r" % ln)
            c.s.sendall(m + b"\r\n")
            sent += len(m)
            while True:
                ln = c.line()
                if ln.startswith(b"a%d " % i):
                    if b" OK" not in ln[:12]:
                        raise RuntimeError("APPEND failed: %r" % ln)
                    break
    dt = time.perf_counter() - t0
    c.close()
    return dt, sent, "pipelined APPEND with LITERAL+" if plus else "APPEND, synchronizing literals"


def tree_pids(root):
    """root and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


STORE_PREFIX = None  # the daemon's store dir: its mapped files are counted


def mapped_store_kb(pid):
    """(resident kB, referenced kB) of the store's files mapped into pid.
    LMDB maps its data file: a page becomes resident in a process when it
    (or the kernel's fault-around next to it) is read; the referenced bit
    says the page was really accessed since clear_refs()."""
    kb = ref = 0
    inside = False
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for ln in f:
                if ln[0] in "0123456789abcdef" and "-" in ln.split(" ", 1)[0]:
                    parts = ln.split(None, 5)
                    inside = len(parts) == 6 and parts[5].startswith(STORE_PREFIX)
                elif inside and ln.startswith("Rss:"):
                    kb += int(ln.split()[1])
                elif inside and ln.startswith("Referenced:"):
                    ref += int(ln.split()[1])
    except OSError:
        pass
    return kb, ref


def clear_refs(root):
    """Clear the accessed bits of every page of the daemon's processes."""
    for p in tree_pids(root):
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("1")
        except OSError:
            pass


def proc_stats(root):
    """Summed over the daemon's processes: minor/major faults, CPU seconds,
    bytes read from storage, RSS kB, resident kB of the mapped store."""
    tck = os.sysconf("SC_CLK_TCK")
    tot = dict(minflt=0, majflt=0, cpu=0.0, read_bytes=0, rss_kb=0, store_kb=0,
               ref_kb=0)
    for p in tree_pids(root):
        rss, ref = mapped_store_kb(p)
        tot["store_kb"] += rss
        tot["ref_kb"] += ref
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
            f2 = st[st.rindex(")") + 2:].split()
            tot["minflt"] += int(f2[7])
            tot["majflt"] += int(f2[9])
            tot["cpu"] += (int(f2[11]) + int(f2[12])) / tck
            tot["rss_kb"] += int(f2[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
            with open("/proc/%d/io" % p) as f:
                for ln in f:
                    if ln.startswith("read_bytes:"):
                        tot["read_bytes"] += int(ln.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return tot


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def measure(d, port, user, pw, count):
    """SELECT (cold, then again warm), FETCH 1:* (UID FLAGS) twice and
    SEARCH TEXT on one fresh connection. Before each warm command the
    accessed bits are cleared, so ref_kb afterwards is what it touched."""
    res = {}
    c = Conn(port)
    c.cmd('LOGIN "%s" "%s"' % (user, pw))
    pid = d.proc.pid

    def run(key, command, clear=True):
        if clear:
            clear_refs(pid)
        s0 = proc_stats(pid)
        _, un, dt, rx = c.cmd(command)
        s1 = proc_stats(pid)
        r = dict(seconds=dt, bytes=rx, **delta(s0, s1))
        r["ref_kb"] = s1["ref_kb"] if clear else None
        res[key] = r
        return un

    un = run("select", "SELECT INBOX", clear=False)
    exists = [int(m.group(1)) for m in (re.match(rb"\* (\d+) EXISTS", u) for u in un) if m]
    assert exists and exists[-1] == count, (exists, count)
    run("select_again", "SELECT INBOX")
    un = run("fetch", "FETCH 1:* (UID FLAGS)")
    nfetch = sum(1 for u in un if b" FETCH (" in u)
    assert nfetch == count, (nfetch, count)
    run("fetch_again", "FETCH 1:* (UID FLAGS)")
    un = run("search", "SEARCH TEXT %s" % NEEDLE.decode())
    hits = sum(len(u.split()) - 2 for u in un if u.startswith(b"* SEARCH"))
    res["search"]["hits"] = hits
    res["search"]["want"] = len(range(0, count, NEEDLE_EVERY))
    c.close()
    return res


def ctl_rate(d, user, sample):
    t0 = time.perf_counter()
    for i in range(sample):
        d.deliver(user, message(i, 0))
    return sample / (time.perf_counter() - t0)


def fmt_bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100000, help="messages per mailbox")
    ap.add_argument("--large-size", type=int, default=10240,
                    help="size of each 'large' message (bytes)")
    ap.add_argument("--build", help="build dir (default: build-tests, build)")
    ap.add_argument("--ctl-sample", type=int, default=100,
                    help="mailaccessctl deliver calls to time")
    ap.add_argument("--store-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the daemon's temp dir (and LMDB store) goes; default "
                    "/dev/shm: every APPEND fsyncs, which on a disk caps the load "
                    "at ~100 messages/s")
    ap.add_argument("--doc", help="write the results into this markdown file")
    args = ap.parse_args()

    os.environ["MA_BUILD_DIR"] = pick_build(args.build)
    import harness  # noqa: E402  (reads MA_BUILD_DIR)
    harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))
    build = harness.build_dir()
    if args.store_dir:
        import tempfile
        tempfile.tempdir = args.store_dir
    if sanitized(build):
        print("warning: %s is a sanitizer build; timings mean little" % build)

    class BenchDaemon(harness.Daemon):
        def write_config(self):
            super().write_config()
            with open(self.conf_path) as f:
                text = f.read()
            # two 100k mailboxes of up to 10 kB each need more than 256M
            text = text.replace("map_size = 256M", "map_size = 16G")
            # no POP3 listener here, so no pop3 { } section either
            text = re.sub(r"\npop3 \{[^}]*\}\n", "\n", text)
            with open(self.conf_path, "w") as f:
                f.write(text)

    d = BenchDaemon("bench100k", log_level="info", listeners=[
        dict(name="imap", protocol="imap", tls="none", allow_plaintext_auth=True)])
    global STORE_PREFIX
    STORE_PREFIX = os.path.realpath(d.store_path) + "/"
    pw = "bench pw"
    for u in ("small@example.com", "large@example.com", "ctl@example.com"):
        d.add_user(u, pw)
    d.start()
    port = d.port("imap")
    rows = {}
    store_bytes = 0
    try:
        rate = ctl_rate(d, "ctl@example.com", args.ctl_sample)
        print("mailaccessctl deliver: %.1f msg/s -> %d messages would take %.0f s"
              % (rate, args.n, args.n / rate))
        loads = {}
        for name, size in (("small", 0), ("large", args.large_size)):
            user = name + "@example.com"
            dt, sent, how = bulk_append(port, user, pw, args.n, size)
            loads[name] = (dt, sent)
            print("%s: %d messages (%s) in %.1f s = %.0f msg/s, %s (%s)"
                  % (name, args.n, fmt_bytes(sent), dt, args.n / dt, how,
                     fmt_bytes(sent / args.n) + " each"))
        store_bytes = sum(os.path.getsize(os.path.join(r, f))
                          for r, _, fs in os.walk(d.store_path) for f in fs)
        # New processes, so nothing of the store is mapped in yet: what a
        # command reads shows as the store's resident bytes growing.
        d.stop()
        d.start()
        port = d.port("imap")
        for name in ("small", "large"):
            rows[name] = measure(d, port, name + "@example.com", pw, args.n)
    finally:
        d.stop()
        import shutil
        shutil.rmtree(d.dir, ignore_errors=True)
        shutil.rmtree(d.certs["dir"], ignore_errors=True)

    hdr = ("| mailbox | command | time | response | server CPU | page faults "
           "| store mapped in | store touched |")
    sep = "|---|---|---:|---:|---:|---:|---:|---:|"
    lines = [hdr, sep]
    for name in ("small", "large"):
        for key, label in (("select", "SELECT INBOX (first)"),
                           ("select_again", "SELECT INBOX (again)"),
                           ("fetch", "FETCH 1:* (UID FLAGS)"),
                           ("fetch_again", "FETCH 1:* (UID FLAGS), again"),
                           ("search", "SEARCH TEXT (%d hits)" % rows[name]["search"]["hits"])):
            r = rows[name][key]
            lines.append("| %s (%s) | %s | %.3f s | %s | %.2f s | %d | %s | %s |" % (
                name, fmt_bytes(loads[name][1]), label, r["seconds"], fmt_bytes(r["bytes"]),
                r["cpu"], r["minflt"] + r["majflt"], fmt_bytes(r["store_kb"] * 1024),
                "-" if r["ref_kb"] is None else fmt_bytes(r["ref_kb"] * 1024)))
    table = "\n".join(lines)

    def ratio(key, field="seconds"):
        return rows["large"][key][field] / max(rows["small"][key][field], 1e-9)
    body_ratio = loads["large"][1] / max(loads["small"][1], 1)
    summary = ("large/small: message bytes x%.1f; SELECT time x%.2f, FETCH (UID FLAGS) "
               "time x%.2f, SEARCH TEXT time x%.2f; store touched by SELECT (again) "
               "x%.2f, by FETCH x%.2f, by SEARCH TEXT x%.1f" % (
                   body_ratio, ratio("select"), ratio("fetch"), ratio("search"),
                   ratio("select_again", "ref_kb"), ratio("fetch", "ref_kb"),
                   ratio("search", "ref_kb")))
    search_ok = all(rows[n]["search"]["hits"] == rows[n]["search"]["want"] for n in rows)
    print()
    print(table)
    print()
    print(summary)
    print("SEARCH TEXT hit counts %s" % ("correct" if search_ok else "WRONG: %r" % {
        n: (rows[n]["search"]["hits"], rows[n]["search"]["want"]) for n in rows}))
    print("store after both loads: %s" % fmt_bytes(store_bytes))

    if args.doc:
        write_doc(args, build, rate, loads, rows, table, summary, search_ok, store_bytes)
        print("wrote %s" % args.doc)


def write_doc(args, build, rate, loads, rows, table, summary, search_ok, store_bytes):
    """Replace the '100k' section of the doc (or create the doc)."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    n = args.n
    sec = []
    sec.append("<!-- imap_100k:begin (written by tests/bench/imap_100k.py --doc) -->")
    sec.append("## IMAP with a %d-message INBOX" % n)
    sec.append("")
    sec.append("Command: `python3 tests/bench/imap_100k.py -n %d --large-size %d "
               "--build %s --doc docs/performance.md` (a build without sanitizers; "
               "store in %s, %d cores, %s; run %s UTC)."
               % (n, args.large_size, os.path.relpath(build, ROOT), args.store_dir or "/tmp",
                  os.cpu_count(), cpu, time.strftime("%Y-%m-%d %H:%M", time.gmtime())))
    sec.append("")
    sec.append("Loading: one IMAP connection, APPENDs pipelined with LITERAL+ (RFC 7888), "
               "each APPEND its own transaction. The store is on tmpfs for the load: "
               "on this machine's disk every APPEND's fsync caps it near 100 messages/s.")
    sec.append("")
    for name in ("small", "large"):
        dt, sent = loads[name]
        sec.append("- %s: %d messages, %s, in %.1f s (%.0f messages/s)"
                   % (name, n, fmt_bytes(sent), dt, n / dt))
    sec.append("- `mailaccessctl deliver`, one process per message: %.1f messages/s, "
               "so %d would take %.0f s: fine for an MTA, far too slow to build this mailbox."
               % (rate, n, n / rate))
    sec.append("- store size after both loads: %s" % fmt_bytes(store_bytes))
    sec.append("")
    sec.append("Then the daemon is restarted (fresh processes have mapped nothing of "
               "the store yet) and each mailbox is measured on one new connection: SELECT "
               "twice, FETCH twice, SEARCH TEXT. Time: wall clock at the client up to the "
               "tagged OK. Server CPU and page faults: /proc/PID/stat, summed over the "
               "daemon's processes. LMDB reads through mmap, so reads are seen in the "
               "store's mappings (/proc/PID/smaps): *store mapped in* is how much became "
               "resident (what was read, rounded up by the kernel's 64 kB fault-around); "
               "*store touched* is what was really accessed: the accessed bits are cleared "
               "(/proc/PID/clear_refs) just before each command but the first SELECT, and "
               "the `Referenced` total read after it.")
    sec.append("")
    sec.append(table)
    sec.append("")
    sec.append(summary + ".")
    sec.append("")
    def touched(name, key):
        return fmt_bytes(rows[name][key]["ref_kb"] * 1024)
    sec.append("SELECT and `FETCH 1:* (UID FLAGS)` read no message bodies: SELECT touches "
               "%s (small) and %s (large) of the store, FETCH %s and %s, the same whatever "
               "the message size, and their CPU time does not grow with it; SEARCH TEXT, "
               "which must read every message, touches %s and %s. The first SELECT of a "
               "fresh process maps in more (and a bit more time) for large messages only "
               "because the index pages lie farther apart in the file, between message "
               "pages, so fault-around brings in more neighbours. SEARCH TEXT hit "
               "counts: %s." % (
                   touched("small", "select_again"), touched("large", "select_again"),
                   touched("small", "fetch"), touched("large", "fetch"),
                   touched("small", "search"), touched("large", "search"),
                   "correct" if search_ok else "WRONG"))
    sec.append("<!-- imap_100k:end -->")
    block = "\n".join(sec) + "\n"
    try:
        with open(args.doc) as f:
            text = f.read()
    except FileNotFoundError:
        text = ("# Performance\n\nMeasurements, not pass/fail tests: numbers depend on "
                "the machine. Each section names the command that produced it; rerun it "
                "to refresh the section.\n\n")
    m = re.search(r"<!-- imap_100k:begin.*?<!-- imap_100k:end -->\n?", text, re.S)
    text = text[:m.start()] + block + text[m.end():] if m else text + block
    with open(args.doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
