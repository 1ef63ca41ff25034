"""maildir_sync.py - what the two Maildir synchronisers' tests share
(test_imap_mbsync.py, test_imap_offlineimap.py): the local Maildir as the
client left it, and the server's view of a mailbox through imaplib.
"""

import email
import glob
import imaplib
import os
import re

import harness


def lf(b):
    return b.replace(b"\r\n", b"\n")


def local(workdir, folder="INBOX"):
    """{subject: (path, flags, content)} of the Maildir folder
    <workdir>/mail/<folder>."""
    out = {}
    for sub in ("cur", "new"):
        for p in glob.glob(os.path.join(workdir, "mail", folder, sub, "*")):
            with open(p, "rb") as f:
                data = f.read()
            subj = email.message_from_bytes(data)["Subject"]
            name = os.path.basename(p)
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            assert subj not in out, "duplicate %r in %s" % (subj, folder)
            out[subj] = (p, flags, data)
    return out


def set_local_flags(path, flags):
    """Give a Maildir message these flags (moving it to cur/)."""
    base = path.split(":2,", 1)[0]
    new = os.path.join(os.path.dirname(os.path.dirname(base)), "cur",
                       os.path.basename(base) + ":2," + "".join(sorted(flags)))
    os.rename(path, new)


def imap(d, user, password):
    """imaplib over the daemon's implicit-TLS listener `imaps`, logged in."""
    c = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"),
                          ssl_context=harness.client_context(d.certs), timeout=10)
    c.login(user, password)
    return c


def server(c, mailbox="INBOX"):
    """({subject: (uid, set of flags, bytes)}, UIDVALIDITY) of a mailbox on
    the server."""
    typ, data = c.select(mailbox)
    assert typ == "OK", data
    # imaplib keeps "* OK [UIDVALIDITY n]" under its response code
    uv = int(c.untagged_responses["UIDVALIDITY"][-1])
    out = {}
    if int(data[0]):
        typ, data = c.fetch("1:*", "(UID FLAGS BODY.PEEK[])")
        assert typ == "OK", data
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            fl = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
            fl.discard("\\Recent")
            out[email.message_from_bytes(item[1])["Subject"]] = (uid, fl, item[1])
    return out, uv
