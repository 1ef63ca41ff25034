#!/usr/bin/env python3
"""test_tls_versions.py - old TLS versions and weak ciphers are refused by
default, on implicit-TLS and STARTTLS/STLS listeners of IMAP and POP3.

Three independent clients:
- gnutls-cli (package gnutls-bin) with --priority strings such as
  NORMAL:-VERS-ALL:+VERS-TLS1.1, with --starttls-proto=imap/pop3 for the
  STARTTLS listeners;
- Python's ssl (OpenSSL) with min/max version pinned and @SECLEVEL=0;
- a raw ClientHello written byte by byte here, offering one old version
  or only RC4 / 3DES / NULL / export / anonymous suites (no client library
  or system crypto policy in the way).
Every refusal has a positive control: the same client invocation
completes a handshake with a permissive gnutls-serv (TLS 1.0-1.3 and the
weak ciphers switched on) using the same certificate, so a refusal here is
the server's doing, not the client's. TLS 1.2 and 1.3 must be accepted.
tests/protocol/test_tls.py already checks TLS 1.1 on POP3 implicit TLS
with gnutls-cli once; this file covers both protocols, both TLS modes,
TLS 1.0 and SSL 3.0, and the cipher suites.

Run: python3 tests/security/test_tls_versions.py [test ...]
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import harness  # noqa: E402
from harness import test  # noqa: E402

harness.PLUGIN_FILES.setdefault("imap.so", ("proto-imap",))
warnings.simplefilter("ignore", DeprecationWarning)  # ssl.TLSVersion.TLSv1 on purpose

USER, PW = "tlsv@example.com", "tlsv pw 1"
D = None
CONTROL = None   # (proc, port) of the permissive gnutls-serv
LISTENERS = [("imaps", "imap", "implicit"), ("imap", "imap", "starttls"),
             ("pop3s", "pop3", "implicit"), ("pop3", "pop3", "starttls")]

OLD = {"TLS1.1": "NORMAL:-VERS-ALL:+VERS-TLS1.1",
       "TLS1.0": "NORMAL:-VERS-ALL:+VERS-TLS1.0"}
NEW = {"TLS1.2": "NORMAL:-VERS-ALL:+VERS-TLS1.2",
       "TLS1.3": "NORMAL:-VERS-ALL:+VERS-TLS1.3"}
_WEAK_BASE = "NONE:+VERS-TLS1.2:+ECDHE-ECDSA:+ECDHE-RSA:+RSA:+COMP-NULL:+SIGN-ALL:+GROUP-ALL:+CTYPE-X509"
WEAK = {"RC4": _WEAK_BASE + ":+ARCFOUR-128:+SHA1:+MD5",
        "3DES": _WEAK_BASE + ":+3DES-CBC:+SHA1",
        "NULL": _WEAK_BASE + ":+NULL:+SHA1:+SHA256"}


def setup():
    global D
    if not os.path.exists(os.path.join(harness.build_dir(), "proto-imap", "imap.so")):
        raise harness.Skip("imap.so not built")
    D = harness.Daemon("tlsversions", listeners=[
        dict(name=n, protocol=p, tls=t) for n, p, t in LISTENERS])
    D.add_user(USER, PW)
    D.start()


def teardown():
    if CONTROL:
        CONTROL[0].kill()
        CONTROL[0].wait(10)


def need_gnutls():
    if not shutil.which("gnutls-cli"):
        raise harness.Skip("gnutls-cli not installed (package gnutls-bin)")


def control_server():
    """A gnutls-serv that accepts everything we expect mailaccessd to
    refuse (our positive control). Started once."""
    global CONTROL
    if CONTROL and CONTROL[0].poll() is None:
        return CONTROL[1]
    # (gnutls-serv has been seen to exit under load: start a new one)
    if not shutil.which("gnutls-serv"):
        raise harness.Skip("gnutls-serv not installed")
    port = harness.free_port()
    prio = ("NORMAL:+VERS-TLS1.0:+VERS-TLS1.1:+ARCFOUR-128:+3DES-CBC:+NULL:"
            "+MD5:+SHA1:+RSA:%VERIFY_ALLOW_SIGN_WITH_SHA1")
    proc = subprocess.Popen(["gnutls-serv", "--echo", "-p", str(port), "--priority", prio,
                             "--x509certfile", D.certs["cert"],
                             "--x509keyfile", D.certs["key"]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    CONTROL = (proc, port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return port
        except OSError:
            time.sleep(0.05)
    raise AssertionError("gnutls-serv control did not start")


def gnutls_cli(port, priority, starttls=None):
    """(handshake completed?, output)."""
    args = ["gnutls-cli", "--insecure", "--priority", priority, "-p", str(port)]
    if starttls:
        args.append("--starttls-proto=" + starttls)
    args.append("127.0.0.1")
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    return "Handshake was completed" in out, out


def still_serving():
    with D.imap("imaps") as c:
        c.login(USER, PW)
        c.logout()
    with D.connect("pop3s") as c:
        c.login(USER, PW)
        c.quit()


# ------------------------------------------------------------ gnutls-cli

@test(timeout=60)
def test_gnutls_control_server_accepts_old_and_weak():
    need_gnutls()
    port = control_server()
    for name, prio in list(OLD.items()) + list(WEAK.items()):
        ok, out = gnutls_cli(port, prio)
        assert ok, ("control: gnutls-cli cannot do %s even with a permissive server" % name,
                    out[-800:])


@test(timeout=90)
def test_gnutls_old_versions_refused():
    need_gnutls()
    for lname, proto, mode in LISTENERS:
        for vname, prio in OLD.items():
            ok, out = gnutls_cli(D.port(lname), prio,
                                 proto if mode == "starttls" else None)
            assert not ok, ("%s accepted on %s" % (vname, lname), out[-800:])
    still_serving()


@test(timeout=90)
def test_gnutls_tls12_tls13_accepted():
    need_gnutls()
    for lname, proto, mode in LISTENERS:
        for vname, prio in NEW.items():
            ok, out = gnutls_cli(D.port(lname), prio,
                                 proto if mode == "starttls" else None)
            assert ok, ("%s refused on %s" % (vname, lname), out[-800:])
            want = "(%s-" % vname
            assert want in out, (vname, lname, out[-800:])


@test(timeout=90)
def test_gnutls_weak_ciphers_refused():
    need_gnutls()
    for lname, proto, mode in LISTENERS:
        for cname, prio in WEAK.items():
            ok, out = gnutls_cli(D.port(lname), prio,
                                 proto if mode == "starttls" else None)
            assert not ok, ("%s cipher accepted on %s" % (cname, lname), out[-800:])
    still_serving()


# ------------------------------------------------------------ Python ssl

def starttls_plain(sock, proto):
    """Do the plaintext STARTTLS/STLS exchange on sock."""
    f = sock.makefile("rb")
    greet = f.readline()
    if proto == "imap":
        assert greet.startswith(b"* OK"), greet
        sock.sendall(b"s1 STARTTLS\r\n")
        line = f.readline()
        assert line.startswith(b"s1 OK"), line
    else:
        assert greet.startswith(b"+OK"), greet
        sock.sendall(b"STLS\r\n")
        line = f.readline()
        assert line.startswith(b"+OK"), line
    f.detach() if hasattr(f, "detach") else None


def py_connect(lname, proto, mode, ctx):
    s = socket.create_connection(("127.0.0.1", D.port(lname)), timeout=10)
    try:
        if mode == "starttls":
            starttls_plain(s, proto)
        return ctx.wrap_socket(s, server_hostname="localhost")
    except Exception:
        s.close()
        raise


def py_ctx(version=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


@test(timeout=60)
def test_python_ssl_versions():
    port = control_server() if shutil.which("gnutls-serv") else None
    for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        if port:  # control: this client can speak it
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            t = py_ctx(v).wrap_socket(s, server_hostname="localhost")
            t.close()
        for lname, proto, mode in LISTENERS:
            try:
                t = py_connect(lname, proto, mode, py_ctx(v))
            except (ssl.SSLError, ConnectionResetError, OSError):
                continue
            ver = t.version()
            t.close()
            raise AssertionError("%s accepted %s" % (lname, ver))
    for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        for lname, proto, mode in LISTENERS:
            t = py_connect(lname, proto, mode, py_ctx(v))
            assert t.version() == name, (lname, t.version())
            t.close()
    still_serving()


# ------------------------------------------------------- raw ClientHello

SUITES_GOOD = [0xC02B, 0xC02F, 0xC009, 0xC013, 0x009C, 0x002F]
SUITES_WEAK = {
    "RC4": [0xC007, 0xC011, 0x0005, 0x0004],
    "3DES": [0xC008, 0xC012, 0x000A],
    "NULL": [0xC006, 0xC010, 0x0001, 0x0002, 0x003B],
    "export": [0x0003, 0x0006, 0x0008, 0x000B, 0x000E, 0x0011, 0x0014],
    "anonymous": [0xC018, 0xC019, 0x0034, 0x003A, 0x006C, 0x00A6],
    "DES": [0x0009, 0x000C, 0x0012, 0x0015],
}


def client_hello(version, suites):
    def ext(t, body):
        return struct.pack("!HH", t, len(body)) + body
    sni = b"localhost"
    exts = (ext(0x0000, struct.pack("!HBH", len(sni) + 3, 0, len(sni)) + sni)
            + ext(0x000A, struct.pack("!H", 6) + struct.pack("!HHH", 0x001D, 0x0017, 0x0018))
            + ext(0x000B, b"\x01\x00")
            + ext(0x000D, struct.pack("!H", 14) + struct.pack(
                "!7H", 0x0403, 0x0503, 0x0804, 0x0401, 0x0203, 0x0201, 0x0603))
            + ext(0xFF01, b"\x00") + ext(0x0017, b""))
    body = (struct.pack("!H", version) + os.urandom(32) + b"\x00"
            + struct.pack("!H", 2 * len(suites)) + struct.pack("!%dH" % len(suites), *suites)
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16" + struct.pack("!HH", 0x0301, len(hs)) + hs


def raw_hello(port, version, suites, starttls=None):
    """('hello', server version, suite) | ('alert', description) | ('closed',)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if starttls:
            starttls_plain(s, starttls)
        s.sendall(client_hello(version, suites))
        hdr = b""
        while len(hdr) < 5:
            c = s.recv(5 - len(hdr))
            if not c:
                return ("closed",)
            hdr += c
        ctype, _, ln = struct.unpack("!BHH", hdr)
        data = b""
        while len(data) < min(ln, 64):
            c = s.recv(ln - len(data))
            if not c:
                break
            data += c
        if ctype == 0x15:
            return ("alert", data[1] if len(data) > 1 else None)
        if ctype == 0x16 and data[:1] == b"\x02":
            sv = struct.unpack("!H", data[4:6])[0]
            sid_len = data[38]
            suite = struct.unpack("!H", data[39 + sid_len:41 + sid_len])[0]
            return ("hello", sv, suite)
        return ("other", ctype, data[:8])
    except (ConnectionResetError, socket.timeout) as e:
        return ("closed", str(e))
    finally:
        s.close()


def _listeners_raw():
    for lname, proto, mode in LISTENERS:
        yield lname, D.port(lname), proto if mode == "starttls" else None


@test(timeout=60)
def test_raw_hello_versions():
    ctl = control_server() if shutil.which("gnutls-serv") else None
    for lname, port, st in _listeners_raw():
        r = raw_hello(port, 0x0303, SUITES_GOOD, st)
        assert r[0] == "hello" and r[1] == 0x0303, ("TLS 1.2 hello refused", lname, r)
        for v, vname in ((0x0302, "TLS1.1"), (0x0301, "TLS1.0"), (0x0300, "SSL3")):
            if ctl and v != 0x0300:  # control: the permissive server answers it
                c = raw_hello(ctl, v, SUITES_GOOD)
                assert c[0] == "hello" and c[1] == v, ("control", vname, c)
            r = raw_hello(port, v, SUITES_GOOD, st)
            assert r[0] != "hello", ("%s hello accepted on %s" % (vname, lname), r)
    still_serving()


@test(timeout=60)
def test_raw_hello_weak_suites():
    ctl = control_server() if shutil.which("gnutls-serv") else None
    for name, suites in SUITES_WEAK.items():
        if ctl and name in ("RC4", "3DES", "NULL"):
            c = raw_hello(ctl, 0x0303, suites)
            assert c[0] == "hello", ("control", name, c)
        for lname, port, st in _listeners_raw():
            r = raw_hello(port, 0x0303, suites, st)
            assert r[0] != "hello", ("%s suite 0x%04X chosen on %s" % (name, r[2], lname), r)
    still_serving()


if __name__ == "__main__":
    harness.main(setup=setup, teardown=teardown)
