#!/usr/bin/env python3
"""End-to-end tests of the network core (listener.c, conn.c, tls.c,
mailaccessd.c) with the tiny echo protocol plugin (tests/net/echo-plugin.c).

usage: test-net.py MAILACCESSD ECHO_PLUGIN_DIR STORE_PLUGIN_DIR

Starts a real mailaccessd on loopback ports with a generated config and
self-signed certificates (certtool), drives it with raw sockets, Python's
ssl module and gnutls-cli, and checks the log. Exit 0 = all passed.
"""
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

DAEMON, ECHO_DIR, STORE_DIR = sys.argv[1:4]
TMP = tempfile.mkdtemp(prefix="ma-net-")
failures = []
log_lines = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_cert(name):
    key = os.path.join(TMP, name + ".key")
    pem = os.path.join(TMP, name + ".pem")
    tmpl = os.path.join(TMP, name + ".tmpl")
    with open(tmpl, "w") as f:
        f.write("cn = %s\ndns_name = %s\nexpiration_days = 7\n"
                "tls_www_server\nsigning_key\n" % (name, name))
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--outfile", key], check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                    "--template", tmpl, "--outfile", pem],
                   check=True, capture_output=True)
    return pem, key


class Client:
    def __init__(self, port, host="127.0.0.1", tls=False, sni=None,
                 timeout=5, rcvbuf=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            # before connect, so the TCP window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        if tls:
            self.starttls(sni)

    def starttls(self, sni=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("eof")
            self.buf += d
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.rstrip(b"\r").decode("latin-1")

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def eof(self):
        """True if the server closed (after whatever it still sends)."""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def log_has(text, timeout=3.0):
    end = time.time() + timeout
    while time.time() < end:
        if any(text in ln for ln in list(log_lines)):
            return True
        time.sleep(0.05)
    return False


def main():
    t0 = time.time()
    global PROC, PEM_A, KEY_A
    pem_a, key_a = make_cert("a.test")
    PEM_A, KEY_A = pem_a, key_a
    pem_b, key_b = make_cert("b.test")
    p_plain, p_tls, p_open = free_port(), free_port(), free_port()
    conf = os.path.join(TMP, "mailaccess.conf")
    with open(conf, "w") as f:
        f.write("""
plugin_dir = %(echo)s:%(store)s
state_dir = %(tmp)s
log_level = debug
# One process: these checks are about conn.c/tls.c (a per-process STATS
# counter, SIGHUP reloading certificates in place); the master/worker
# model has its own suite, tests/protocol/test_processes.py.
workers = 0
store {
  backend = lmdb
  path = %(tmp)s/mail
}
tls {
  cert = %(pa)s
  key = %(ka)s
  domain b.test {
    cert = %(pb)s
    key = %(kb)s
  }
}
listener plain {
  protocol = echo
  address = 127.0.0.1, ::1
  port = %(pp)d
  tls = starttls
}
listener imp {
  protocol = echo
  address = 127.0.0.1
  port = %(pt)d
  tls = implicit
}
listener open {
  protocol = echo
  address = 127.0.0.1
  port = %(po)d
  allow_plaintext_auth = yes
}
limits {
  idle_timeout = 2s
  max_connections_per_ip = 12
  max_line = 1k
  output_buffer = 64k
}
echo {
  greeting = hi
}
""" % dict(echo=ECHO_DIR, store=STORE_DIR, tmp=TMP, pa=pem_a, ka=key_a,
           pb=pem_b, kb=key_b, pp=p_plain, pt=p_tls, po=p_open))

    # -t: config check
    r = subprocess.run([DAEMON, "-t", "-c", conf], capture_output=True)
    check(r.returncode == 0, "-t accepts a good config (rc=%d %s)" %
          (r.returncode, "" if r.returncode == 0 else r.stderr.decode()[-300:]))
    bad = os.path.join(TMP, "bad.conf")
    with open(conf) as f, open(bad, "w") as g:
        g.write(f.read().replace("idle_timeout = 2s", "idle_timeout = 2s\n  idel = 3"))
    r = subprocess.run([DAEMON, "-t", "-c", bad], capture_output=True)
    check(r.returncode == 78 and b"idel" in r.stderr and b"bad.conf:" in r.stderr,
          "-t: unknown key is fatal with FILE:LINE, exit 78")

    env = dict(os.environ)
    env.pop("MAILACCESS_PLUGIN_DIR", None)
    proc = subprocess.Popen([DAEMON, "-c", conf], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, env=env)
    PROC = proc

    def reader():
        for raw in proc.stderr:
            ln = raw.decode("utf-8", "replace").rstrip("\n")
            log_lines.append(ln)
            if os.environ.get("NET_TEST_VERBOSE"):
                print("   log: " + ln)
    threading.Thread(target=reader, daemon=True).start()
    if not log_has("started, listening on", 10):
        print("\n".join(log_lines))
        check(False, "daemon starts")
        proc.kill()
        return
    check(True, "daemon starts and logs its listeners")

    try:
        run_tests(p_plain, p_tls, p_open)
    finally:
        # shutdown: an open conn gets the protocol's shutdown line; a
        # client that does not read does not hold the daemon up for long
        try:
            hog = Client(p_plain, rcvbuf=4096)
            hog.line()
            hog.send(b"BIG 100000000\r\n")
            c = Client(p_plain)
            c.line()
            time.sleep(0.3)
            t0 = time.time()
            proc.send_signal(signal.SIGTERM)
            check(c.line() == "-SHUTDOWN", "SIGTERM: open conn gets on_shutdown line")
            check(c.eof(), "SIGTERM: conn closed")
        except Exception as e:  # noqa
            check(False, "shutdown line: %r" % e)
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -1
        check(rc == 0, "daemon exits 0 after SIGTERM (rc=%d)" % rc)
        dt = time.time() - t0
        # (the kernel's send buffer may still take everything: then the
        # close is immediate; else the 2s flush bound applies)
        check(dt < 4.5,
              "shutdown bounded with a non-reading client (%.1fs)" % dt)
        time.sleep(0.2)
        for ln in log_lines:
            if "ERROR" in ln or "runtime error" in ln or "LeakSanitizer" in ln \
               or "AddressSanitizer" in ln:
                check(False, "sanitizer/log error: " + ln)


def run_tests(p_plain, p_tls, p_open):
    # --- plaintext basics
    c = Client(p_plain)
    hello = c.line()
    check(hello.startswith("+HELLO "), "plaintext greeting (%s)" % hello)
    sid = hello.split()[1]
    check(c.cmd("hello") == "ECHO hello", "echo")
    info = c.cmd("INFO")
    check("tls=0" in info and "plain=1" in info and "loopback=1" in info and
          "greeting=hi" in info, "INFO on loopback plaintext: %s" % info)
    # pipelining: many commands in one packet
    c.send(b"".join(b"line%d\r\n" % i for i in range(200)))
    got = [c.line() for _ in range(200)]
    check(got == ["ECHO line%d" % i for i in range(200)], "200 pipelined lines")
    # one command split over many packets
    for ch in b"split\r\n":
        c.send(bytes([ch]))
        time.sleep(0.002)
    check(c.line() == "ECHO split", "command sent byte by byte")
    check(c.cmd("USER bob") == "+OK", "set user")
    check(c.cmd("AFTER 0.1") == "+OK" and c.line() == "+TIMER", "ma_conn_after fires")
    check(c.cmd("QUIT") == "+BYE", "quit")
    check(c.eof(), "closed after quit")
    c.close()
    check(log_has("session end sid=%s proto=echo listener=plain ip=127.0.0.1" % sid)
          and log_has("user=bob tls=no") and log_has("summary=quit=yes"),
          "session summary line")

    # ma_conn_after does not fire for a closed conn (no crash, no leak)
    c = Client(p_plain)
    c.line()
    c.cmd("AFTER 0.3")
    c.close()
    time.sleep(0.5)

    # --- IPv6 listener
    c = Client(p_plain, host="::1")
    check(c.line().startswith("+HELLO"), "IPv6 listener")
    check("loopback=1" in c.cmd("INFO"), "IPv6 loopback detected")
    c.close()

    # --- implicit TLS with and without SNI
    c = Client(p_tls, tls=True)
    check(c.line().startswith("+HELLO"), "implicit TLS greeting")
    info = c.cmd("INFO")
    check("tls=1" in info and "sni=-" in info, "implicit TLS: %s" % info)
    cert = c.sock.getpeercert(binary_form=True)
    c.close()
    c = Client(p_tls, tls=True, sni="b.test")
    c.line()
    info = c.cmd("INFO")
    cert_b = c.sock.getpeercert(binary_form=True)
    check("sni=b.test" in info, "SNI recorded: %s" % info)
    check(cert != cert_b and b"b.test" in cert_b and b"a.test" in cert,
          "SNI b.test picks the second certificate")
    c.close()
    c = Client(p_tls, tls=True, sni="other.test")
    c.line()
    check(b"a.test" in c.sock.getpeercert(binary_form=True),
          "unknown SNI gets the default certificate")
    c.close()
    r = subprocess.run(["gnutls-cli", "--insecure", "--sni-hostname", "b.test",
                        "-p", str(p_tls), "127.0.0.1"], input=b"INFO\r\n",
                       capture_output=True, timeout=10)
    check(b"CN=b.test" in r.stdout and b"sni=b.test" in r.stdout,
          "gnutls-cli --sni-hostname b.test gets b.test")

    # --- TLS 1.1 refused
    r = subprocess.run(["gnutls-cli", "--insecure", "--priority",
                        "NORMAL:-VERS-ALL:+VERS-TLS1.1", "-p", str(p_tls),
                        "127.0.0.1"], input=b"INFO\r\n", capture_output=True,
                       timeout=10)
    check(r.returncode != 0 and b"+HELLO" not in r.stdout,
          "TLS 1.1 refused (rc=%d)" % r.returncode)
    check(log_has("TLS handshake failed"), "TLS failure logged")
    r = subprocess.run(["gnutls-cli", "--insecure", "--priority",
                        "NORMAL:-VERS-ALL:+VERS-TLS1.2", "-p", str(p_tls),
                        "127.0.0.1"], input=b"INFO\r\n", capture_output=True,
                       timeout=10)
    check(b"tls=1" in r.stdout, "TLS 1.2 accepted")

    # --- TLS garbage on implicit port
    c = Client(p_tls)
    c.send(b"\x16\x03\x01\x00\x05hello garbage" * 10 + os.urandom(3000))
    check(c.eof(), "garbage on TLS port: closed")
    c.close()
    check(log_has("reason=tls_error"), "garbage: closed with tls_error")

    # --- a client that never starts the handshake: handshake timeout
    c = Client(p_tls, timeout=6)
    t0 = time.time()
    check(c.eof() and c.buf == b"", "silent client on TLS port closed")
    dt = time.time() - t0
    check(1.5 < dt < 4, "handshake timeout after %.1fs" % dt)
    check(log_has("reason=timeout(tls handshake timeout)"), "handshake timeout logged")
    c.close()

    # --- garbage after STARTTLS, and clients vanishing mid-handshake
    c = Client(p_plain)
    c.line()
    check(c.cmd("STARTTLS") == "+GO", "STARTTLS before garbage")
    c.send(os.urandom(5000))
    check(c.eof(), "garbage after STARTTLS: closed")
    c.close()
    for _ in range(5):
        c = Client(p_tls)
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        c.close()
        c = Client(p_tls)
        c.close()
    c = Client(p_plain)
    check(c.line().startswith("+HELLO"), "server fine after broken handshakes")
    c.close()

    # --- STARTTLS
    c = Client(p_plain)
    c.line()
    check(c.cmd("STARTTLS") == "+GO", "STARTTLS reply in plaintext")
    c.starttls(sni="b.test")
    info = c.cmd("INFO")
    check("tls=1" in info and "sni=b.test" in info, "after STARTTLS: %s" % info)
    check(c.cmd("STARTTLS") == "-NO", "no STARTTLS twice")
    c.close()

    # --- STARTTLS with pipelined (injected) commands: dropped
    c = Client(p_plain)
    c.line()
    c.send(b"STARTTLS\r\nINJECTED\r\n")
    check(c.line() == "+GO", "pipelined STARTTLS: reply")
    time.sleep(0.1)
    check(c.buf == b"", "nothing after +GO in plaintext")
    c.starttls()
    check(c.cmd("after") == "ECHO after", "after STARTTLS the session works")
    c.sock.settimeout(0.5)
    c.eof()
    check("INJECTED" not in c.buf.decode("latin-1"), "injected command dropped")
    check(log_has("dropped 10 bytes sent after STARTTLS"), "drop logged")
    c.close()

    # --- SIGHUP reloads certificates; a broken reload keeps the old ones
    global PROC
    newpem, newkey = make_cert("c.test")
    os.replace(newpem, PEM_A)
    os.replace(newkey, KEY_A)
    PROC.send_signal(signal.SIGHUP)
    check(log_has("TLS certificates reloaded"), "SIGHUP: reload logged")
    c = Client(p_tls, tls=True)
    c.line()
    check(b"c.test" in c.sock.getpeercert(binary_form=True),
          "SIGHUP: new default certificate served")
    c.close()
    with open(PEM_A, "w") as f:
        f.write("garbage\n")
    PROC.send_signal(signal.SIGHUP)
    check(log_has("TLS reload failed"), "SIGHUP with a broken cert: error logged")
    c = Client(p_tls, tls=True)
    c.line()
    check(b"c.test" in c.sock.getpeercert(binary_form=True),
          "broken reload keeps the old certificates")
    c.close()

    # --- plaintext auth policy
    c = Client(p_open)
    c.line()
    check("plain=1" in c.cmd("INFO"), "allow_plaintext_auth=yes listener")
    c.close()

    # --- long line without newline: closed, others unaffected
    other = Client(p_plain)
    other.line()
    c = Client(p_plain)
    c.line()
    try:
        c.send(b"A" * 100000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    check(c.eof(), "100 kB without newline: closed")
    c.close()
    check(other.cmd("still") == "ECHO still", "other conn unaffected")
    check(log_has("reason=limit(input line too long)"), "closed with reason=limit")
    other.close()

    # --- backpressure: a client that never reads
    hog = Client(p_plain, rcvbuf=4096)
    hog.line()
    hog.send(b"BIG 200000000\r\n")
    time.sleep(1.0)
    c = Client(p_plain)
    c.line()
    stats = c.cmd("STATS")
    maxp = int(stats.split("=")[1])
    check(0 < maxp <= 64 * 1024 + 200,
          "non-reading client: pending output bounded by high-water (%d)" % maxp)
    # a reading client gets a whole big reply through backpressure
    c2 = Client(p_plain)
    c2.line()
    c2.send(b"BIG 3000000\r\n")
    total = 0
    while True:
        ln = c2.line()
        if ln == "+END":
            break
        total += len(ln) + 2
    check(total == 3000000 or abs(total - 3000000) < 102,
          "3 MB streamed with backpressure (%d)" % total)
    check(c2.cmd("x") == "ECHO x", "input resumes after streaming")
    c2.close()
    c.close()
    # the hog is closed by the idle timeout (no progress) - not our wait
    hog.close()

    # --- a protocol ignoring output_full hits the hard cap (4 x 64k)
    c = Client(p_plain)
    c.line()
    c.send(b"FLOOD 300000\r\n")
    time.sleep(0.3)
    check(c.eof() and b"+FLOODED" not in c.buf, "output hard cap closes the conn")
    check(log_has("reason=limit(output buffer full)"), "hard cap: reason=limit")
    c.close()
    c = Client(p_plain)
    c.line()
    c.send(b"FLOOD 100000\r\n")
    got = c.line()
    check(got.endswith("+FLOODED") and len(c.buf) == 0 or "+FLOODED" in got,
          "under the hard cap the flood goes through")
    c.close()

    # --- idle timeout
    c = Client(p_plain, timeout=6)
    c.line()
    t0 = time.time()
    ln = c.line()
    dt = time.time() - t0
    check(ln == "-TIMEOUT" and 1.5 < dt < 4, "idle timeout after %.1fs" % dt)
    check(c.eof(), "closed after idle timeout")
    c.close()
    # activity postpones it
    c = Client(p_plain, timeout=6)
    c.line()
    for _ in range(3):
        time.sleep(0.8)
        check(c.cmd("ping") == "ECHO ping", "activity keeps conn alive")
    c.close()

    # --- max_connections_per_ip
    time.sleep(0.3)
    conns = []
    for _ in range(12):
        x = Client(p_plain)
        x.line()
        conns.append(x)
    extra = Client(p_plain)
    refused = extra.eof() and extra.buf == b""
    check(refused, "13th connection from one IP refused without a word")
    check(log_has("reason=max_connections_per_ip"), "refusal logged")
    extra.close()
    conns.pop().close()
    time.sleep(0.3)
    x = Client(p_plain)
    check(x.line().startswith("+HELLO"), "slot freed after a close")
    x.close()
    for x in conns:
        x.close()
    time.sleep(0.3)


try:
    main()
finally:
    subprocess.run(["rm", "-rf", TMP])
print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
