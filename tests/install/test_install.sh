#!/usr/bin/env bash
# test_install.sh BUILD_DIR - `meson install --destdir` gives a usable
# install: programs, plugins, headers, pkg-config file, sample config, unit;
# and a plugin built outside the tree with only the installed headers and
# pkg-config loads into the installed programs.
# Prints one line per check ("ok: ..." / "FAIL: ...") and exits 1 on failure.
set -u
build=${1:?usage: test_install.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
dest=$(mktemp -d /tmp/ma-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails+1)); fi; }

meson install -C "$build" --destdir "$dest" --quiet >"$dest.log" 2>&1 || { cat "$dest.log"; echo "FAIL: meson install"; exit 1; }
rm -f "$dest.log"
prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
libdir=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"))')
root=$dest$prefix
lib=$root/$libdir

check "mailaccessd installed" "[ -x '$root/sbin/mailaccessd' ]"
check "mailaccessctl installed" "[ -x '$root/bin/mailaccessctl' ]"
check "libmailaccess.so installed" "[ -e '$lib/libmailaccess.so' ]"
for p in pop3 imap store-lmdb auth-passwd auth-pam; do
	check "plugin $p.so installed" "[ -f '$lib/mailaccess/$p.so' ]"
done
for h in mailaccess plugin store kv conn auth config core mime; do
	check "header mailaccess/$h.h installed" "[ -f '$root/include/mailaccess/$h.h' ]"
done
check "pkg-config file installed" "[ -f '$lib/pkgconfig/mailaccess.pc' ]"
check "sample config installed" "[ -f '$root/etc/mailaccess/mailaccess.conf' ]"
check "PAM service file installed" "[ -f '$root/etc/pam.d/mailaccess' ]"
check "systemd unit installed" "[ -f '$root/lib/systemd/system/mailaccess.service' ]"

# Only the public API leaves the library.
check "library exports only ma_* symbols" \
	"! nm -D --defined-only '$lib/libmailaccess.so' | awk '\$2 ~ /^[TDBR]\$/ {print \$3}' | grep -v '^ma_' | grep -q ."
# Plugins export only their descriptor.
check "pop3.so exports only mailaccess_plugin" \
	"[ \"\$(nm -D --defined-only '$lib/mailaccess/pop3.so' | awk '\$2 ~ /^[TDBR]\$/ {print \$3}')\" = mailaccess_plugin ]"

# An out-of-tree plugin: headers and flags from pkg-config alone.
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
flags=$(pkg-config --cflags --libs mailaccess 2>&1)
check "pkg-config --cflags --libs mailaccess" "[ -n \"\$flags\" ] && pkg-config --exists mailaccess"
plugdir=$dest/extra-plugins
mkdir -p "$plugdir"
check "out-of-tree plugin builds with only installed headers" \
	"cc -std=c17 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -o '$plugdir/auth-example.so' '$here/example-auth.c' $flags"

cat >"$dest/test.conf" <<CONF
plugin_dir = $lib/mailaccess:$plugdir
state_dir = $dest/state
store {
  backend = lmdb
  path = $dest/mail
}
auth example {
}
CONF
export LD_LIBRARY_PATH=$lib
out=$("$root/bin/mailaccessctl" -c "$dest/test.conf" config check 2>&1)
check "installed mailaccessctl loads the out-of-tree plugin (config check)" \
	"echo \"\$out\" | grep -q 'config OK' && echo \"\$out\" | grep -q 'example auth plugin loaded'"
[ "$fails" -eq 0 ] || echo "$out"

# The store conformance kit is installed, and the example key-value backend
# (examples/kv-example) builds out of tree with its plain Makefile and
# pkg-config, then passes the installed kit.
check "mailaccess-store-conformance installed" "[ -x '$root/bin/mailaccess-store-conformance' ]"
kvdir=$dest/kv-example
mkdir -p "$kvdir"
cp "$here/../../examples/kv-example/Makefile" "$here/../../examples/kv-example/kvexample.c" "$kvdir/"
check "example kv backend builds out of tree (make + pkg-config)" \
	"make -s -C '$kvdir' >'$dest/kv-make.log' 2>&1 || { cat '$dest/kv-make.log'; false; }"
check "example kv backend exports only mailaccess_plugin" \
	"[ \"\$(nm -D --defined-only '$kvdir/store-kvexample.so' | awk '\$2 ~ /^[TDBR]\$/ {print \$3}')\" = mailaccess_plugin ]"
kitout=$("$root/bin/mailaccess-store-conformance" "$kvdir/store-kvexample.so" 2>&1)
kitrc=$?
check "installed conformance kit passes on the example kv backend" \
	"[ $kitrc -eq 0 ] && echo \"\$kitout\" | grep -q '^[0-9]* passed, 0 failed\$'"
[ "$kitrc" -eq 0 ] || echo "$kitout" | sed 's/^/  kit: /'
exit $((fails > 0))
