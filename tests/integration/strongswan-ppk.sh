#!/bin/bash
# qkd-ppk against real charon instances on the build machine (TAP).
#
# Two network namespaces joined by veth, one charon each (own strongswan.conf,
# VICI socket, swanctl.conf). Keys come from the kernel keyring as "user"
# keys in one keyring per side (the QKD key store module is tested in the VM:
# tests/kernel/e2e-strongswan.sh); qkd-ppk hands them to charon over VICI and
# IKEv2 with ppk_required = yes must come up with the PPK, and must be refused
# with a different key under the same id and without any PPK. The build
# machine's kernel may lack XFRM, so the IKE_SA is built childless here; the
# VM test adds the ESP CHILD_SA and a ping.
#
# Needs root (netns, charon). Skips when that or charon is missing.
set -u
cd "$(dirname "$0")/../.."
top=$PWD

# A session keyring of our own: keys in it are possessed, hence readable.
if [ -z "${QKD_PPK_IN_SESSION:-}" ]; then
	QKD_PPK_IN_SESSION=1 exec keyctl session - "$0" "$@"
fi

: "${QKD_BUILD:=$top/build}"
PPK=$QKD_BUILD/bin/qkd-ppk
SS_PPK=$PPK
SS_DIR=$(mktemp -d /tmp/qkd-ppk-test.XXXXXX)
SS_CHILDLESS=1
. tests/kernel/e2e-strongswan-lib.sh

echo "1..26"
if [ "$(id -u)" -ne 0 ] || [ ! -x "$SS_CHARON" ] || ! command -v swanctl >/dev/null ||
   ! ip netns add "qkdppk-probe$$" 2>/dev/null; then
	for i in $(seq 26); do skip "strongswan-ppk: needs root, netns and strongSwan"; done
	exit 0
fi
ip netns del "qkdppk-probe$$"

cleanup() {
	ss_cleanup
	[ "${tap_failed:-0}" -eq 0 ] && [ -z "${QKD_KEEP_LOGS:-}" ] && rm -rf "$SS_DIR"
}
trap cleanup EXIT

ring_a=$(keyctl newring qkd-ppk-a @s)
ring_b=$(keyctl newring qkd-ppk-b @s)
ppk() { # ppk SIDE ARGS...
	local side=$1 ring; shift
	[ "$side" = a ] && ring=$ring_a || ring=$ring_b
	"$PPK" -s "$SS_DIR/$side/charon.vici" --key-type user --keyring "$ring" "$@"
}
# put SIDE ID FILE: a key into one side's keyring
put() {
	local ring
	[ "$1" = a ] && ring=$ring_a || ring=$ring_b
	keyctl padd user "ab:$2" "$ring" <"$3" >/dev/null
}
has_key() { # has_key SIDE ID
	local ring
	[ "$1" = a ] && ring=$ring_a || ring=$ring_b
	keyctl search "$ring" user "ab:$2" >/dev/null 2>&1
}

head -c 32 /dev/urandom >"$SS_DIR/k1"
head -c 32 /dev/urandom >"$SS_DIR/k2"
head -c 32 /dev/urandom >"$SS_DIR/k2x"
head -c 64 /dev/urandom >"$SS_DIR/k3"
head -c 32 /dev/urandom >"$SS_DIR/k4"
head -c 32 /dev/urandom >"$SS_DIR/k5"
for s in a b; do
	put $s 1 "$SS_DIR/k1"
	put $s 3 "$SS_DIR/k3"
	put $s 4 "$SS_DIR/k4"
	put $s 5 "$SS_DIR/k5"
done
put a 2 "$SS_DIR/k2"
put b 2 "$SS_DIR/k2x"

check "qkd-ppk --help documents the commands" \
	sh -c "'$PPK' --help | grep -q 'load LINK \[KEY-ID\]'"

"$PPK" load 'a:b' 2>/dev/null
st1=$?
"$PPK" load ab 12x 2>/dev/null
st2=$?
"$PPK" frobnicate 2>/dev/null
st3=$?
if [ $st1 -eq 1 ] && [ $st2 -eq 1 ] && [ $st3 -eq 1 ]; then
	ok "bad link name, bad key id, unknown command: usage error (exit 1)"
else
	fail "bad link name, bad key id, unknown command: usage error (got $st1 $st2 $st3)"
fi

ss_netns_up || fail "netns and veth"
ss_conf a
ss_conf b

# charon not running yet: clear error, exit 2, and the key stays in the store
out=$(ppk a load ab 2>&1)
st=$?
if [ $st -eq 2 ] && echo "$out" | grep -q 'does not exist' && has_key a 1; then
	ok "no charon: exit 2, clear message, key not consumed"
else
	fail "no charon: exit 2, clear message, key not consumed (got $st: $out)"
fi

ss_start a && ss_start b && ok "two charon instances up" || fail "two charon instances up"
check "qkd-ppk version talks VICI" sh -c "'$PPK' -s '$SS_DIR/a/charon.vici' version | grep -q '^charon '"

ss_swanctl_conf a "qkd:ab:1"
ss_swanctl_conf b "qkd:ab:1"
if ss_load_conf a && ss_load_conf b; then
	ok "connections and IKE PSK loaded (swanctl --load-all)"
else
	fail "connections and IKE PSK loaded (swanctl --load-all)"
fi

check "keys lists the link's key ids" test "$(ppk a keys ab | tr '\n' ' ')" = "1 2 3 4 5 "

id_a=$(ppk a load ab)
check "load takes the oldest key and prints its PPK id" test "$id_a" = "qkd:ab:1"
if has_key a 1; then
	fail "the key handed to charon is gone from the store"
else
	ok "the key handed to charon is gone from the store"
fi
id_b=$(ppk b load ab 1)
check "load by key id" test "$id_b" = "qkd:ab:1"

out=$(ppk b load ab 1 2>&1)
st=$?
[ $st -eq 3 ] && echo "$out" | grep -q 'no key 1' && ok "a consumed key cannot be loaded twice (exit 3)" ||
	fail "a consumed key cannot be loaded twice (got $st: $out)"
out=$(ppk b load nolink 2>&1)
[ $? -eq 3 ] && ok "unknown key: exit 3 ($out)" || fail "unknown key: exit 3 ($out)"

if ppk b list | grep -qx 'qkd:ab:1'; then
	ok "get-shared lists the PPK"
else
	fail "get-shared lists the PPK"
fi

if ss_initiate && ss_sa_has_ppk a && ss_sa_has_ppk b; then
	ok "IKEv2 with ppk_required = yes established with the QKD PPK"
else
	fail "IKEv2 with ppk_required = yes established with the QKD PPK"
	ss_dump_logs
fi
if ppk a sas qkd | grep -q '^qkd #[0-9]* ESTABLISHED alice\.\.\.bob ppk=yes$'; then
	ok "qkd-ppk sas (list-sas over VICI) reports ppk=yes"
else
	fail "qkd-ppk sas (list-sas over VICI) reports ppk=yes"
	ppk a sas | sed 's/^/#   /'
fi
check "charon used PPK_ID qkd:ab:1" grep -q "using PPK for PPK_ID 'qkd:ab:1'" "$SS_DIR/a/charon.log"
hex1=$(od -An -tx1 "$SS_DIR/k1" | tr -d ' \n')
if grep -qiF "$hex1" "$SS_DIR"/*/charon.log "$SS_DIR"/*.out; then
	fail "no key bytes in the logs"
else
	ok "no key bytes in the logs"
fi

# Same id, different key bytes: IKE_AUTH must fail.
ss_terminate
ppk a load ab 2 >/dev/null && ppk b load ab 2 >/dev/null && ss_reload_conns "qkd:ab:2"
if ss_initiate; then
	fail "different key under the same id is refused"
	ss_dump_logs
else
	ok "different key under the same id is refused"
fi
check "refusal was an authentication failure" grep -q "AUTHENTICATION_FAILED\|MAC mismatched\|AUTH_FAILED" \
	"$SS_DIR/initiate.out" "$SS_DIR/b/charon.log"

# No PPK at all on the responder: unload bob's PPKs, alice offers key 3.
ss_terminate
ppk b unload qkd:ab:1 qkd:ab:2 && test -z "$(ppk b list)" &&
	ok "unload removes the PPKs from charon" || fail "unload removes the PPKs from charon"
ppk a load ab 3 >/dev/null && ss_reload_conns "qkd:ab:3"
if ss_initiate; then
	fail "peer without the PPK is refused"
	ss_dump_logs
else
	ok "peer without the PPK is refused"
fi

check "refusal: the responder offered no PPK" grep -q "PPK required but peer does not support PPK" \
	"$SS_DIR/initiate.out"

# The positive case once more, with the 64-byte key 3 on both sides.
ss_terminate
ppk b load ab 3 >/dev/null
sleep 1
if ss_initiate && ss_sa_has_ppk a; then
	ok "64-byte PPK: established again"
else
	fail "64-byte PPK: established again"
	ss_dump_logs
fi
# swanctl --load-creds drops tagged PPKs; an --untagged one survives it.
ss_terminate
ppk b --untagged load ab 4 >/dev/null && ppk b load ab 5 >/dev/null
if ppk b list | grep -qx qkd:ab:5 && ! ppk b list | grep -qx qkd:ab:4; then
	ok "--untagged PPKs are not listed, tagged ones are"
else
	fail "--untagged PPKs are not listed, tagged ones are"
fi
ss_swanctl b --load-creds --noprompt --file "$SS_DIR/b/swanctl.conf" >/dev/null 2>&1
if ppk b list | grep -qx qkd:ab:5; then
	fail "swanctl --load-creds unloads the tagged PPK (as documented)"
else
	ok "swanctl --load-creds unloads the tagged PPK (as documented)"
fi
ppk a load ab 4 >/dev/null && ss_reload_conns "qkd:ab:4"
if ss_initiate && ss_sa_has_ppk a; then
	ok "the --untagged PPK survived swanctl --load-creds and is used"
else
	fail "the --untagged PPK survived swanctl --load-creds and is used"
	ss_dump_logs
fi
keyctl unlink "$ring_a" @s >/dev/null
keyctl unlink "$ring_b" @s >/dev/null
[ "$tap_failed" -eq 0 ]
