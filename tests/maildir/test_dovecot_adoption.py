#!/usr/bin/env python3
"""test_dovecot_adoption.py - mailaccess adopts a Maildir Dovecot wrote.

A private Dovecot (Debian's dovecot-imapd + dovecot-pop3d, its own config
via `dovecot -c FILE -F`, base_dir and state in a temp dir, listeners on
free 127.0.0.1 ports, ssl = no, a passwd-file passdb/userdb,
`mail_location = maildir:DIR/%u`, mail owned by the `mail` user) takes
messages by IMAP APPEND with flags and keywords, into INBOX and a folder,
expunges one (so the UIDs have a gap), and reports what it holds: SELECT
(UIDVALIDITY, UIDNEXT), UID FETCH (FLAGS, RFC822.SIZE, INTERNALDATE,
BODY.PEEK[]) and its POP3 UIDL list and RETR bytes. Then Dovecot stops and
mailaccessd starts with `store { backend = maildir  path = DIR }` on the
same files. It must report the same UIDVALIDITY, UIDNEXT, UIDs, flags and
keywords, sizes and dates, byte-identical messages over IMAP and POP3, and
the POP3 UIDLs Dovecot printed (our `uidl_format = dovecot`); a message
appended afterwards gets the UID Dovecot would have given.

Dovecot is installed with apt-get when missing (non-interactive, at most
5 minutes); the file skips when that fails or store-maildir.so is not
built. Run: python3 tests/maildir/test_dovecot_adoption.py [test ...]
"""

import datetime
import grp
import imaplib
import os
import poplib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Everything in this file is about the Maildir backend, whatever run it is.
os.environ["MA_TEST_STORE"] = "maildir"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "protocol"))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

USER = "alice"
PW = "Adopt pw 4"
MAIL_USER = "mail"
poplib._MAXLINE = 1 << 20  # default 2048; MESSAGES[2] has a 3000-byte line  # Debian's mail user (uid 8) owns the Maildir

# (mailbox, flags for APPEND, message with LF line ends as an MTA writes)
MESSAGES = [
    ("INBOX", r"(\Seen)",
     b"From: Ann <ann@example.org>\nTo: alice@example.com\n"
     b"Subject: plain seen\nDate: Mon, 2 Nov 2026 10:00:00 +0100\n"
     b"Message-ID: <m1@example.org>\n\nfirst body\n"),
    ("INBOX", r"(\Answered \Flagged $Important)",
     b"From: Bob <bob@example.org>\nTo: alice@example.com\n"
     b"Subject: answered flagged important\n"
     b"Message-ID: <m2@example.org>\n\nsecond\n.\n..\n.x\n"),
    ("INBOX", r"()",
     b"From: Carl <carl@example.org>\nTo: alice@example.com\n"
     b"Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\nMIME-Version: 1.0\n"
     b"Content-Type: text/plain; charset=utf-8\n"
     b"Content-Transfer-Encoding: 8bit\n\n"
     + "Grüße, 8-bit body\n".encode() + b"x" * 3000 + b"\n"),
    ("INBOX", r"(\Seen)",  # expunged below: a gap in the UIDs
     b"From: gone@example.org\nSubject: to be expunged\n\nbye\n"),
    ("INBOX", r"(\Draft \Seen $Label1 Project)",
     b"From: Dee <dee@example.org>\nTo: alice@example.com\n"
     b"Subject: draft with two keywords\n\nno final newline"),
    ("INBOX", r"(Project)",
     b"From: Eve <eve@example.org>\nSubject: keyword only\n\n"
     b"multi\npart\nlines\n"),
    ("Work", r"(\Seen)",
     b"From: boss@example.org\nSubject: in a folder\n\nwork 1\n"),
    ("Work", r"($Important)",
     b"From: boss@example.org\nSubject: in a folder 2\n\nwork 2\n"),
]
EXPUNGED_INDEX = 3  # MESSAGES[3]

T = None         # temp dir
MAILDIR = None   # the Maildir root (DIR in mail_location = maildir:DIR/%u)
DV = {}          # what Dovecot reported
D = None         # the mailaccessd on the same Maildir
_dovecot = None  # the Dovecot master process


# ------------------------------------------------------------ Dovecot

def ensure_dovecot():
    """The dovecot binary, installing dovecot-imapd + dovecot-pop3d when
    missing. Skip if that fails."""
    have = lambda: shutil.which("dovecot") or (
        os.path.exists("/usr/sbin/dovecot") and "/usr/sbin/dovecot")
    ok_pkgs = lambda: all(os.path.exists(p) for p in (
        "/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3"))
    if have() and ok_pkgs():
        return have()
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise harness.Skip("dovecot-imapd/dovecot-pop3d not installed "
                           "(and cannot apt-get them here)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends",
             "-o", "Dpkg::Options::=--force-confdef",
             "-o", "Dpkg::Options::=--force-confold",
             "dovecot-imapd", "dovecot-pop3d"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, timeout=300)
        out = r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        raise harness.Skip("apt-get install dovecot-imapd dovecot-pop3d "
                           "took over 5 minutes")
    if not (have() and ok_pkgs()):
        raise harness.Skip("could not install dovecot-imapd/dovecot-pop3d: "
                           + out.strip()[-300:])
    return have()


def dovecot_config(imap_port, pop3_port):
    p = lambda *a: os.path.join(T, *a)
    mu = pwd.getpwnam(MAIL_USER)
    # passwd-file: user:password:uid:gid:gecos:home:shell (one file serves
    # as passdb and userdb).
    with open(p("dovecot-users"), "w") as f:
        f.write("%s:{PLAIN}%s:%d:%d::%s::\n"
                % (USER, PW, mu.pw_uid, mu.pw_gid, p("home", USER)))
    os.chmod(p("dovecot-users"), 0o644)
    conf = """# private Dovecot of tests/maildir/test_dovecot_adoption.py
protocols = imap pop3
listen = 127.0.0.1
base_dir = {t}/dovecot-run
state_dir = {t}/dovecot-state
log_path = {t}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{maildir}/%u
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
# POP3 RETR must not set \\Seen: the flags checked are the ones APPENDed.
pop3_no_flag_updates = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {t}/dovecot-users
}}
userdb {{
  driver = passwd-file
  args = {t}/dovecot-users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""".format(t=T, maildir=MAILDIR, uid=mu.pw_uid, gid=mu.pw_gid,
           imap=imap_port, pop3=pop3_port)
    with open(p("dovecot.conf"), "w") as f:
        f.write(conf)
    return p("dovecot.conf")


def start_dovecot(binary):
    global _dovecot
    for attempt in range(3):
        ports = (harness.free_port(), harness.free_port())
        conf = dovecot_config(*ports)
        with open(os.path.join(T, "dovecot.out"), "ab") as out:
            _dovecot = subprocess.Popen(
                [binary, "-c", conf, "-F"], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        pending = set(ports)
        while pending and time.monotonic() < deadline:
            if _dovecot.poll() is not None:
                break
            for port in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    pending.discard(port)
                except OSError:
                    pass
            time.sleep(0.05)
        if not pending:
            DV["imap_port"], DV["pop3_port"] = ports
            return
        stop_dovecot()
        if "in use" not in dovecot_log():
            break
    raise AssertionError("private Dovecot did not start; log:\n"
                         + dovecot_log()[-3000:])


def _descendants(pid):
    """Pids of every process below pid (from /proc), so that stopping the
    master can wait for its imap/pop3 children to be gone too."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def stop_dovecot():
    """SIGTERM our Dovecot master (only the process we started) and wait
    until it and its children are gone, so nothing of Dovecot's still
    touches the Maildir when mailaccessd opens it."""
    global _dovecot
    if _dovecot is None:
        return
    kids = _descendants(_dovecot.pid)
    if _dovecot.poll() is None:
        _dovecot.send_signal(signal.SIGTERM)
        try:
            _dovecot.wait(20)
        except subprocess.TimeoutExpired:
            _dovecot.kill()
            _dovecot.wait(10)
    _dovecot = None
    # An imap process with a client still connected takes up to ~10 s
    # ("Server shutting down").
    deadline = time.monotonic() + 30
    while kids and time.monotonic() < deadline:
        kids = [k for k in kids if os.path.exists("/proc/%d" % k)]
        time.sleep(0.05)
    assert not kids, "Dovecot processes %s still running" % kids


def dovecot_log():
    out = []
    for n in ("dovecot.log", "dovecot.out"):
        try:
            with open(os.path.join(T, n), errors="replace") as f:
                out.append(f.read())
        except FileNotFoundError:
            pass
    return "\n".join(out)


# ------------------------------------------------------------ reading

FETCH_RE = re.compile(
    rb"(?:\* )?\d+ (?:FETCH )?\((?=.*UID (\d+))(?=.*FLAGS \(([^)]*)\))"
    rb"(?=.*RFC822\.SIZE (\d+))(?=.*INTERNALDATE \"([^\"]+)\")")


def read_mailbox_imap(m, mailbox):
    """SELECT + UID FETCH through imaplib: dict(uidvalidity, uidnext,
    msgs={uid: dict(flags=set, size, date, body)})."""
    typ, _ = m.select('"%s"' % mailbox)
    assert typ == "OK", (mailbox, typ)
    uv = int(m.response("UIDVALIDITY")[1][0])
    un = int(m.response("UIDNEXT")[1][0])
    typ, data = m.uid("FETCH", "1:*",
                      "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    msgs = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        mm = FETCH_RE.match(head)
        assert mm, head
        flags = set(mm.group(2).decode().split()) - {"\\Recent"}
        msgs[int(mm.group(1))] = dict(flags=flags, size=int(mm.group(3)),
                                      date=mm.group(4).decode(), body=body)
    return dict(uidvalidity=uv, uidnext=un, msgs=msgs)


def read_pop3(port):
    """UIDL list [(msgno, uidl)] and {msgno: RETR bytes} (poplib unstuffs
    and splits lines; rebuilt with CRLF)."""
    p = poplib.POP3("127.0.0.1", port, timeout=20)
    try:
        p.user(USER)
        p.pass_(PW)
        _, lines, _ = p.uidl()
        uidls = []
        for l in lines:
            n, u = l.decode().split()
            uidls.append((int(n), u))
        bodies = {}
        for n, _ in uidls:
            _, blines, _ = p.retr(n)
            bodies[n] = b"".join(l + b"\r\n" for l in blines)
    finally:
        p.quit()
    return uidls, bodies


# -------------------------------------------------------------- setup

def setup():
    global T, MAILDIR, D
    if not harness.have_store_plugin("maildir"):
        raise harness.Skip("store-maildir.so not built (%s)"
                           % harness.store_plugin_path("maildir"))
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap",
                                       "imap.so")):
        raise harness.Skip("imap.so not built")
    if os.geteuid() != 0:
        raise harness.Skip("needs root (Dovecot's mail_uid, reading its files)")
    binary = ensure_dovecot()
    try:
        mu = pwd.getpwnam(MAIL_USER)
        grp.getgrgid(mu.pw_gid)
    except KeyError:
        raise harness.Skip("no %r user for Dovecot's mail_uid" % MAIL_USER)

    T = tempfile.mkdtemp(prefix="ma-dovecot-")
    os.chmod(T, 0o755)  # the mail user walks into MAILDIR
    MAILDIR = os.path.join(T, "maildir")
    os.makedirs(MAILDIR)
    os.makedirs(os.path.join(T, "home", USER))
    os.chown(MAILDIR, mu.pw_uid, mu.pw_gid)
    os.chown(os.path.join(T, "home", USER), mu.pw_uid, mu.pw_gid)

    # -- Dovecot writes and reports
    start_dovecot(binary)
    DV["uidl_format"] = subprocess.run(
        ["doveconf", "-c", os.path.join(T, "dovecot.conf"), "-h",
         "pop3_uidl_format"], stdout=subprocess.PIPE,
        timeout=30).stdout.decode().strip()
    m = None
    try:
        m = imaplib.IMAP4("127.0.0.1", DV["imap_port"], timeout=20)
        m.login(USER, PW)
        typ, _ = m.create("Work")
        assert typ == "OK"
        m.subscribe("Work")
        DV["appenduid"] = []
        DV["dates"] = []
        for i, (box, flags, msg) in enumerate(MESSAGES):
            # a distinct INTERNALDATE each (Dovecot keeps it as the mtime)
            date = '"%02d-Mar-2025 %02d:%02d:%02d +0000"' % (
                i + 1, 8 + i, 5 * i, 59 - i)
            DV["dates"].append(date.strip('"'))
            typ, data = m.append(box, flags, date, crlf(msg))
            assert typ == "OK", data
            mm = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
            assert mm, data
            DV["appenduid"].append((box, int(mm.group(1)), int(mm.group(2))))
        # expunge MESSAGES[EXPUNGED_INDEX]
        m.select("INBOX")
        uid = DV["appenduid"][EXPUNGED_INDEX][2]
        typ, _ = m.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
        assert typ == "OK"
        typ, _ = m.expunge()
        assert typ == "OK"
        DV["expunged_uid"] = uid
        DV["pop3"] = read_pop3(DV["pop3_port"])
        DV["boxes"] = {b: read_mailbox_imap(m, b) for b in ("INBOX", "Work")}
        m.logout()
        m = None
    finally:
        if m is not None:
            try:
                m.shutdown()
            except OSError:
                pass
        if sys.exc_info()[0] is None:
            stop_dovecot()
        else:
            try:  # keep the first error, not a slow shutdown's
                stop_dovecot()
            except AssertionError as e:
                print(e)
    DV["stat"] = {}
    for root, _, files in os.walk(os.path.join(MAILDIR, USER)):
        for f in files:
            DV["stat"][os.path.join(root, f)] = os.stat(
                os.path.join(root, f)).st_uid

    # -- mailaccessd on the same Maildir
    D = harness.Daemon("adopt", store="maildir", store_path=MAILDIR,
                       listeners=[dict(name="imap", protocol="imap"),
                                  dict(name="pop3")])
    D.add_user(USER, PW)
    D.start()


def ma_imap():
    m = imaplib.IMAP4("127.0.0.1", D.port("imap"), timeout=20)
    m.login(USER, PW)
    return m


# -------------------------------------------------------------- tests

@test(timeout=30)
def test_dovecot_wrote_maildir():
    """What Dovecot left is a Maildir++ owned by the mail user (so the test
    adopts a real one, not something mailaccess made)."""
    u = os.path.join(MAILDIR, USER)
    for sub in ("cur", "new", "tmp", ".Work/cur", "dovecot-uidlist",
                ".Work/dovecot-uidlist"):
        assert os.path.exists(os.path.join(u, sub)), sub
    mu = pwd.getpwnam(MAIL_USER).pw_uid
    assert DV["stat"] and all(v == mu for v in DV["stat"].values()), DV["stat"]
    with open(os.path.join(u, "dovecot-keywords")) as f:
        kw = f.read()
    assert "$Important" in kw and "Project" in kw, kw


@test(timeout=30)
def test_dovecot_uidl_format():
    """Dovecot's POP3 UIDL is its default %08Xu%08Xv: 8 hex digits of UID
    then 8 of UIDVALIDITY, lowercase (its X is printf %x)."""
    assert DV["uidl_format"] == "%08Xu%08Xv", DV["uidl_format"]
    uidls, _ = DV["pop3"]
    box = DV["boxes"]["INBOX"]
    uids = sorted(box["msgs"])
    assert len(uidls) == len(uids) == len(MESSAGES) - 3
    for (n, u), uid in zip(uidls, uids):
        assert u == "%08x%08x" % (uid, box["uidvalidity"]), (n, u, uid)
    print("  Dovecot UIDLs: %s" % " ".join(u for _, u in uidls))


@test(timeout=30)
def test_same_uidvalidity_uidnext():
    m = ma_imap()
    try:
        for box in ("INBOX", "Work"):
            ours = read_mailbox_imap(m, box)
            dv = DV["boxes"][box]
            assert ours["uidvalidity"] == dv["uidvalidity"], \
                (box, ours["uidvalidity"], dv["uidvalidity"])
            assert ours["uidnext"] == dv["uidnext"], \
                (box, ours["uidnext"], dv["uidnext"])
    finally:
        m.logout()


@test(timeout=30)
def test_same_uids_flags_keywords():
    m = ma_imap()
    try:
        for box in ("INBOX", "Work"):
            ours = read_mailbox_imap(m, box)["msgs"]
            dv = DV["boxes"][box]["msgs"]
            assert sorted(ours) == sorted(dv), (box, sorted(ours), sorted(dv))
            assert DV["expunged_uid"] not in DV["boxes"]["INBOX"]["msgs"]
            for uid in dv:
                assert ours[uid]["flags"] == dv[uid]["flags"], \
                    (box, uid, ours[uid]["flags"], dv[uid]["flags"])
        # and they are the flags APPENDed
        inbox = read_mailbox_imap(m, "INBOX")["msgs"]
        for (box, _, uid), (_, flags, _) in zip(DV["appenduid"], MESSAGES):
            if box != "INBOX" or uid == DV["expunged_uid"]:
                continue
            want = set(flags.strip("()").split())
            assert inbox[uid]["flags"] == want, (uid, inbox[uid]["flags"], want)
    finally:
        m.logout()


@test(timeout=30)
def test_messages_byte_identical_imap():
    m = ma_imap()
    try:
        for box in ("INBOX", "Work"):
            ours = read_mailbox_imap(m, box)["msgs"]
            dv = DV["boxes"][box]["msgs"]
            for uid in dv:
                assert ours[uid]["body"] == dv[uid]["body"], (box, uid)
                assert ours[uid]["size"] == dv[uid]["size"] == \
                    len(dv[uid]["body"]), (box, uid, ours[uid]["size"])
        # and the bytes are what was APPENDed
        inbox = read_mailbox_imap(m, "INBOX")["msgs"]
        for (box, _, uid), (_, _, msg) in zip(DV["appenduid"], MESSAGES):
            if box == "INBOX" and uid != DV["expunged_uid"]:
                assert inbox[uid]["body"] == crlf(msg), uid
    finally:
        m.logout()


def instant(imap_date):
    """An IMAP date-time ("dd-Mon-yyyy hh:mm:ss +zzzz", day maybe
    space-padded) as seconds since the epoch."""
    return datetime.datetime.strptime(
        imap_date.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()


@test(timeout=30)
def test_internaldate_kept():
    """INTERNALDATE (Dovecot keeps it as the file's mtime) is the same
    instant through both servers, and the one APPENDed."""
    m = ma_imap()
    try:
        for box in ("INBOX", "Work"):
            ours = read_mailbox_imap(m, box)["msgs"]
            for uid, dv in DV["boxes"][box]["msgs"].items():
                assert instant(ours[uid]["date"]) == instant(dv["date"]), \
                    (box, uid, ours[uid]["date"], dv["date"])
            for (b, _, uid), date in zip(DV["appenduid"], DV["dates"]):
                if b == box and uid in ours:
                    assert instant(ours[uid]["date"]) == instant(date), \
                        (box, uid, ours[uid]["date"], date)
    finally:
        m.logout()


@test(timeout=30)
def test_pop3_uidls_identical():
    """pop3 { uidl_format = dovecot }: the UIDLs a POP3 client saved
    against Dovecot are the ones mailaccess lists, in the same order, and
    RETR gives the same bytes."""
    uidls, bodies = read_pop3(D.port("pop3"))
    dv_uidls, dv_bodies = DV["pop3"]
    assert uidls == dv_uidls, (uidls, dv_uidls)
    for n in bodies:
        assert bodies[n] == dv_bodies[n], n


@test(timeout=30)
def test_folders_listed():
    m = ma_imap()
    try:
        typ, data = m.list()
        assert typ == "OK", data
        names = [re.search(rb'"?([^" ]+)"?$', l).group(1) for l in data]
        assert b"INBOX" in names and b"Work" in names, data
        typ, data = m.lsub()
        assert typ == "OK" and any(l.endswith(b"Work") or
                                   l.endswith(b'"Work"') for l in data), data
    finally:
        m.logout()


@test(timeout=30)
def test_append_after_adoption_continues_uids():
    """A message appended through mailaccess gets Dovecot's UIDNEXT, in the
    same UIDVALIDITY, and POP3 lists it after Dovecot's messages."""
    dv = DV["boxes"]["INBOX"]
    m = ma_imap()
    try:
        msg = crlf(b"From: new@example.org\nSubject: after adoption\n\nnew\n")
        typ, data = m.append("INBOX", r"(\Flagged)", None, msg)
        assert typ == "OK", data
        mm = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        assert mm, data
        assert int(mm.group(1)) == dv["uidvalidity"], data
        assert int(mm.group(2)) == dv["uidnext"], (data, dv["uidnext"])
        box = read_mailbox_imap(m, "INBOX")
        assert box["uidnext"] == dv["uidnext"] + 1, box["uidnext"]
        assert box["msgs"][dv["uidnext"]]["body"] == msg
    finally:
        m.logout()
    uidls, _ = read_pop3(D.port("pop3"))
    assert uidls[:-1] == DV["pop3"][0], uidls
    assert uidls[-1][1] == "%08x%08x" % (dv["uidnext"], dv["uidvalidity"]), \
        uidls[-1]


@test(timeout=60)
def test_restart_keeps_everything():
    """After a restart of mailaccessd (its own uidlist now written) the
    view is the one before: Dovecot's messages (now \\Seen too: our POP3
    RETR above marked them, as Dovecot's does by default) plus the one
    appended, same UIDs, flags, bytes."""
    m = ma_imap()
    try:
        before = {b: read_mailbox_imap(m, b) for b in ("INBOX", "Work")}
    finally:
        m.logout()
    D.stop()
    D.start()
    m = ma_imap()
    try:
        for box in ("INBOX", "Work"):
            ours = read_mailbox_imap(m, box)
            dv = DV["boxes"][box]
            assert ours["uidvalidity"] == dv["uidvalidity"], box
            assert ours["uidnext"] == before[box]["uidnext"], box
            assert sorted(ours["msgs"]) == sorted(before[box]["msgs"]), box
            for uid, msg in before[box]["msgs"].items():
                assert ours["msgs"][uid] == msg, (box, uid, ours["msgs"][uid]
                                                  ["flags"], msg["flags"])
            for uid, msg in dv["msgs"].items():
                seen = {"\\Seen"} if box == "INBOX" else set()
                assert ours["msgs"][uid]["flags"] == msg["flags"] | seen, \
                    (box, uid, ours["msgs"][uid]["flags"], msg["flags"])
                assert ours["msgs"][uid]["body"] == msg["body"], (box, uid)
        inbox = before["INBOX"]["msgs"]
        assert sorted(inbox) == sorted(DV["boxes"]["INBOX"]["msgs"]) + [
            DV["boxes"]["INBOX"]["uidnext"]], sorted(inbox)
    finally:
        m.logout()


def main():
    try:
        p, f, s = harness.run(setup, stop_dovecot, only=sys.argv[1:] or None)
    finally:
        try:
            stop_dovecot()
        except AssertionError as e:
            print(e)
    if T:
        if f or os.environ.get("MA_KEEP_TMP"):
            print("kept %s (Dovecot config, log, Maildir) for inspection" % T)
        else:
            shutil.rmtree(T, ignore_errors=True)
    sys.exit(1 if f else 0)


if __name__ == "__main__":
    main()
