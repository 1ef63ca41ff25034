#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages mailaccess needs to build, run
# and test. Safe to rerun: when everything is present it only asks dpkg.
# Runs as root (or through sudo when available), never asks questions.
set -euo pipefail

pkgs=(meson ninja-build gcc pkg-config libgnutls28-dev libev-dev liblmdb-dev
      libpam0g-dev libcrypt-dev libargon2-dev libpam-wrapper gnutls-bin
      fetchmail python3 clang libclang-rt-14-dev lmdb-utils swaks postfix)

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "deps: missing packages (${missing[*]}) and not root" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a test peer (tests/lmtp/test_postfix.py runs a private
# instance on loopback): install it without a system configuration, so no
# system MTA is set up or started.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
	printf '%s\n' "postfix postfix/main_mailer_type select No configuration" \
		"postfix postfix/mailname string localhost" | $sudo debconf-set-selections
fi
# One update per run: a fresh image has no package lists at all.
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
