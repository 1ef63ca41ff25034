#!/usr/bin/env bash
# deps-imap-clients.sh - install the real IMAP clients the client tests drive:
# isync (mbsync) and offlineimap3 from Debian 12, and the npm `imapflow`
# library into tests/clients/node_modules (gitignored).
#
# Idempotent: when everything is present it only asks dpkg and looks for
# node_modules/imapflow, so it returns in well under a second. Every network
# step is bounded by `timeout`; nothing is fetched but Debian and npm
# packages. Exit 0 when all clients are there; 1 when one could not be
# installed (the client tests then SKIP what is missing).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CL=$ROOT/tests/clients
IMAPFLOW_VERSION=${IMAPFLOW_VERSION:-2.10.2}

rc=0
pkgs=(isync offlineimap3 nodejs strace)
missing=()
for p in "${pkgs[@]}"; do
	# nodejs may come from another apt source; a working node is enough.
	if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then
		continue
	fi
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing+=("$p") ;;
	esac
done
if ! command -v npm >/dev/null 2>&1; then
	missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "deps-imap-clients: installing ${missing[*]}" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo="sudo"
		else
			echo "deps-imap-clients: missing ${missing[*]} and not root" >&2
			missing=()
			rc=1
		fi
	fi
	if [ ${#missing[@]} -gt 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		timeout 300 $sudo apt-get update -qq || true
		if ! timeout 600 $sudo apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null; then
			echo "deps-imap-clients: apt-get install ${missing[*]} failed" >&2
			rc=1
		fi
	fi
fi

# imapflow: a local install, pinned, no package-lock churn in the tree.
if [ ! -f "$CL/node_modules/imapflow/package.json" ]; then
	if command -v npm >/dev/null 2>&1; then
		echo "deps-imap-clients: npm install imapflow@$IMAPFLOW_VERSION" >&2
		if ! timeout 300 npm install --prefix "$CL" --no-save --no-package-lock \
			--no-audit --no-fund --loglevel=error \
			"imapflow@$IMAPFLOW_VERSION" >&2; then
			echo "deps-imap-clients: npm install imapflow failed" >&2
			rc=1
		fi
	else
		echo "deps-imap-clients: no npm, imapflow not installed" >&2
		rc=1
	fi
fi

exit $rc
