#!/bin/bash
# Module parameters and link names (in the VM, module loaded): the load-time
# defaults cannot be changed behind the load-time checks (read-only in sysfs,
# even for root), the keyring parameter shows the module keyring's serial, and
# link names are ASCII [A-Za-z0-9._-] only (isalnum() alone accepts Latin-1).
set -u
B=${QKD_BUILD:-build}
Q=$B/bin/qkdctl
P=/sys/module/qkd_keystore/parameters
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
refused_write() { ! sh -c "echo $2 > $P/$1" 2>/dev/null; }

echo "TAP version 13"
# run-all runs this after the reload test, which may leave the module unloaded.
[ -d /sys/module/qkd_keystore ] || insmod "${QKD_MODULE:?}" || exit 1
check "a link name with byte 0xe9 is refused" bash -c "! $Q link add $'caf\xe9' 2>/dev/null"
check "and no such link exists" bash -c "! $Q link show $'caf\xe9' >/dev/null 2>&1"
check "a name of [A-Za-z0-9._-] is accepted" $Q link add "Az09._-$$"
$Q link del "Az09._-$$"
for p in max_keys:0 max_bytes:0 low_watermark:4294967295 key_uid:4294967295 key_gid:-7; do
	name=${p%%:*} v=${p#*:}
	before=$(cat $P/$name)
	check "root cannot write $v to $name" refused_write "$name" "$v"
	check "$name is still $before" test "$(cat $P/$name)" = "$before"
done
L=pa$$
check "a link is created with the load-time defaults" $Q link add $L
check "and takes a key" sh -c "echo '1 00112233' | $Q key push $L"
$Q link del $L
MODKR=$(cat $P/keyring)
check "the keyring parameter is the module keyring's serial" \
	sh -c "keyctl rdescribe $MODKR | grep -q '^keyring;.*;qkd\$'"
echo "1..$n"
[ "$fails" -eq 0 ]
