"""harness.py - run a real mailaccessd on loopback for the protocol tests.

Owns: locating the build (MA_BUILD_DIR), a throw-away test environment
(free ports, a CA + server certificate made with certtool, a store -- LMDB,
or Maildir with MA_TEST_STORE=maildir -- and a passwd file in a temp dir,
users and deliveries through mailaccessctl), a daemon whose stderr goes to
a file that is scanned for sanitizer reports, a small raw POP3 client
(poplib caps lines at 2048 bytes and hides the wire bytes, so byte-exact
checks need our own), a raw IMAP client with IDLE, and a tiny test runner:

    import harness
    @harness.test(timeout=30)
    def test_something():
        ...
    harness.main(setup=..., teardown=...)

Each test prints one PASS/FAIL/SKIP line; the last line printed is
    RESULT passed=N failed=M skipped=K
which scripts/test.sh adds up. Stdlib only.
"""

import base64
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# What a sanitizer report looks like in a process's stderr.
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:",
                      "LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer",
                      "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")

DEFAULT_TIMEOUT = 10.0  # socket timeout for one read


def build_dir():
    """The build to test: $MA_BUILD_DIR, else build-asan, build-tests, build."""
    env = os.environ.get("MA_BUILD_DIR")
    if env:
        return os.path.abspath(env)
    for name in ("build-asan", "build-tests", "build"):
        d = os.path.join(SOURCE_ROOT, name)
        if os.path.exists(os.path.join(d, "build.ninja")):
            return d
    return os.path.join(SOURCE_ROOT, "build")


def daemon_path():
    return os.path.join(build_dir(), "core", "mailaccessd")


def ctl_path():
    return os.path.join(build_dir(), "core", "mailaccessctl")


PLUGIN_FILES = {
    "pop3.so": ("proto-pop3",),
    "imap.so": ("proto-imap",),
    "store-lmdb.so": ("backends", "lmdb"),
    "store-maildir.so": ("backends", "maildir"),
    "auth-passwd.so": ("plugins", "auth-passwd"),
    "auth-pam.so": ("plugins", "auth-pam"),
}


# The store backends the harness can configure, and the default one.
STORE_BACKENDS = ("lmdb", "maildir")
DEFAULT_STORE = "lmdb"


def store_backend():
    """The store backend every daemon (and mailaccessctl) of this run uses:
    $MA_TEST_STORE (lmdb | maildir), default lmdb. scripts/test.sh runs the
    protocol and client suites once per backend whose plugin is built."""
    name = os.environ.get("MA_TEST_STORE", "").strip() or DEFAULT_STORE
    if name not in STORE_BACKENDS:
        raise ValueError("MA_TEST_STORE=%r: expected one of %s"
                         % (name, ", ".join(STORE_BACKENDS)))
    return name


def store_plugin_path(backend):
    """Where the build puts store-<backend>.so."""
    return os.path.join(build_dir(), "backends", backend,
                        "store-%s.so" % backend)


def have_store_plugin(backend):
    return os.path.exists(store_plugin_path(backend))


def skip_unless_store(*backends, reason=None):
    """Raise Skip unless this run's backend is one of backends: for the few
    tests that check something only one backend has."""
    cur = store_backend()
    if cur not in backends:
        raise Skip(reason or "backend-specific (%s only; MA_TEST_STORE=%s)"
                   % ("/".join(backends), cur))


def skip_if_store(*backends, reason=None):
    """Raise Skip if this run's backend is one of backends."""
    cur = store_backend()
    if cur in backends:
        raise Skip(reason or "not applicable to MA_TEST_STORE=%s" % cur)


def store_config(backend, path):
    """The `store { }` section for backend with its data under path."""
    c = ["store {", "  backend = %s" % backend, "  path = %s" % path]
    if backend == "lmdb":
        c.append("  map_size = 256M")
    c.append("}")
    return c


def make_plugin_dir(dest):
    """A dir of symlinks to the built plugins (only those that exist)."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    for name, sub in PLUGIN_FILES.items():
        src = os.path.join(build_dir(), *sub, name)
        link = os.path.join(dest, name)
        if os.path.lexists(link):
            os.unlink(link)
        if os.path.exists(src):
            os.symlink(src, link)
    return dest


def sanitizer_env(env=None):
    """Environment with the sanitizer options every process runs under."""
    env = dict(os.environ if env is None else env)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    supp = os.path.join(SOURCE_ROOT, "tests", "lsan.supp")
    if os.path.exists(supp) and "suppressions" not in env.get("LSAN_OPTIONS", ""):
        opts = env.get("LSAN_OPTIONS", "")
        env["LSAN_OPTIONS"] = (opts + ":" if opts else "") + "suppressions=" + supp
    return env


def sanitizer_report(text):
    """The first sanitizer report in text (with some context), or None."""
    for pat in SANITIZER_PATTERNS:
        i = text.find(pat)
        if i >= 0:
            start = text.rfind("\n", 0, max(0, i - 200)) + 1
            return text[start:start + 4000]
    return None


def free_port(address="127.0.0.1"):
    """A TCP port free on address right now (the daemon may still race
    another process for it; Daemon.start() retries with new ports)."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((address, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------- certs

_cert_cache = {}


def make_certs(dest=None):
    """A CA and a server certificate for localhost/127.0.0.1/::1, made
    with certtool. Returns dict(ca=, cert=, key=, dir=). Cached per
    process."""
    if "certs" in _cert_cache:
        return _cert_cache["certs"]
    if dest is None:
        dest = tempfile.mkdtemp(prefix="ma-certs-")
    os.makedirs(dest, exist_ok=True)
    p = lambda n: os.path.join(dest, n)
    with open(p("ca.tmpl"), "w") as f:
        f.write('cn = "mailaccess test CA"\nca\ncert_signing_key\n'
                'crl_signing_key\nexpiration_days = 30\n')
    with open(p("server.tmpl"), "w") as f:
        f.write('cn = "localhost"\ndns_name = "localhost"\n'
                'ip_address = "127.0.0.1"\nip_address = "::1"\n'
                'tls_www_server\nsigning_key\nencryption_key\n'
                'expiration_days = 30\n')
    def run(*args):
        r = subprocess.run(["certtool", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("certtool %s failed: %s" % (args, r.stderr.decode(errors="replace")))
    # P-256: the curve every TLS 1.2/1.3 client and GnuTLS priority takes.
    run("--generate-privkey", "--key-type=ecdsa", "--curve=secp256r1",
        "--outfile", p("ca-key.pem"))
    run("--generate-self-signed", "--load-privkey", p("ca-key.pem"),
        "--template", p("ca.tmpl"), "--outfile", p("ca.pem"))
    run("--generate-privkey", "--key-type=ecdsa", "--curve=secp256r1",
        "--outfile", p("key.pem"))
    run("--generate-certificate", "--load-privkey", p("key.pem"),
        "--load-ca-certificate", p("ca.pem"), "--load-ca-privkey",
        p("ca-key.pem"), "--template", p("server.tmpl"),
        "--outfile", p("cert.pem"))
    os.chmod(p("key.pem"), 0o600)
    certs = dict(ca=p("ca.pem"), cert=p("cert.pem"), key=p("key.pem"), dir=dest)
    _cert_cache["certs"] = certs
    return certs


def make_domain_cert(name):
    """A certificate for DNS name `name` (and *.name's parent if name starts
    with "*.") signed by the test CA: dict(cert=, key=)."""
    certs = make_certs()
    key = "dom-" + re.sub(r"[^A-Za-z0-9.-]", "_", name)
    if key in _cert_cache:
        return _cert_cache[key]
    p = lambda n: os.path.join(certs["dir"], key + n)
    with open(p(".tmpl"), "w") as f:
        f.write('cn = "%s"\ndns_name = "%s"\ntls_www_server\nsigning_key\n'
                'encryption_key\nexpiration_days = 30\n' % (name, name))
    for args in (["--generate-privkey", "--key-type=ecdsa", "--curve=secp256r1",
                  "--outfile", p("-key.pem")],
                 ["--generate-certificate", "--load-privkey", p("-key.pem"),
                  "--load-ca-certificate", certs["ca"], "--load-ca-privkey",
                  os.path.join(certs["dir"], "ca-key.pem"), "--template",
                  p(".tmpl"), "--outfile", p("-cert.pem")]):
        r = subprocess.run(["certtool", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("certtool failed: %s" % r.stderr.decode(errors="replace"))
    os.chmod(p("-key.pem"), 0o600)
    _cert_cache[key] = dict(cert=p("-cert.pem"), key=p("-key.pem"))
    return _cert_cache[key]


def client_context(certs=None):
    """An ssl context that trusts only the test CA and checks the name."""
    certs = certs or make_certs()
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.check_hostname = True
    return ctx


# --------------------------------------------------------------- daemon

_daemons = []  # every Daemon made in this process, checked at the end


class DaemonError(Exception):
    pass


def _conf_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


class Daemon:
    """A mailaccessd with its own config, store, users and log.

    listeners: list of dicts {name, protocol (pop3), tls: none|starttls|
               implicit, allow_plaintext_auth: bool|None, address
               ("127.0.0.1", "::1", or "127.0.0.1, ::1")}
    auth: list of (name, dict) auth sections, default passwd.
    limits / pop3: dicts merged over test-friendly defaults.
    extra: config text appended at the end (e.g. an `imap { }` section);
    extra_top: top-level lines written before `tls { }` (e.g. `user = nobody`);
    tls_extra: lines inside `tls { }` (priority, domain blocks).
    env: base environment (sanitizer options are added); preload: the
    daemon's LD_PRELOAD (pam_wrapper).
    store: the store backend (lmdb | maildir), default store_backend()
    ($MA_TEST_STORE); store_path: its data directory, default DIR/mail.
    """

    def __init__(self, name="daemon", listeners=None, auth=None, limits=None,
                 pop3=None, extra="", env=None, log_level="debug",
                 preload=None, tls_extra="", store=None, store_path=None,
                 extra_top="", workers=None):
        self.name = name
        self.workers = workers  # None: the daemon's default (auto)
        self.store = store or store_backend()
        if self.store not in STORE_BACKENDS:
            raise DaemonError("unknown store backend %r" % self.store)
        self.dir = tempfile.mkdtemp(prefix="ma-%s-" % name)
        self.certs = make_certs()
        self.plugin_dir = make_plugin_dir(os.path.join(self.dir, "plugins"))
        self.listeners = listeners or [
            dict(name="pop3", tls="starttls"),
            dict(name="pop3s", tls="implicit"),
            dict(name="pop3plain", tls="none"),
        ]
        self.users_file = os.path.join(self.dir, "users")
        self.auth = auth if auth is not None else [
            ("passwd", {"file": self.users_file, "scheme": "SHA512-CRYPT"})]
        self.limits = {
            "max_connections": 200,
            "max_connections_per_ip": 100,
            "idle_timeout": "10m",
            "max_line": "8k",
            "output_buffer": "256k",
            "max_message_size": "64M",
            "auth_fail_delay": "1s",
            "auth_fail_max_delay": "2s",
            # every test connects from 127.0.0.1: never lock it out.
            "auth_fail_lockout": 10000,
            "auth_fail_window": "5m",
        }
        self.limits.update(limits or {})
        self.pop3 = {"uidl_format": "dovecot"}
        self.pop3.update(pop3 or {})
        self.extra = extra
        self.tls_extra = tls_extra  # lines inside tls { } (priority, domain blocks)
        self.extra_top = extra_top  # top-level lines before tls { } (user = nobody)
        self.log_level = log_level
        self.env = sanitizer_env(env)
        self.preload = preload
        self.log_path = os.path.join(self.dir, "mailaccessd.log")
        self.pid_path = os.path.join(self.dir, "mailaccessd.pid")
        self.conf_path = os.path.join(self.dir, "mailaccess.conf")
        self.store_path = store_path or os.path.join(self.dir, "mail")
        os.makedirs(self.store_path, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        if not os.path.exists(self.users_file):
            fd = os.open(self.users_file, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        self.ports = {}
        self.proc = None
        self.exit_code = None
        self.ctl_reports = []  # sanitizer reports seen in mailaccessctl runs
        self._log_fh = None
        self._assign_ports()
        self.write_config()
        _daemons.append(self)

    def _assign_ports(self):
        for l in self.listeners:
            # "127.0.0.1, ::1": one port on several addresses
            first = l.get("address", "127.0.0.1").split(",")[0].strip()
            self.ports[l["name"]] = free_port(first)

    def port(self, listener):
        return self.ports[listener]

    def host(self, listener):
        """The (first) address of a listener."""
        l = next(x for x in self.listeners if x["name"] == listener)
        return l.get("address", "127.0.0.1").split(",")[0].strip()

    def write_config(self):
        c = []
        c.append("# written by tests/protocol/harness.py")
        c.append("plugin_dir = %s" % self.plugin_dir)
        c.append("state_dir = %s" % os.path.join(self.dir, "state"))
        c.append("log = stderr")
        c.append("log_level = %s" % self.log_level)
        if self.extra_top:
            c.append(self.extra_top)
        if self.workers is not None:
            c.append("workers = %s" % self.workers)
        c.append("")
        c.append("tls {")
        c.append("  cert = %s" % self.certs["cert"])
        c.append("  key = %s" % self.certs["key"])
        if self.tls_extra:
            c.append(self.tls_extra)
        c.append("}")
        for l in self.listeners:
            c.append("")
            c.append("listener %s {" % l["name"])
            c.append("  protocol = %s" % l.get("protocol", "pop3"))
            c.append("  address = %s" % l.get("address", "127.0.0.1"))
            c.append("  port = %d" % self.ports[l["name"]])
            c.append("  tls = %s" % l.get("tls", "none"))
            if l.get("allow_plaintext_auth") is not None:
                c.append("  allow_plaintext_auth = %s"
                         % _conf_value(l["allow_plaintext_auth"]))
            c.append("}")
        c.append("")
        c.extend(store_config(self.store, self.store_path))
        for name, kv in self.auth:
            c.append("")
            c.append("auth %s {" % name)
            for k, v in kv.items():
                c.append("  %s = %s" % (k, _conf_value(v)))
            c.append("}")
        c.append("")
        c.append("limits {")
        for k, v in self.limits.items():
            c.append("  %s = %s" % (k, _conf_value(v)))
        c.append("}")
        c.append("")
        c.append("pop3 {")
        for k, v in self.pop3.items():
            c.append("  %s = %s" % (k, _conf_value(v)))
        c.append("}")
        if self.extra:
            c.append(self.extra)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(c) + "\n")

    # -- mailaccessctl

    def ctl(self, *args, input=None, timeout=60, check=True):
        """Run mailaccessctl -c CONF ARGS; returns CompletedProcess (bytes).
        A sanitizer report in its stderr is recorded and raises."""
        cmd = [ctl_path(), "-c", self.conf_path, *args]
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(cmd, input=input if input is not None else b"",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=self.env)
        err = r.stderr.decode(errors="replace")
        rep = sanitizer_report(err)
        if rep:
            self.ctl_reports.append("%s: %s" % (" ".join(args[:2]), rep))
            raise DaemonError("sanitizer report in mailaccessctl %s:\n%s"
                              % (" ".join(args[:2]), rep))
        if check and r.returncode != 0:
            raise DaemonError("mailaccessctl %s -> exit %d: %s"
                              % (" ".join(args), r.returncode, err.strip()))
        return r

    def add_user(self, user, password):
        return self.ctl("user", "add", user, password)

    def deliver(self, user, message, mailbox=None, check=True):
        args = ["deliver", user] + ([mailbox] if mailbox else [])
        return self.ctl(*args, input=message, check=check)

    # -- process

    def start(self, wait=15.0, retries=3):
        if not os.path.exists(daemon_path()):
            raise DaemonError("no daemon binary at %s" % daemon_path())
        if not have_store_plugin(self.store):
            raise DaemonError("store backend %r not built (no %s)"
                              % (self.store, store_plugin_path(self.store)))
        last = None
        for attempt in range(retries):
            if attempt:
                self._assign_ports()
                self.write_config()
            try:
                self._start_once(wait)
                return self
            except DaemonError as e:
                last = e
                if "Address already in use" not in self.log_text() \
                        and "in use" not in str(e):
                    break
        raise last

    def _start_once(self, wait):
        self._log_fh = open(self.log_path, "ab")
        # Only this start's lines count below: after a kill -9 the old
        # workers may still answer on the port for a moment, and the old
        # "started" line is already in the log.
        log_start = self._log_fh.tell()
        env = dict(self.env)
        if self.preload:
            env["LD_PRELOAD"] = self.preload
        self.proc = subprocess.Popen(
            [daemon_path(), "-c", self.conf_path, "-p", self.pid_path],
            stdin=subprocess.DEVNULL, stdout=self._log_fh,
            stderr=self._log_fh, env=env, cwd=self.dir)
        self.exit_code = None
        deadline = time.monotonic() + wait
        pending = set((self.host(n), p) for n, p in self.ports.items())
        while pending:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_code = rc
                raise DaemonError("mailaccessd exited at startup (rc=%s); "
                                  "log:\n%s" % (rc, self.log_tail()))
            for p in list(pending):
                try:
                    socket.create_connection(p, timeout=0.5).close()
                    pending.discard(p)
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                self.kill()
                raise DaemonError("mailaccessd not listening on %s after %ss; "
                                  "log:\n%s" % (sorted(pending), wait, self.log_tail()))
            if pending:
                time.sleep(0.05)
        # The sockets listen a moment before the daemon's loop (and its
        # SIGTERM handler) runs; its "started" log line says it is there.
        while "started" not in self._log_since(log_start) \
                and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        rc = self.proc.poll()
        if rc is not None:
            self.exit_code = rc
            raise DaemonError("mailaccessd exited at startup (rc=%s); "
                              "log:\n%s" % (rc, self.log_tail()))

    def _log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM and wait. Returns the exit code (None if never started).
        Kills with SIGKILL after timeout and raises."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise DaemonError("mailaccessd did not exit %ss after SIGTERM"
                                  % timeout)
        self.exit_code = self.proc.returncode
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.exit_code = self.proc.returncode
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def problems(self):
        """Sanitizer reports / bad exit, as a list of strings (empty if
        clean). Call after stop()."""
        out = []
        rep = sanitizer_report(self.log_text())
        if rep:
            out.append("sanitizer report in %s log:\n%s" % (self.name, rep))
        out.extend(self.ctl_reports)
        if self.exit_code not in (None, 0):
            out.append("%s exit code %s (expected 0 after SIGTERM); log tail:\n%s"
                       % (self.name, self.exit_code, self.log_tail()))
        return out

    # -- processes (master, auth process, workers)

    def children(self):
        """[(pid, comm)] of the master's child processes (ma-worker,
        ma-auth), from /proc/<master>/task/*/children."""
        if self.proc is None:
            return []
        pids = []
        try:
            tasks = os.listdir("/proc/%d/task" % self.proc.pid)
        except FileNotFoundError:
            return []
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (self.proc.pid, t)) as f:
                    pids += [int(x) for x in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
        out = []
        for pid in sorted(set(pids)):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    out.append((pid, f.read().strip()))
            except FileNotFoundError:
                pass
        return out

    def worker_pids(self):
        return [p for p, c in self.children() if c == "ma-worker"]

    def serving_pid(self, sock):
        """The pid of the server process holding the other end of a
        client TCP socket (matched by socket inode in /proc/<pid>/fd), or
        None."""
        cport = sock.getsockname()[1]
        sport = sock.getpeername()[1]
        inode = None
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    next(f)
                    for line in f:
                        fs = line.split()
                        lp = int(fs[1].rsplit(":", 1)[1], 16)
                        rp = int(fs[2].rsplit(":", 1)[1], 16)
                        if lp == sport and rp == cport:
                            inode = fs[9]
            except FileNotFoundError:
                pass
        if inode is None:
            return None
        want = "socket:[%s]" % inode
        for pid in [p for p, _ in self.children()] + [self.proc.pid]:
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    try:
                        if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == want:
                            return pid
                    except OSError:
                        pass
            except OSError:
                pass
        return None

    # -- clients

    def connect(self, listener, **kw):
        l = next(x for x in self.listeners if x["name"] == listener)
        tls = l.get("tls") == "implicit"
        kw.setdefault("host", self.host(listener))
        return Pop3Client(self.port(listener), tls=tls,
                          ctx=client_context(self.certs), **kw)

    def imap(self, listener, **kw):
        """A raw IMAP client (ImapClient) on an imap listener; implicit
        TLS if the listener has it."""
        l = next(x for x in self.listeners if x["name"] == listener)
        tls = l.get("tls") == "implicit"
        kw.setdefault("host", self.host(listener))
        return ImapClient(self.port(listener), tls=tls,
                          ctx=client_context(self.certs), **kw)


# --------------------------------------------------------- POP3 client

class ProtocolError(AssertionError):
    pass


class Pop3Client:
    """Raw POP3 over a socket, for byte-exact and abuse tests."""

    def __init__(self, port, tls=False, ctx=None, host="127.0.0.1",
                 timeout=DEFAULT_TIMEOUT, greeting=True):
        self.ctx = ctx
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.greeting = self.readline() if greeting else None

    # low level
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by server")
        self.buf += chunk

    def readline(self, limit=1 << 20):
        """One line including CRLF (bytes)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ProtocolError("line longer than %d bytes" % limit)
            self._fill()

    def read_until_eof(self, timeout=10):
        """Everything until the server closes (bytes)."""
        self.sock.settimeout(timeout)
        data = bytearray(self.buf)
        self.buf = bytearray()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise
            except OSError:  # reset, or TLS closed without close_notify
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk

    def resp(self):
        """One status line as str (without CRLF)."""
        return self.readline().decode("utf-8", "replace").rstrip("\r\n")

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.resp()

    def ok(self, line):
        r = self.cmd(line)
        if not r.startswith("+OK"):
            raise ProtocolError("%r -> %r" % (_mask(line), r))
        return r

    def err(self, line):
        r = self.cmd(line)
        if not r.startswith("-ERR"):
            raise ProtocolError("%r -> %r, expected -ERR" % (_mask(line), r))
        return r

    def read_multi_raw(self):
        """The raw bytes of a multi-line body up to and including the
        terminating '.CRLF' line (still dot-stuffed)."""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return b".\r\n"
            end = self.buf.find(b"\r\n.\r\n", start)
            if end >= 0:
                raw = bytes(self.buf[:end + 5])
                del self.buf[:end + 5]
                return raw
            start = max(0, len(self.buf) - 4)
            self._fill()

    def read_multi(self):
        """A multi-line body, dot-unstuffed, without the terminator: the
        exact octets of e.g. the message (every line ends in CRLF)."""
        return unstuff(self.read_multi_raw())

    def multi(self, line):
        """Send a command expecting +OK and a multi-line body: (status, body)."""
        r = self.ok(line)
        return r, self.read_multi()

    def lines(self, line):
        r, body = self.multi(line)
        return [l.decode() for l in body.split(b"\r\n")[:-1]]

    # sessions
    def login(self, user, password):
        self.ok("USER " + user)
        return self.ok("PASS " + password)

    def stls(self, ctx=None):
        self.ok("STLS")
        if self.buf:
            raise ProtocolError("server sent bytes after +OK to STLS: %r" % self.buf)
        self.sock = (ctx or self.ctx).wrap_socket(self.sock,
                                                  server_hostname="localhost")

    def capa(self):
        return self.lines("CAPA")

    def quit(self):
        r = self.cmd("QUIT")
        self.close()
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class ImapClient:
    """Raw IMAP4rev1 client: one tagged command at a time, untagged
    responses collected with their literals, IDLE (imaplib has no IDLE
    before Python 3.14). Daemon.imap(listener) makes one."""

    def __init__(self, port, tls=False, ctx=None, host="127.0.0.1",
                 timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.n = 0
        self.exists = 0
        self.idle_tag = None
        g, _ = self.read_response()
        if not g.startswith(b"* OK"):
            raise ProtocolError("IMAP greeting %r" % g)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("IMAP connection closed by server")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > (1 << 20):
                raise ProtocolError("IMAP line longer than 1 MB")
            self._fill()

    def read_response(self):
        """One response with its literals: (text with each literal left
        as {n}, [literal bytes, ...]). Tracks EXISTS/EXPUNGE counts."""
        parts, lits = [], []
        while True:
            line = self._line()
            parts.append(line)
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                break
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            lits.append(bytes(self.buf[:n]))
            del self.buf[:n]
        text = b"".join(parts)
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE)$", text)
        if m:
            if m.group(2) == b"EXISTS":
                self.exists = int(m.group(1))
            else:
                self.exists -= 1
        return text, lits

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, text, literal=None):
        """One command (with an optional synchronizing literal after
        text): (tagged status after the tag, [(untagged line, lits)])."""
        self.n += 1
        tag = b"c%d" % self.n
        if isinstance(text, str):
            text = text.encode()
        untagged = []
        if literal is None:
            self.send(tag + b" " + text + b"\r\n")
        else:
            self.send(tag + b" " + text + b" {%d}\r\n" % len(literal))
            while True:
                line, lits = self.read_response()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    raise ProtocolError("literal refused: %r" % line)
                untagged.append((line, lits))
            self.send(literal + b"\r\n")
        while True:
            line, lits = self.read_response()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:], untagged
            untagged.append((line, lits))

    def ok(self, text, literal=None):
        st, u = self.cmd(text, literal)
        if not st.startswith(b"OK"):
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            raise ProtocolError("%r -> %r" % (_mask(text), st))
        return st, u

    def login(self, user, password):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

    def select(self, mailbox="INBOX"):
        """SELECT: dict(exists=, uidvalidity=, uidnext=)."""
        st, u = self.ok('SELECT "%s"' % mailbox)
        info = {}
        for line, _ in u:
            m = re.match(rb"\* (\d+) EXISTS", line)
            if m:
                info["exists"] = int(m.group(1))
            for key in (b"UIDVALIDITY", b"UIDNEXT"):
                m = re.search(rb"\[" + key + rb" (\d+)\]", line)
                if m:
                    info[key.decode().lower()] = int(m.group(1))
        if "exists" not in info or "uidvalidity" not in info:
            raise ProtocolError("SELECT without EXISTS/UIDVALIDITY: %r" % u)
        return info

    def fetch(self, seqset, items):
        """FETCH: {seq: (line, [literals])}."""
        st, u = self.ok("FETCH %s %s" % (seqset, items))
        out = {}
        for line, lits in u:
            m = re.match(rb"\* (\d+) FETCH ", line)
            if m:
                out[int(m.group(1))] = (line, lits)
        return out

    def idle_start(self):
        self.n += 1
        self.idle_tag = b"c%d" % self.n
        self.send(self.idle_tag + b" IDLE\r\n")
        line, _ = self.read_response()
        if not line.startswith(b"+"):
            raise ProtocolError("IDLE -> %r" % line)

    def idle_wait(self, pattern, timeout):
        """Untagged lines until one matches pattern (bytes regex) or
        timeout passes: (matching line or None, lines seen)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, seen
            self.sock.settimeout(left)
            try:
                line, _ = self.read_response()
            except socket.timeout:
                return None, seen
            finally:
                self.sock.settimeout(self.timeout)
            seen.append(line)
            if re.search(pattern, line):
                return line, seen

    def idle_done(self):
        self.send(b"DONE\r\n")
        while True:
            line, _ = self.read_response()
            if line.startswith(self.idle_tag + b" "):
                if not line[len(self.idle_tag) + 1:].startswith(b"OK"):
                    raise ProtocolError("IDLE ended %r" % line)
                return

    def logout(self):
        try:
            self.cmd("LOGOUT")
        except (OSError, EOFError):
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def _mask(line):
    if line.upper().startswith("PASS "):
        return "PASS ***"
    if line.upper().startswith("LOGIN "):
        return "LOGIN ***"
    return line


def unstuff(raw):
    """Undo RFC 1939 byte-stuffing of a multi-line body ending '.CRLF'."""
    assert raw.endswith(b".\r\n"), raw[-20:]
    body = raw[:-3]
    out = []
    for line in body.split(b"\r\n")[:-1] if body else []:
        if line.startswith(b"."):
            line = line[1:]
        out.append(line + b"\r\n")
    return b"".join(out)


def crlf(data):
    """LF or CRLF input as the server must store it (every line CRLF)."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


# ---------------------------------------------------------------- runner

class Skip(Exception):
    pass


class TestTimeout(Exception):
    pass


_tests = []


def test(timeout=30):
    """Register a test function (runs in definition order)."""
    def deco(fn):
        _tests.append((fn.__name__, fn, timeout))
        return fn
    if callable(timeout):  # used as @test without arguments
        fn, timeout = timeout, 30
        return deco(fn)
    return deco


def _alarm(signum, frame):
    raise TestTimeout("test timed out")


def _run_one(fn, timeout):
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run(setup=None, teardown=None, title=None, only=None):
    """Run the registered tests. Returns (passed, failed, skipped)."""
    title = title or os.path.basename(sys.argv[0])
    passed = failed = skipped = 0
    out = sys.stdout
    tests = [t for t in _tests if not only or t[0] in only]
    setup_error = None
    setup_skip = None
    if setup:
        try:
            _run_one(setup, 180)
        except Skip as e:
            setup_skip = str(e)
        except Exception:
            setup_error = traceback.format_exc()
            out.write("SETUP FAILED %s\n%s\n" % (title, _indent(setup_error)))
    for name, fn, timeout in tests:
        t0 = time.monotonic()
        if setup_skip is not None:
            skipped += 1
            out.write("SKIP %s: %s\n" % (name, setup_skip))
            continue
        if setup_error:
            failed += 1
            out.write("FAIL %s: setup failed\n" % name)
            continue
        try:
            _run_one(fn, timeout)
            passed += 1
            out.write("PASS %s (%.2fs)\n" % (name, time.monotonic() - t0))
        except Skip as e:
            skipped += 1
            out.write("SKIP %s: %s\n" % (name, e))
        except Exception:
            failed += 1
            out.write("FAIL %s (%.2fs)\n%s\n" % (name, time.monotonic() - t0,
                                                _indent(traceback.format_exc())))
        out.flush()
    if teardown:
        try:
            _run_one(teardown, 60)
        except Exception:
            failed += 1
            out.write("FAIL teardown\n%s\n" % _indent(traceback.format_exc()))
    # Every daemon of this file: stopped, exit code, sanitizer reports.
    for d in _daemons:
        try:
            d.stop()
        except Exception as e:
            d.problems_extra = str(e)
        probs = d.problems()
        if getattr(d, "problems_extra", None):
            probs.append(d.problems_extra)
        if probs:
            failed += 1
            out.write("FAIL sanitizer/exit check of %s\n%s\n"
                      % (d.name, _indent("\n".join(probs))))
        elif d.proc is not None:
            passed += 1
            out.write("PASS sanitizer/exit check of %s\n" % d.name)
    if not failed and not os.environ.get("MA_KEEP_TMP"):
        for d in _daemons:
            shutil.rmtree(d.dir, ignore_errors=True)
        if "certs" in _cert_cache:
            shutil.rmtree(_cert_cache["certs"]["dir"], ignore_errors=True)
    elif failed:
        for d in _daemons:
            out.write("kept %s (config, log, store) for inspection\n" % d.dir)
    try:
        backend = store_backend()
    except ValueError:
        backend = os.environ.get("MA_TEST_STORE", "?")
    out.write("%s (store %s): %d passed, %d failed, %d skipped\n"
              % (title, backend, passed, failed, skipped))
    out.write("RESULT passed=%d failed=%d skipped=%d\n" % (passed, failed, skipped))
    out.flush()
    return passed, failed, skipped


def main(setup=None, teardown=None):
    only = sys.argv[1:] or None
    p, f, s = run(setup, teardown, only=only)
    sys.exit(1 if f else 0)


def _indent(text):
    return "\n".join("    " + l for l in text.rstrip().splitlines())
