#!/usr/bin/env bash
# fuzz-ci.sh - the bounded fuzz run of the test command: every libFuzzer
# target of tests/fuzz for MA_FUZZ_CI_SECONDS (default 20) each, after
# replaying its regressions and seed corpus. Prints "PASS fuzz-<t> (N
# execs)" / "FAIL fuzz-<t> (...)" and "RESULT passed=N failed=M
# skipped=K" for scripts/test.sh. Build included, about 2-3 minutes
# on 2 cores from scratch (see scripts/fuzz.sh for the long run).
exec bash "$(dirname "$0")/fuzz.sh" --ci "${MA_FUZZ_CI_SECONDS:-20}" "$@"
