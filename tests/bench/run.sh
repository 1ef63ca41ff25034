#!/bin/sh
# run.sh - the one command of issue 6: mailaccess and Dovecot side by side.
#
#   sh tests/bench/run.sh [--quick] [--only ROWS] [--doc docs/performance.md] ...
#
# Installs what is missing (Dovecot from Debian, the build tools), builds a
# release build of mailaccess and ma-loadgen (no sanitizers) into
# build-benchrun, then runs tests/bench/run.py with the arguments given.
# Run as root on Debian 12.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${MA_BENCH_BUILD:-build-benchrun}

bash scripts/deps.sh    # build tools and libraries, certtool
missing=""
for p in dovecot-imapd dovecot-pop3d dovecot-lmtpd; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "run.sh: installing$missing" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$missing
fi

if ! [ -f "$BUILD/build.ninja" ]; then
	# -O3 finds maybe-uninitialized warnings -O2 does not: a release build
	# must not fail on them (the test builds keep -Werror).
	meson setup "$BUILD" --buildtype=release -Dwerror=false
fi
# Only what the benchmark runs: a half-written test elsewhere in the tree
# must not stop it.
ninja -C "$BUILD" -j2 core/mailaccessd core/mailaccessctl tests/bench/ma-loadgen \
	proto-imap/imap.so proto-pop3/pop3.so plugins/lmtp/lmtp.so \
	backends/lmdb/store-lmdb.so backends/maildir/store-maildir.so \
	plugins/auth-passwd/auth-passwd.so

exec python3 tests/bench/run.py --build "$BUILD" "$@"
