#!/usr/bin/env python3
"""test_imap_imapflow.py - the npm `imapflow` client against mailaccessd.

imapflow is a strict, modern IMAP client (what many Node mail apps use).
A Node script (written to the test's temp dir from NODE_SCRIPT below) runs
one session over implicit TLS, trusting only the test CA:

  connect, LIST, CREATE Archive, SELECT INBOX, FETCH envelope /
  bodystructure / size / flags / full source of every message, a part
  download (BODY[2], base64-decoded by imapflow), STORE flags and a
  keyword, SEARCH, APPEND, MOVE, and IDLE until the `exists` event that a
  `mailaccessctl deliver` from this script causes;

and a second one over STARTTLS (doSTARTTLS: true refuses to go on in
clear). The script prints `ok: ...` / `FAIL: ...` per step and exits 0
only if every step passed; this file then checks the server's side with
imaplib (flags, the appended message's bytes, the move) and the POP3 view.

Needs node and tests/clients/node_modules/imapflow
(scripts/deps-imap-clients.sh installs it); SKIPs without them.
Run: python3 tests/clients/test_imap_imapflow.py
"""

import base64
import imaplib
import json
import os
import re
import shutil
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test, crlf  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))

D = None
W = None
USER = "flow@example.com"
PW = "flow pw 5"
NODE_MODULES = os.path.join(HERE, "node_modules")

PLAIN = crlf(b"From: Alice <alice@example.org>\nTo: flow@example.com\n"
             b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= plain\n"
             b"Message-ID: <plain-1@example.org>\n"
             b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n\nplain body\n")
ATTACH_DATA = b"attached text, line 1\nline 2\n"
MULTI = crlf(b"From: Bob <bob@example.org>\nTo: flow@example.com\n"
             b"Subject: with attachment\nMessage-ID: <multi-1@example.org>\n"
             b"Date: Tue, 2 Jan 2024 11:00:00 +0000\nMIME-Version: 1.0\n"
             b"Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
             b"preamble\n--b1\nContent-Type: text/plain; charset=us-ascii\n\n"
             b"see attachment\n--b1\nContent-Type: text/plain; name=\"a.txt\"\n"
             b"Content-Disposition: attachment; filename=\"a.txt\"\n"
             b"Content-Transfer-Encoding: base64\n\n"
             + base64.encodebytes(ATTACH_DATA) + b"--b1--\n")
THIRD = crlf(b"From: Carol <carol@example.org>\nTo: flow@example.com\n"
             b"Subject: to be moved\nMessage-ID: <move-1@example.org>\n\nmove me\n")
APPENDED = crlf(b"From: flow@example.com\nTo: someone@example.org\n"
                b"Subject: appended by imapflow\n"
                b"Message-ID: <appended-1@example.org>\n\nsent copy\n")
IDLE_MSG = crlf(b"From: Dan <dan@example.org>\nTo: flow@example.com\n"
                b"Subject: arrives during IDLE\n\nwake up\n")

NODE_SCRIPT = r"""
'use strict';
const fs = require('fs');
const { ImapFlow } = require('imapflow');
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const b = (s) => Buffer.from(s, 'base64');
const J = (x) => JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
let failed = 0;
function ok(name) { console.log('ok: ' + name); }
function fail(name, why) { failed++; console.log('FAIL: ' + name + ': ' + why); }
function check(name, cond, why) { if (cond) ok(name); else fail(name, why); }
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);

function client(port, mode) {
    const o = {
        host: '127.0.0.1', port, logger: false,
        auth: { user: cfg.user, pass: cfg.pass },
        tls: { ca: [fs.readFileSync(cfg.ca)], servername: 'localhost',
               rejectUnauthorized: true },
        connectionTimeout: 10000, greetingTimeout: 10000, socketTimeout: 30000,
    };
    if (mode === 'implicit') o.secure = true;
    else { o.secure = false; o.doSTARTTLS = true; }
    return new ImapFlow(o);
}

async function full() {
    const c = client(cfg.imaps, 'implicit');
    c.on('error', (e) => fail('client error event', e.message));
    await c.connect();
    check('connect implicit TLS', c.secureConnection && c.usable, 'not secure/usable');

    await c.mailboxCreate('Archive');
    const list = await c.list();
    const paths = list.map((m) => m.path);
    check('LIST has INBOX and Archive', paths.includes('INBOX') && paths.includes('Archive'),
          J(paths));

    const mb = await c.mailboxOpen('INBOX');
    check('SELECT INBOX exists=3', mb.exists === 3, 'exists=' + mb.exists);
    check('UIDVALIDITY set', Number(mb.uidValidity) > 0, String(mb.uidValidity));

    const msgs = await c.fetchAll('1:*', { uid: true, flags: true, envelope: true,
        bodyStructure: true, size: true, internalDate: true });
    check('FETCH 1:* returned 3', msgs.length === 3, 'got ' + msgs.length);
    const [m1, m2, m3] = msgs;
    const want = [b(cfg.plain), b(cfg.multi), b(cfg.third)];
    check('RFC822.SIZE matches', msgs.every((m, i) => m.size === want[i].length),
          msgs.map((m) => m.size).join(',') + ' want ' + want.map((x) => x.length).join(','));
    check('ENVELOPE subject (encoded-word decoded)',
          m1.envelope.subject === 'Gr\u00fc\u00dfe plain', J(m1.envelope.subject));
    check('ENVELOPE from', m1.envelope.from && m1.envelope.from[0].address === 'alice@example.org'
          && m1.envelope.from[0].name === 'Alice', J(m1.envelope.from));
    check('ENVELOPE message-id', m2.envelope.messageId === '<multi-1@example.org>',
          J(m2.envelope.messageId));
    check('ENVELOPE date', m1.envelope.date && new Date(m1.envelope.date).getTime() ===
          Date.UTC(2024, 0, 1, 10, 0, 0), String(m1.envelope.date));
    const bs = m2.bodyStructure || {};
    const kids = bs.childNodes || [];
    check('BODYSTRUCTURE multipart/mixed with 2 parts',
          bs.type === 'multipart/mixed' && kids.length === 2, J(bs));
    const att = kids[1] || {};
    check('BODYSTRUCTURE attachment part', att.part === '2' && att.type === 'text/plain'
          && att.encoding === 'base64' && att.disposition === 'attachment'
          && att.dispositionParameters && att.dispositionParameters.filename === 'a.txt',
          J(att));
    check('BODYSTRUCTURE single part text/plain', m1.bodyStructure &&
          m1.bodyStructure.type === 'text/plain', J(m1.bodyStructure));
    check('new messages have no \\Seen', !m1.flags.has('\\Seen'), [...m1.flags].join(' '));

    for (let i = 0; i < 3; i++) {
        const one = await c.fetchOne(String(msgs[i].uid), { source: true }, { uid: true });
        check('BODY[] of message ' + (i + 1) + ' byte-identical',
              one && Buffer.compare(one.source, want[i]) === 0,
              one ? one.source.length + ' bytes' : 'nothing');
    }
    const dl = await c.download(String(m2.uid), '2', { uid: true });
    const chunks = [];
    for await (const ch of dl.content) chunks.push(ch);
    check('download part 2 decoded', Buffer.concat(chunks).equals(b(cfg.attach)),
          J(Buffer.concat(chunks).toString()));

    await c.messageFlagsAdd(String(m1.uid), ['\\Flagged', '$Important'], { uid: true });
    await c.messageFlagsAdd(String(m2.uid), ['\\Seen'], { uid: true });
    await c.messageFlagsRemove(String(m2.uid), ['\\Seen'], { uid: true });
    await c.messageFlagsSet(String(m3.uid), ['\\Answered'], { uid: true });
    const fl = await c.fetchAll('1:*', { uid: true, flags: true });
    // \\Recent is the server's to set (RFC 3501 2.3.2): leave it out.
    const f = (m) => [...m.flags].filter((x) => x !== '\\Recent').sort().join(' ');
    check('STORE +FLAGS', fl[0].flags.has('\\Flagged') && fl[0].flags.has('$Important'), f(fl[0]));
    check('STORE -FLAGS', !fl[1].flags.has('\\Seen'), f(fl[1]));
    check('STORE FLAGS', f(fl[2]) === '\\Answered', f(fl[2]));

    const found = await c.search({ subject: 'attachment' }, { uid: true });
    check('UID SEARCH SUBJECT', J(found) === J([m2.uid]),
          J(found));
    const flagged = await c.search({ flagged: true }, { uid: true });
    check('UID SEARCH FLAGGED', J(flagged) === J([m1.uid]),
          J(flagged));

    const ap = await c.append('INBOX', b(cfg.appended), ['\\Seen'],
                              new Date(Date.UTC(2024, 2, 3, 4, 5, 6)));
    check('APPEND', ap && ap.destination === 'INBOX', J(ap));
    let apUid = ap && ap.uid;
    if (!apUid) {
        const s = await c.search({ header: { 'message-id': 'appended-1@example.org' } }, { uid: true });
        apUid = s[0];
    }
    const apm = await c.fetchOne(String(apUid), { source: true, flags: true, internalDate: true },
                                 { uid: true });
    check('APPENDed message byte-identical', apm && apm.source.equals(b(cfg.appended)),
          apm ? apm.source.length + ' bytes' : 'not found');
    check('APPEND flags and date', apm && apm.flags.has('\\Seen') &&
          new Date(apm.internalDate).getTime() === Date.UTC(2024, 2, 3, 4, 5, 6),
          apm ? [...apm.flags].join(' ') + ' ' + apm.internalDate : '');

    const mv = await c.messageMove(String(m3.uid), 'Archive', { uid: true });
    check('MOVE', mv && mv.destination === 'Archive', J(mv));
    const st = await c.status('Archive', { messages: true });
    check('STATUS Archive after MOVE', st.messages === 1, J(st));
    check('INBOX after MOVE', c.mailbox.exists === 3, 'exists=' + c.mailbox.exists);

    // IDLE: the test script delivers when it reads "idle: waiting".
    const before = c.mailbox.exists;
    const got = new Promise((resolve) => c.on('exists', (d) => resolve(d)));
    const idling = c.idle();
    console.log('idle: waiting');
    try {
        const ev = await withTimeout(got, 10000, 'exists event');
        check('IDLE exists event', ev.count === before + 1 && ev.prevCount === before,
              J(ev));
    } catch (e) {
        fail('IDLE exists event', e.message);
    }
    const last = await c.fetchOne('*', { envelope: true });
    check('message that woke IDLE', last && last.envelope.subject === 'arrives during IDLE',
          last ? J(last.envelope.subject) : 'none');
    void idling;
    await c.logout();
    ok('LOGOUT');
}

async function starttls() {
    const c = client(cfg.imap, 'starttls');
    c.on('error', (e) => fail('client error event', e.message));
    await c.connect();
    check('connect STARTTLS', c.secureConnection === true, 'connection not upgraded');
    const st = await c.status('INBOX', { messages: true, uidNext: true, uidValidity: true });
    check('STATUS INBOX over STARTTLS', st.messages === 4 && st.uidNext > 0, J(st));
    await c.logout();
    ok('LOGOUT');
}

(async () => {
    try {
        if (process.argv[3] === 'starttls') await starttls(); else await full();
    } catch (e) {
        fail('exception', (e && (e.stack || e.message)) + (e && e.responseText ? ' / ' + e.responseText : ''));
    }
    process.exit(failed ? 1 : 0);
})();
"""


def setup():
    global D, W
    if not shutil.which("node"):
        raise harness.Skip("node not installed")
    if not os.path.exists(os.path.join(NODE_MODULES, "imapflow", "package.json")):
        raise harness.Skip("imapflow not installed (bash scripts/deps-imap-clients.sh)")
    D = harness.Daemon("imapflow", listeners=[
        dict(name="imap", protocol="imap", tls="starttls"),
        dict(name="imaps", protocol="imap", tls="implicit"),
        dict(name="pop3s", tls="implicit"),
    ])
    D.add_user(USER, PW)
    for m in (PLAIN, MULTI, THIRD):
        D.deliver(USER, m)
    D.start()
    W = os.path.join(D.dir, "imapflow")
    os.makedirs(W)
    with open(os.path.join(W, "flow.js"), "w") as f:
        f.write(NODE_SCRIPT)
    e = lambda x: base64.b64encode(x).decode()
    cfg = {"imap": D.port("imap"), "imaps": D.port("imaps"),
           "ca": D.certs["ca"], "user": USER, "pass": PW, "plain": e(PLAIN),
           "multi": e(MULTI), "third": e(THIRD), "appended": e(APPENDED),
           "attach": e(ATTACH_DATA)}
    with open(os.path.join(W, "cfg.json"), "w") as f:
        json.dump(cfg, f)


def run_node(mode, on_line=None, timeout=90):
    """Run the node script; returns (exit code, output). on_line(line) is
    called for each line as it arrives."""
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    p = subprocess.Popen(["node", os.path.join(W, "flow.js"),
                          os.path.join(W, "cfg.json"), mode],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=env, cwd=W)
    out = []
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        for raw in p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            out.append(line)
            if on_line:
                on_line(line)
        rc = p.wait(10)
    finally:
        timer.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    return rc, "\n".join(out)


def imap():
    c = imaplib.IMAP4_SSL("127.0.0.1", D.port("imaps"),
                          ssl_context=harness.client_context(D.certs), timeout=10)
    c.login(USER, PW)
    return c


@test(timeout=150)
def test_imapflow_full_session():
    def on_line(line):
        if line == "idle: waiting":
            D.deliver(USER, IDLE_MSG)
    rc, out = run_node("full", on_line)
    fails = [l for l in out.splitlines() if l.startswith("FAIL:")]
    assert rc == 0 and not fails, "imapflow session failed (rc %d):\n%s" % (rc, out)
    assert "ok: IDLE exists event" in out and "ok: LOGOUT" in out, out


@test(timeout=60)
def test_server_state_after_imapflow():
    c = imap()
    try:
        typ, data = c.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == 4, data
        typ, data = c.fetch("1:4", "(FLAGS BODY.PEEK[])")
        assert typ == "OK", data
        items = [d for d in data if isinstance(d, tuple)]
        flags = [d[0] for d in items]
        bodies = [d[1] for d in items]
        assert bodies == [PLAIN, MULTI, APPENDED, IDLE_MSG], [b[:60] for b in bodies]
        assert b"\\Flagged" in flags[0] and b"$Important" in flags[0], flags
        assert b"\\Seen" not in flags[1], flags
        assert b"\\Seen" in flags[2], flags
        typ, data = c.select("Archive", readonly=True)
        assert typ == "OK" and int(data[0]) == 1, data
        typ, data = c.fetch("1", "(FLAGS BODY.PEEK[])")
        assert data[0][1] == THIRD, data
        assert re.search(rb"\\Answered", data[0][0]), data
    finally:
        c.logout()
    # POP3 sees the INBOX, moved message gone, appended one there
    with D.connect("pop3s") as p:
        p.login(USER, PW)
        assert int(p.ok("STAT").split()[1]) == 4
        assert p.multi("RETR 3")[1] == APPENDED
        p.quit()


@test(timeout=90)
def test_imapflow_starttls():
    rc, out = run_node("starttls")
    assert rc == 0 and "FAIL:" not in out, "imapflow STARTTLS failed:\n" + out


if __name__ == "__main__":
    harness.main(setup=setup)
