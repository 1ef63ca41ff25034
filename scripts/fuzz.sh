#!/usr/bin/env bash
# fuzz.sh - build and run the libFuzzer targets of tests/fuzz.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   # default 600 s, all
#   bash scripts/fuzz.sh --ci [SECONDS] [TARGET...]         # test-command mode
#
# Builds build-fuzz/ (clang, ASan+UBSan, -Dfuzz=true) if needed, then for
# each target: first every file in tests/fuzz/regressions/<t>/ and
# tests/fuzz/corpus/<t>/ once (must not crash), then libFuzzer for
# SECONDS on a temp copy of the corpus (the committed corpus never grows;
# to merge new finds deliberately: fuzz-<t> -merge=1 corpus/<t> NEWDIR).
# A crash input is kept as tests/fuzz/out/crashes/<t>/crash-* (and in the log).
# Prints "fuzz <t>: N execs, M crashes, T s" per target; exits 1 on a crash.
#
# --ci (scripts/fuzz-ci.sh): SECONDS defaults to 20; lines in the test
# harness format "PASS fuzz-<t> (N execs)" / "FAIL fuzz-<t> (...)" and a
# final "RESULT passed=N failed=M skipped=K" (all skipped, exit 0, if
# clang/libFuzzer is not installed).
# Env: MA_FUZZ_BUILD (default build-fuzz), MA_FUZZ_JOBS (targets run in
# parallel, default 1, --ci 2; the machine is shared), MA_FUZZ_MAX_LEN (default
# per target), MA_FUZZ_KEEP=1 keeps the temp dir.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
ci=0
if [ "${1:-}" = "--ci" ]; then
	ci=1
	shift
fi
secs=${1:-}
if [ -n "$secs" ] && [[ "$secs" =~ ^[0-9]+$ ]]; then
	shift
else
	secs=$([ $ci = 1 ] && echo 20 || echo 600)
fi
all_targets=(imap pop3 lmtp mime config)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
build=${MA_FUZZ_BUILD:-build-fuzz}
jobs=${MA_FUZZ_JOBS:-$([ $ci = 1 ] && echo 2 || echo 1)}

say() { echo "fuzz: $*" >&2; }

skip_all() {
	say "$1"
	if [ $ci = 1 ]; then
		for t in "${targets[@]}"; do
			echo "SKIP fuzz-$t ($1)"
		done
		echo "RESULT passed=0 failed=0 skipped=${#targets[@]}"
		exit 0
	fi
	exit 1
}

for t in "${targets[@]}"; do
	case " ${all_targets[*]} " in
	*" $t "*) ;;
	*) say "unknown target '$t' (have: ${all_targets[*]})"; exit 2 ;;
	esac
done

# ---- build
cc=$(command -v clang || command -v clang-14 || true)
[ -n "$cc" ] || skip_all "clang not installed"
rtdir=$("$cc" -print-resource-dir 2>/dev/null)
ls "$rtdir"/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
	skip_all "libFuzzer runtime not installed (libclang-rt-14-dev)"

t0=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
	say "configuring $build"
	CC=$cc meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
		-Dwerror=false -Db_lundef=false >"$root/$build.setup.log" 2>&1 || {
		cat "$root/$build.setup.log" >&2
		[ $ci = 1 ] && { for t in "${targets[@]}"; do echo "FAIL fuzz-$t (meson setup failed)"; done
			echo "RESULT passed=0 failed=${#targets[@]} skipped=0"; }
		exit 1
	}
	rm -f "$root/$build.setup.log"
fi
exes=()
for t in "${targets[@]}"; do exes+=("tests/fuzz/fuzz-$t"); done
if ! ninja -C "$build" -j2 "${exes[@]}" >"/tmp/fuzz-build.$$.log" 2>&1; then
	tail -40 "/tmp/fuzz-build.$$.log" >&2
	rm -f "/tmp/fuzz-build.$$.log"
	if [ $ci = 1 ]; then
		for t in "${targets[@]}"; do echo "FAIL fuzz-$t (build failed)"; done
		echo "RESULT passed=0 failed=${#targets[@]} skipped=0"
	fi
	exit 1
fi
rm -f "/tmp/fuzz-build.$$.log"
say "build ok ($(( $(date +%s) - t0 )) s)"

# ---- run
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
tmp=$(mktemp -d /tmp/ma-fuzz.XXXXXX)
cleanup() { [ "${MA_FUZZ_KEEP:-0}" = 1 ] || rm -rf "$tmp"; }
trap cleanup EXIT

max_len_of() {
	case "$1" in
	mime) echo "${MA_FUZZ_MAX_LEN:-65536}" ;;
	config) echo "${MA_FUZZ_MAX_LEN:-8192}" ;;
	*) echo "${MA_FUZZ_MAX_LEN:-16384}" ;;
	esac
}

# run_one TARGET -> writes $tmp/TARGET.result: "status execs crashes secs detail"
run_one() {
	local t=$1 exe="$root/$build/tests/fuzz/fuzz-$t"
	local dir="$tmp/$t" log="$tmp/$t.log" s0 s1 rc execs crashes=0 detail=ok
	local seeds=() dict=()
	mkdir -p "$dir/corpus" "$dir/artifacts"
	s0=$(date +%s)
	# 1. every regression and seed once
	for d in "tests/fuzz/regressions/$t" "tests/fuzz/corpus/$t"; do
		[ -d "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ] && seeds+=("$d"/*)
	done
	if [ ${#seeds[@]} -gt 0 ] &&
	   ! "$exe" -runs=0 -timeout=25 -rss_limit_mb=2048 "${seeds[@]}" >"$log.replay" 2>&1; then
		crashes=1
		detail="replay of regressions/corpus failed"
		cat "$log.replay" >>"$log"
	fi
	# 2. fuzz on a temp copy of the corpus
	if [ $crashes = 0 ]; then
		cp -r "tests/fuzz/corpus/$t/." "$dir/corpus/" 2>/dev/null
		[ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
		"$exe" "$dir/corpus" "${dict[@]}" -max_total_time="$secs" \
			-max_len="$(max_len_of "$t")" -timeout=10 -rss_limit_mb=2048 \
			-malloc_limit_mb=1024 -print_final_stats=1 \
			-artifact_prefix="$dir/artifacts/" >"$log" 2>&1
		rc=$?
		if [ $rc -ne 0 ] || [ -n "$(ls -A "$dir/artifacts")" ]; then
			crashes=$(ls -A "$dir/artifacts" | wc -l)
			[ "$crashes" -eq 0 ] && crashes=1
			detail="libFuzzer exit $rc"
			mkdir -p "tests/fuzz/out/crashes/$t"
			cp "$dir/artifacts/"* "tests/fuzz/out/crashes/$t/" 2>/dev/null
		fi
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	[ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
	[ -n "$execs" ] || execs=0
	s1=$(date +%s)
	echo "$([ "$crashes" = 0 ] && echo PASS || echo FAIL) $execs $crashes $((s1 - s0)) $detail" >"$tmp/$t.result"
}

running=0
for t in "${targets[@]}"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

passed=0 failed=0 status=0
for t in "${targets[@]}"; do
	read -r st execs crashes took detail <"$tmp/$t.result"
	echo "fuzz $t: $execs execs, $crashes crashes, $took s"
	if [ "$st" = PASS ]; then
		passed=$((passed + 1))
		[ $ci = 1 ] && echo "PASS fuzz-$t ($execs execs)"
	else
		failed=$((failed + 1))
		status=1
		say "$t: $detail; log follows (crash inputs in tests/fuzz/out/crashes/$t/)"
		grep -E -A30 "ERROR: |runtime error|deadly signal|==ERROR|SUMMARY" "$tmp/$t.log" | head -60 >&2
		[ $ci = 1 ] && echo "FAIL fuzz-$t ($detail, $execs execs)"
	fi
done
[ $ci = 1 ] && echo "RESULT passed=$passed failed=$failed skipped=0"
exit $status
