#!/usr/bin/env python3
"""test_tls.py - TLS as clients meet it: protocol versions allowed by the
default priority (TLS 1.2 and 1.3 only), certificates chosen by SNI from
`domain NAME { }` blocks, and the two command-line clients admins use to
poke a server (openssl s_client -starttls pop3, gnutls-cli).
"""

import os
import shutil
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

D = None
USER, PW = "tls@example.com", "tls pw 1"
DOMAIN = "mail.example.org"
WILD = "*.example.net"


def setup():
    global D
    dom = harness.make_domain_cert(DOMAIN)
    wild = harness.make_domain_cert(WILD)
    D = harness.Daemon("tls", listeners=[
        dict(name="pop3", tls="starttls"),
        dict(name="pop3s", tls="implicit"),
    ], tls_extra=("  domain %s {\n    cert = %s\n    key = %s\n  }\n"
                  "  domain %s {\n    cert = %s\n    key = %s\n  }"
                  % (DOMAIN, dom["cert"], dom["key"], WILD, wild["cert"], wild["key"])))
    D.add_user(USER, PW)
    D.start()


def handshake(ctx, server_hostname="localhost"):
    s = socket.create_connection(("127.0.0.1", D.port("pop3s")), timeout=10)
    try:
        t = ctx.wrap_socket(s, server_hostname=server_hostname)
    except Exception:
        s.close()
        raise
    return t


def peer_names(t):
    cert = t.getpeercert()
    cn = [v for rdn in cert["subject"] for k, v in rdn if k == "commonName"]
    return cn, [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]


@test()
def test_tls13_and_tls12_accepted():
    for v in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = harness.client_context()
        ctx.minimum_version = ctx.maximum_version = v
        t = handshake(ctx)
        try:
            assert t.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3",
                                   ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[v], t.version()
            assert t.recv(512).startswith(b"+OK")
        finally:
            t.close()


@test()
def test_tls11_refused():
    if not shutil.which("gnutls-cli"):
        raise harness.Skip("gnutls-cli not installed")
    # gnutls-cli can still speak TLS 1.1 when asked; the server must not.
    r = subprocess.run(["gnutls-cli", "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1",
                        "--insecure", "-p", str(D.port("pop3s")), "127.0.0.1"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert r.returncode != 0 and "Handshake was completed" not in out, out
    with D.connect("pop3s") as c:  # and the server carries on
        assert c.greeting.startswith(b"+OK")


@test()
def test_sni_picks_domain_certificate():
    t = handshake(harness.client_context(), DOMAIN)  # verifies name + chain
    try:
        cn, dns = peer_names(t)
        assert DOMAIN in dns, (cn, dns)
    finally:
        t.close()


@test()
def test_sni_wildcard_domain():
    t = handshake(harness.client_context(), "pop.example.net")
    try:
        cn, dns = peer_names(t)
        assert WILD in dns, (cn, dns)
    finally:
        t.close()


@test()
def test_sni_unknown_name_gets_default_certificate():
    ctx = harness.client_context()
    ctx.check_hostname = False  # we look at which cert came, not its name
    t = handshake(ctx, "unknown.example.com")
    try:
        cn, dns = peer_names(t)
        assert "localhost" in dns, (cn, dns)
    finally:
        t.close()
    # and with SNI for the default name
    t = handshake(harness.client_context(), "localhost")
    t.close()


@test()
def test_sni_after_stls():
    with D.connect("pop3") as c:
        c.ok("STLS")
        c.sock = harness.client_context().wrap_socket(c.sock, server_hostname=DOMAIN)
        cn, dns = peer_names(c.sock)
        assert DOMAIN in dns, dns
        c.login(USER, PW)
        c.quit()


@test(timeout=60)
def test_openssl_s_client_starttls_pop3():
    if not shutil.which("openssl"):
        raise harness.Skip("openssl not installed")
    script = b"USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (USER.encode(), PW.encode())
    r = subprocess.run(["openssl", "s_client", "-quiet", "-starttls", "pop3",
                        "-CAfile", D.certs["ca"], "-verify_return_error",
                        "-verify_hostname", "localhost",
                        "-connect", "127.0.0.1:%d" % D.port("pop3")],
                       input=script, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    out = r.stdout.decode(errors="replace")
    lines = [l for l in out.splitlines() if l.startswith(("+OK", "-ERR"))]
    assert len(lines) == 4 and all(l.startswith("+OK") for l in lines), (out, r.stderr)
    assert lines[2] == "+OK 0 0", lines


@test(timeout=60)
def test_gnutls_cli_implicit_and_starttls():
    if not shutil.which("gnutls-cli"):
        raise harness.Skip("gnutls-cli not installed")
    script = b"USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (USER.encode(), PW.encode())
    for args in (["-p", str(D.port("pop3s"))],
                 ["--starttls-proto=pop3", "-p", str(D.port("pop3"))]):
        r = subprocess.run(["gnutls-cli", "--x509cafile", D.certs["ca"], *args,
                            "localhost"], input=script, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors="replace")
        assert "Handshake was completed" in out, out
        assert "+OK 0 0" in out and "+OK Logging out" in out or \
            out.count("+OK") >= 4, out


if __name__ == "__main__":
    harness.main(setup=setup)
