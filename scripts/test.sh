#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it (.ci/run).
#
#  1. install missing Debian packages (scripts/deps.sh)
#  2. build with ASan + UBSan in build-asan/
#  3. unit tests: meson test (counts from meson-logs/testlog.json)
#  4. protocol tests: tests/protocol/test_*.py against the ASan daemon
#  5. auth tests:     tests/auth/test_*.py (PAM through pam_wrapper)
#  6. client tests:   tests/clients/test_* (fetchmail, ...)
#     4-6 run once per store backend whose plugin is built (lmdb, maildir;
#     MA_TEST_STORE tells the harness), each labelled "[backend]"
#     and tests/security (isolation, TLS versions, privileges, slow-loris)
#     then tests/crash (kill -9, 200 rounds per backend, optimized build),
#     scripts/fuzz-ci.sh (libFuzzer, short run of every target) and
#     tests/maildir/test_*.py once (Maildir only: Dovecot adoption, ...)
#  (and tests/install/test_install.sh on the plain -Werror build)
#
# Every test script prints "RESULT passed=N failed=M skipped=K" last; a
# script that dies without it counts as one failure. The last line of this
# script is "N passed, M failed, K skipped"; exit status 1 if M > 0.
# Only loopback is used (and, for test_plaintext.py, a private network
# namespace), on ports picked free at run time.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${MA_BUILD_DIR:-$ROOT/build-asan}
export MA_BUILD_DIR=$B

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
if [ -f "$ROOT/tests/lsan.supp" ]; then
	export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp}
fi

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0
skipped=0
failures=()
store_totals=()

finish() {
	echo
	if [ ${#store_totals[@]} -gt 0 ]; then
		printf '%s\n' "${store_totals[@]}"
	fi
	if [ ${#failures[@]} -gt 0 ]; then
		echo "failed parts:"
		printf '  %s\n' "${failures[@]}"
	fi
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit $?
}

section() { printf '\n==== %s ====\n' "$*"; }

# 1. packages
section "dependencies"
if ! bash scripts/deps.sh; then
	failed=$((failed + 1)); failures+=("scripts/deps.sh")
fi
# The real IMAP clients (mbsync, offlineimap, npm imapflow): their tests
# skip what could not be installed, so a failure here is not one.
if [ -f scripts/deps-imap-clients.sh ]; then
	bash scripts/deps-imap-clients.sh || echo "deps: some IMAP clients are missing; their tests will skip"
fi

# 2. build
section "build ($B, ASan+UBSan)"
# GCC's UBSan instrumentation makes -Wformat-truncation and friends see
# impossible NULLs, so the sanitizer build does not use -Werror; the plain
# build below (build-tests/) keeps -Werror for real warnings.
sanopts=(-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false)
setup_log=$(mktemp)
if [ -f "$B/build.ninja" ] &&
   meson setup --reconfigure "$B" "${sanopts[@]}" >"$setup_log" 2>&1; then
	setup_rc=0
else
	rm -rf "$B"
	meson setup "$B" "${sanopts[@]}" >"$setup_log" 2>&1
	setup_rc=$?
fi
if [ $setup_rc -ne 0 ]; then
	tail -30 "$setup_log"
	rm -f "$setup_log"
	failed=$((failed + 1)); failures+=("meson setup")
	finish
fi
rm -f "$setup_log"
if ! timeout 900 ninja -C "$B"; then
	failed=$((failed + 1)); failures+=("build (ninja -C $B)")
	finish
fi

# 2b. the plain build with -Werror, as every developer builds
section "build (build-tests, -Werror)"
P=$ROOT/build-tests
if [ ! -f "$P/build.ninja" ]; then
	rm -rf "$P"
	meson setup "$P" >/dev/null 2>&1 || true
fi
if timeout 900 ninja -C "$P" >"$B/meson-logs/plain-build.txt" 2>&1; then
	passed=$((passed + 1))
	echo "plain -Werror build: ok"
else
	tail -40 "$B/meson-logs/plain-build.txt"
	failed=$((failed + 1)); failures+=("plain build with -Werror (ninja -C build-tests)")
fi

# Adds one script's RESULT line (or its exit status) to the totals.
count_result() { # name logfile rc
	local name=$1 log=$2 rc=$3 line p f s
	line=$(grep -a '^RESULT passed=' "$log" | tail -1)
	if [ -n "$line" ]; then
		p=$(sed -n 's/.*passed=\([0-9]*\).*/\1/p' <<<"$line")
		f=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
		s=$(sed -n 's/.*skipped=\([0-9]*\).*/\1/p' <<<"$line")
		passed=$((passed + ${p:-0}))
		failed=$((failed + ${f:-0}))
		skipped=$((skipped + ${s:-0}))
		if [ "${f:-0}" -gt 0 ]; then failures+=("$name ($f failed)"); fi
		if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
			failed=$((failed + 1)); failures+=("$name (exit $rc)")
		fi
	elif [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	elif [ "$rc" -eq 77 ]; then
		skipped=$((skipped + 1))
	else
		failed=$((failed + 1)); failures+=("$name (exit $rc, no RESULT line)")
	fi
}

# 3. unit tests
section "unit tests (meson test)"
rm -f "$B/meson-logs/testlog.json"
timeout 900 meson test -C "$B" --print-errorlogs
mrc=$?
if [ -f "$B/meson-logs/testlog.json" ]; then
	read -r mp mf ms < <("$PY" - "$B/meson-logs/testlog.json" <<'EOF'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
EOF
	)
	passed=$((passed + mp)); failed=$((failed + mf)); skipped=$((skipped + ms))
	[ "$mf" -gt 0 ] && failures+=("meson test ($mf failed)")
	if [ "$mrc" -ne 0 ] && [ "$mf" -eq 0 ]; then
		failed=$((failed + 1)); failures+=("meson test (exit $mrc)")
	fi
elif [ "$mrc" -ne 0 ]; then
	failed=$((failed + 1)); failures+=("meson test (exit $mrc, no testlog)")
fi

# 4-6. scripts against the real daemon
run_script() { # path [store backend label]
	local t=$1 label=${2:-} name log rc
	name=${t#"$ROOT"/}
	log="$B/meson-logs/$(tr '/' '_' <<<"$name")${label:+.$label}.log"
	[ -n "$label" ] && name="$name [$label]"
	section "$name"
	case "$t" in
	*.py) timeout -k 10 400 "$PY" "$t" >"$log" 2>&1; rc=$? ;;
	*.sh) timeout -k 10 400 bash "$t" >"$log" 2>&1; rc=$? ;;
	*) return ;;
	esac
	cat "$log"
	[ $rc -eq 124 ] && echo "(timed out after 400s)"
	count_result "$name" "$log" $rc
}

# 3b. the store conformance kit against every store plugin that is built
# (tests/store-conformance; a plugin whose .so is missing is skipped). One
# "ok: ..." / "FAIL: ..." line per check. Maildir may scan the directory on
# sync (new mail from an MTA), so its run declares that with --scan-ok.
kit=$B/tests/store-conformance/mailaccess-store-conformance
for so in "$B/backends/lmdb/store-lmdb.so" "$B/backends/maildir/store-maildir.so"; do
	pname=$(basename "$so" .so)
	section "store conformance kit: $pname"
	if [ ! -x "$kit" ] || [ ! -f "$so" ]; then
		echo "skipped: $pname.so or the kit is not built"
		skipped=$((skipped + 1))
		continue
	fi
	kargs=()
	# LMDB checks the 100,000-message mailbox (--big, ~20 s under ASan);
	# Maildir scans its folder on every sync, so it keeps the 20,000 default
	# (~2 min) to hold the whole run well under 30 minutes.
	case "$pname" in
	store-lmdb) kargs=(--big) ;;
	store-maildir) kargs=(--scan-ok) ;;
	esac
	klog="$B/meson-logs/store-conformance-$pname.log"
	timeout -k 10 400 "$kit" "${kargs[@]}" "$so" >"$klog" 2>&1
	krc=$?
	cat "$klog"
	[ $krc -eq 124 ] && echo "(timed out after 400s)"
	kp=$(grep -c '^ok: ' "$klog")
	kf=$(grep -c '^FAIL: ' "$klog")
	passed=$((passed + kp)); failed=$((failed + kf))
	[ "$kf" -gt 0 ] && failures+=("store conformance kit on $pname ($kf failed)")
	if [ $krc -ne 0 ] && [ "$kf" -eq 0 ]; then
		failed=$((failed + 1)); failures+=("store conformance kit on $pname (exit $krc)")
	fi
done

# 7. install test: `meson install --destdir` of the plain build, one
# "ok: ..." / "FAIL: ..." line per check.
if [ -f tests/install/test_install.sh ] && [ -f "$P/build.ninja" ]; then
	section "tests/install/test_install.sh"
	ilog="$B/meson-logs/tests_install_test_install.sh.log"
	timeout -k 10 400 bash tests/install/test_install.sh "$P" >"$ilog" 2>&1
	irc=$?
	cat "$ilog"
	ip=$(grep -c '^ok: ' "$ilog")
	if_=$(grep -c '^FAIL: ' "$ilog")
	passed=$((passed + ip)); failed=$((failed + if_))
	[ "$if_" -gt 0 ] && failures+=("tests/install/test_install.sh ($if_ failed)")
	if [ $irc -ne 0 ] && [ "$if_" -eq 0 ]; then
		failed=$((failed + 1)); failures+=("tests/install/test_install.sh (exit $irc)")
	fi
fi

# The suites against a daemon run once per store backend whose plugin is
# built (harness.py reads MA_TEST_STORE); MA_TEST_STORES="lmdb" narrows it.
stores=()
for st in ${MA_TEST_STORES:-lmdb maildir}; do
	[ -f "$B/backends/$st/store-$st.so" ] && stores+=("$st")
done
store_totals=()
for st in "${stores[@]}"; do
	export MA_TEST_STORE=$st
	p0=$passed f0=$failed s0=$skipped t0=$SECONDS
	for dir in tests/protocol tests/auth tests/clients tests/lmtp tests/security; do
		for t in "$ROOT/$dir"/test_*.py "$ROOT/$dir"/test_*.sh; do
			[ -f "$t" ] && run_script "$t" "$st"
		done
	done
	store_totals+=("store $st: $((passed - p0)) passed, $((failed - f0)) failed, $((skipped - s0)) skipped ($((SECONDS - t0))s)")
done
unset MA_TEST_STORE

# Crash safety: kill -9 of a worker or the whole server, 200 rounds per
# backend (the script runs every backend in MA_TEST_STORES itself). It runs
# on the optimized -Werror build: the rounds are dominated by process
# start-up and mailaccessctl verify, which ASan makes several times slower,
# and the ASan build already runs every protocol suite above.
if [ -f "$ROOT/tests/crash/test_crash_safety.py" ] && [ -x "$P/core/mailaccessd" ]; then
	section "tests/crash/test_crash_safety.py (build-tests)"
	clog="$B/meson-logs/tests_crash_test_crash_safety.py.log"
	MA_BUILD_DIR=$P MA_TEST_STORES="${stores[*]}" timeout -k 10 1500 \
		"$PY" "$ROOT/tests/crash/test_crash_safety.py" >"$clog" 2>&1
	crc=$?
	cat "$clog"
	[ $crc -eq 124 ] && echo "(timed out after 1500s)"
	count_result "tests/crash/test_crash_safety.py" "$clog" $crc
fi

# Fuzzing: every libFuzzer target (clang, ASan+UBSan) replays its corpus
# and regressions, then fuzzes for MA_FUZZ_CI_SECONDS (20) seconds.
if [ -f scripts/fuzz-ci.sh ]; then
	section "scripts/fuzz-ci.sh"
	flog="$B/meson-logs/fuzz-ci.log"
	timeout -k 10 900 bash scripts/fuzz-ci.sh >"$flog" 2>&1
	frc=$?
	cat "$flog"
	[ $frc -eq 124 ] && echo "(timed out after 900s)"
	count_result "scripts/fuzz-ci.sh" "$flog" $frc
fi

# Maildir-only end-to-end tests (Dovecot adoption, new/ drop-in): they
# pick the maildir backend themselves and skip when it is not built.
for t in "$ROOT"/tests/maildir/test_*.py; do
	[ -f "$t" ] && run_script "$t"
done

finish
