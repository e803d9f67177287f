#!/bin/bash
# qkdctl from the command line (in the VM, module loaded): --help, usage errors,
# the message when the module is not loaded, a link and key round trip from a file,
# and monitor printing events.
set -u
B=${QKD_BUILD:-build}
Q=$B/bin/qkdctl
MOD=${QKD_MODULE:?set by scripts/vm-run}
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
status() { "$@" >/dev/null 2>&1; echo $?; }

echo "TAP version 13"
check "--help prints a manual page and exits 0" \
	bash -c "$Q --help | grep -q '^SYNOPSIS' && $Q --help | grep -q '^EXIT STATUS'"
check "an unknown command is a usage error (2)" test "$(status $Q frobnicate)" = 2
check "a bad option value is a usage error (2)" test "$(status $Q link add x max-keys lots)" = 2
check "a malformed push line is a usage error (2)" \
	test "$(echo 'x zz' | status $Q key push nolink)" = 2

rmmod qkd_keystore
out=$($Q link show 2>&1); rc=$?
check "module not loaded: exit 1" test "$rc" = 1
check "module not loaded: the message says so and how to load it" \
	grep -q 'module is not loaded.*insmod' <<<"$out"
modprobe -q xfrm_algo; insmod "$MOD"

L=ctl$$
check "link add" $Q link add $L max-keys 10 low-watermark 1
printf '# comment\n\n5 00ff\n6 0102030405060708\n' >/tmp/keys.$$
$Q monitor >/tmp/mon.$$ 2>&1 &
mon=$!
# Wait until the monitor listens: push and take probe keys until it reports one.
for i in $(seq 100); do
	printf '%d 01\n' $((900 + i)) | $Q key push $L && $Q key fetch $L $((900 + i)) >/dev/null
	grep -q "^new-key $L 9" /tmp/mon.$$ && break
	sleep 0.1
done
n0=$(wc -l </tmp/mon.$$)
check "key push from a file" $Q key push $L /tmp/keys.$$
check "a refused push names the key and the reason" \
	bash -c "echo '6 00' | $Q key push $L 2>&1 | grep -q 'key push $L 6: a key with this id is already stored'"
check "key list shows the keys" \
	test "$($Q key list $L)" = "$(printf '5 2 available\n6 8 available')"
check "key fetch prints id and hex" test "$($Q key fetch $L)" = "5 00ff"
check "key fetch by id" test "$($Q key fetch $L 6)" = "6 0102030405060708"
# Events after the probes: new-key 5, new-key 6, low-watermark once 6 is taken.
want=$(printf 'new-key %s 5 len 2 available 1\nnew-key %s 6 len 8 available 2\nlow-watermark %s available 0 watermark 1' $L $L $L)
for _ in $(seq 50); do
	[ "$(tail -n +$((n0 + 1)) /tmp/mon.$$ | head -n 3)" = "$want" ] && break
	sleep 0.1
done
kill $mon 2>/dev/null
wait $mon 2>/dev/null
check "monitor printed new-key and low-watermark events, in order" \
	test "$(tail -n +$((n0 + 1)) /tmp/mon.$$ | head -n 3)" = "$want"
check "stats counts the link" bash -c "$Q stats | grep -q '^links [1-9]'"
check "link del" $Q link del $L
check "link show of a removed link fails with the reason" \
	bash -c "$Q link show $L 2>&1 | grep -q 'no such link'"
echo "1..$n"
[ "$fails" -eq 0 ]
