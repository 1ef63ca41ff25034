#!/usr/bin/env bash
# demo.sh - build mailaccess and run a demo POP3 + IMAP server on 127.0.0.1.
#
#   bash scripts/demo.sh         build, set up .demo/, (re)start the daemon
#   bash scripts/demo.sh stop    stop it
#
# Everything lives in .demo/ (git-ignored): a test CA and a certificate for
# localhost, mailaccess.conf, the passwd file (demo@example.com / demo), the
# LMDB store and the daemon's log and pid file. Ports are unprivileged so a
# system mail server is never disturbed: POP3 STLS on 1110, POP3S on 1995,
# IMAP STARTTLS on 1143, IMAPS on 1993 (override with POP3_PORT,
# POP3S_PORT, IMAP_PORT, IMAPS_PORT). Rerunning stops the old daemon
# first; the store (and the mail in it) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${MA_BUILD_DIR:-$ROOT/build}
DEMO=$ROOT/.demo
POP3_PORT=${POP3_PORT:-1110}
POP3S_PORT=${POP3S_PORT:-1995}
IMAP_PORT=${IMAP_PORT:-1143}
IMAPS_PORT=${IMAPS_PORT:-1993}
USER_NAME=demo@example.com
USER_PASS=demo
PIDFILE=$DEMO/mailaccessd.pid
LOG=$DEMO/mailaccessd.log
CONF=$DEMO/mailaccess.conf

say() { printf '%s\n' "$*"; }

stop_demo() {
	[ -f "$PIDFILE" ] || return 0
	local pid
	pid=$(cat "$PIDFILE" 2>/dev/null || true)
	# Only signal our own daemon, never whatever reused the pid.
	if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
	   tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "mailaccessd.*$CONF"; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "demo: mailaccessd ($pid) ignored SIGTERM for 10s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		say "demo: stopped mailaccessd ($pid)"
	fi
	rm -f "$PIDFILE"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-start}" in
stop) stop_demo; exit 0 ;;
start) ;;
*) say "usage: $0 [start|stop]" >&2; exit 64 ;;
esac

# 1. packages and build
bash scripts/deps.sh
if [ ! -f "$B/build.ninja" ]; then
	meson setup "$B" --buildtype=debugoptimized -Db_ndebug=false >/dev/null
fi
# Only what the demo runs, so a half-finished part elsewhere in the tree
# does not stop it.
ninja -C "$B" core/mailaccessd core/mailaccessctl proto-pop3/pop3.so proto-imap/imap.so \
	backends/lmdb/store-lmdb.so plugins/auth-passwd/auth-passwd.so \
	plugins/auth-pam/auth-pam.so
DAEMON=$B/core/mailaccessd
CTL=$B/core/mailaccessctl
CTL_SHOWN=${CTL#"$ROOT"/}   # as the user would type it from the repo root

# 2. the demo directory
stop_demo
mkdir -p "$DEMO/tls" "$DEMO/mail" "$DEMO/plugins" "$DEMO/state"
chmod 700 "$DEMO"

if [ ! -s "$DEMO/tls/cert.pem" ]; then
	say "demo: making a test CA and a certificate for localhost"
	cat >"$DEMO/tls/ca.tmpl" <<'EOF'
cn = "mailaccess demo CA"
ca
cert_signing_key
expiration_days = 365
EOF
	cat >"$DEMO/tls/server.tmpl" <<'EOF'
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
signing_key
encryption_key
expiration_days = 365
EOF
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--outfile "$DEMO/tls/ca-key.pem" 2>/dev/null
	certtool --generate-self-signed --load-privkey "$DEMO/tls/ca-key.pem" \
		--template "$DEMO/tls/ca.tmpl" --outfile "$DEMO/tls/ca.pem" 2>/dev/null
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--outfile "$DEMO/tls/key.pem" 2>/dev/null
	certtool --generate-certificate --load-privkey "$DEMO/tls/key.pem" \
		--load-ca-certificate "$DEMO/tls/ca.pem" \
		--load-ca-privkey "$DEMO/tls/ca-key.pem" \
		--template "$DEMO/tls/server.tmpl" --outfile "$DEMO/tls/cert.pem" 2>/dev/null
	chmod 600 "$DEMO/tls/key.pem" "$DEMO/tls/ca-key.pem"
fi

# The loader refuses group/other-writable plugin files; symlinks to the
# build output (mode 755) are fine.
for so in proto-pop3/pop3.so proto-imap/imap.so backends/lmdb/store-lmdb.so \
          plugins/auth-passwd/auth-passwd.so plugins/auth-pam/auth-pam.so; do
	ln -sfn "$B/$so" "$DEMO/plugins/$(basename "$so")"
done

cat >"$CONF" <<EOF
# mailaccess demo config, written by scripts/demo.sh (rerun overwrites it)
plugin_dir = $DEMO/plugins
state_dir = $DEMO/state
log = stderr
log_level = info

tls {
  cert = $DEMO/tls/cert.pem
  key = $DEMO/tls/key.pem
}

listener pop3 {
  protocol = pop3
  address = 127.0.0.1
  port = $POP3_PORT
  tls = starttls
}

listener pop3s {
  protocol = pop3
  address = 127.0.0.1
  port = $POP3S_PORT
  tls = implicit
}

listener imap {
  protocol = imap
  address = 127.0.0.1
  port = $IMAP_PORT
  tls = starttls
}

listener imaps {
  protocol = imap
  address = 127.0.0.1
  port = $IMAPS_PORT
  tls = implicit
}

store {
  backend = lmdb
  path = $DEMO/mail
  map_size = 1G
}

auth passwd {
  file = $DEMO/users
  scheme = SHA512-CRYPT
}

limits {
  idle_timeout = 10m
  auth_fail_delay = 1s
}

pop3 {
  uidl_format = dovecot
}
EOF

# 3. the demo user (fresh passwd file each run: the password is known)
rm -f "$DEMO/users"
( umask 077; : >"$DEMO/users" )
"$CTL" -c "$CONF" user add "$USER_NAME" "$USER_PASS"

# 4. a welcome message into a new (empty) store
if [ -z "$(ls -A "$DEMO/mail")" ]; then
	"$CTL" -c "$CONF" deliver "$USER_NAME" <<EOF
From: mailaccess <postmaster@localhost>
To: $USER_NAME
Subject: Welcome to mailaccess
Date: $(LC_ALL=C date -R)
Message-ID: <welcome.$(date +%s).$$@localhost>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello,

this message was delivered with
  $CTL_SHOWN -c .demo/mailaccess.conf deliver $USER_NAME < message
and you are reading it over POP3 or IMAP.
EOF
fi

# 5. start the daemon in the background
for p in "$POP3_PORT" "$POP3S_PORT" "$IMAP_PORT" "$IMAPS_PORT"; do
	if port_open "$p"; then
		say "demo: port $p on 127.0.0.1 is taken by another program;" \
		    "set POP3_PORT / POP3S_PORT / IMAP_PORT / IMAPS_PORT" >&2
		exit 1
	fi
done
setsid "$DAEMON" -c "$CONF" -p "$PIDFILE" </dev/null >>"$LOG" 2>&1 &
dpid=$!
for _ in $(seq 1 100); do
	if port_open "$POP3_PORT" && port_open "$POP3S_PORT" && port_open "$IMAPS_PORT"; then break; fi
	if ! kill -0 "$dpid" 2>/dev/null; then break; fi
	sleep 0.1
done
if ! kill -0 "$dpid" 2>/dev/null || ! port_open "$POP3S_PORT"; then
	say "demo: mailaccessd did not start; last lines of $LOG:" >&2
	tail -20 "$LOG" >&2
	exit 1
fi
[ -s "$PIDFILE" ] || echo "$dpid" >"$PIDFILE"

cat <<EOF

mailaccess is running (pid $dpid), log: .demo/mailaccessd.log
  POP3 + STLS      127.0.0.1:$POP3_PORT
  POP3S (TLS)      127.0.0.1:$POP3S_PORT
  IMAP + STARTTLS  127.0.0.1:$IMAP_PORT
  IMAPS (TLS)      127.0.0.1:$IMAPS_PORT
  user / password  $USER_NAME / $USER_PASS
  CA certificate   .demo/tls/ca.pem

Talk to it by hand:
  gnutls-cli --x509cafile .demo/tls/ca.pem -p $POP3S_PORT localhost --crlf
  gnutls-cli --x509cafile .demo/tls/ca.pem --starttls-proto=pop3 -p $POP3_PORT localhost --crlf
  openssl s_client -quiet -crlf -CAfile .demo/tls/ca.pem -connect 127.0.0.1:$POP3S_PORT
then type:  USER $USER_NAME  /  PASS $USER_PASS  /  LIST  /  RETR 1  /  QUIT

Python:
  python3 -c 'import poplib, ssl
p = poplib.POP3_SSL("localhost", $POP3S_PORT, context=ssl.create_default_context(cafile=".demo/tls/ca.pem"))
p.user("$USER_NAME"); p.pass_("$USER_PASS"); print(p.stat())
print(b"\n".join(p.retr(1)[1]).decode()); p.quit()'

IMAP with Python:
  python3 -c 'import imaplib, ssl
m = imaplib.IMAP4_SSL("localhost", $IMAPS_PORT, ssl_context=ssl.create_default_context(cafile=".demo/tls/ca.pem"))
m.login("$USER_NAME", "$USER_PASS"); print(m.select("INBOX")); print(m.fetch("1", "(ENVELOPE)")); m.logout()'

Deliver more mail:
  $CTL_SHOWN -c .demo/mailaccess.conf deliver $USER_NAME < message.eml

fetchmail (keeps the mail on the server):
  fetchmail -v --keep -p POP3 -P $POP3S_PORT --ssl --sslcertck --sslcertfile .demo/tls/ca.pem \\
    -u $USER_NAME --mda 'cat >> /tmp/demo-mbox' localhost     (password: $USER_PASS)

Stop it:  bash scripts/demo.sh stop
EOF
