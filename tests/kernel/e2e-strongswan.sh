#!/bin/bash
# End to end, in the VM: QKD keys from qkd_keystore.ko as strongSwan PPKs (TAP).
#
#   scripts/vm-run tests/kernel/e2e-strongswan.sh
#
# Two network namespaces, alice and bob, joined by a veth pair; the key store
# module loaded (vm-run does it; else $QKD_MODULE is insmod'ed); in each
# namespace a link "ab" gets the same QKD keys under the same ids (qkdctl key
# push, as the pipeline's sink would). One charon per namespace with its own
# strongswan.conf, VICI socket and swanctl.conf; qkd-ppk takes the key from
# the namespace's store (consuming it) and loads it into that charon over VICI.
# Then:
#   * IKEv2 with ppk_required = yes comes up, `swanctl --list-sas` shows the
#     IKE_SA with .../PPK on both sides, charon says it used the PPK_ID, ping
#     passes over the ESP transport-mode CHILD_SA (its counters move);
#   * the key is gone from both stores once handed over;
#   * the same key id with different bytes on bob: refused (AUTH_FAILED);
#   * bob without any PPK: refused (no USE_PPK from the responder).
# Files go to /tmp only (the guest sees the host root read-only).
set -u
cd "$(dirname "$0")/../.."
top=$PWD
: "${QKD_BUILD:=$top/build}"
PPK=$QKD_BUILD/bin/qkd-ppk
SS_PPK=$PPK
QKDCTL=$QKD_BUILD/bin/qkdctl
SS_DIR=$(mktemp -d /tmp/e2e-strongswan.XXXXXX)
SS_NS_A=alice SS_NS_B=bob
SS_IP_A=10.99.1.1 SS_IP_B=10.99.1.2
. tests/kernel/e2e-strongswan-lib.sh

echo "1..16"

cleanup() {
	ss_cleanup
	rm -rf "$SS_DIR"
}
trap cleanup EXIT

ns_of() { [ "$1" = a ] && echo alice || echo bob; }
ctl() { local s=$1; shift; ip netns exec "$(ns_of "$s")" "$QKDCTL" "$@"; }
ppk() { local s=$1; shift; ip netns exec "$(ns_of "$s")" "$PPK" -s "$SS_DIR/$s/charon.vici" "$@"; }
key_ids() { ctl "$1" key list ab 2>/dev/null | awk '{ print $1 }' | tr '\n' ' '; }
hexkey() { od -An -tx1 -v "$1" | tr -d ' \n'; }
bail() { # the rest cannot run: report it and stop with the plan honoured
	fail "$1"
	ss_dump_logs
	while [ "$tap_n" -lt 16 ]; do fail "not run: $1"; done
	exit 1
}

if [ ! -d /sys/module/qkd_keystore ] && [ -n "${QKD_MODULE:-}" ]; then
	insmod "$QKD_MODULE"
fi
[ -d /sys/module/qkd_keystore ] && [ -x "$PPK" ] && [ -x "$QKDCTL" ] && [ -x "$SS_CHARON" ] ||
	bail "qkd_keystore loaded, qkd-ppk, qkdctl and charon present"
ok "qkd_keystore loaded, qkd-ppk, qkdctl and charon present"

# XFRM, ESP and veth may be modules; autoloading works too, this is quicker.
modprobe -a xfrm_user veth esp4 2>/dev/null
# The ESP AEAD rfc4106(gcm(aes)): its templates load on first use, which is
# slow under TCG, so instantiate it once before IKE needs it.
modprobe -a gcm ghash-generic seqiv 2>/dev/null
ss_netns_up || bail "namespaces alice and bob joined by veth"
ok "namespaces alice and bob joined by veth"

# QKD keys: 1 the same on both sides, 2 the same id but different bytes.
head -c 32 /dev/urandom >"$SS_DIR/k1"
head -c 32 /dev/urandom >"$SS_DIR/k2"
head -c 32 /dev/urandom >"$SS_DIR/k2x"
pushed=1
for s in a b; do
	k2=$SS_DIR/k2
	[ "$s" = b ] && k2=$SS_DIR/k2x
	ctl $s link add ab >/dev/null &&
	printf '1 %s\n2 %s\n' "$(hexkey "$SS_DIR/k1")" "$(hexkey "$k2")" | ctl $s key push ab ||
		pushed=0
done
if [ $pushed = 1 ] && [ "$(key_ids a)" = "1 2 " ] && [ "$(key_ids b)" = "1 2 " ]; then
	ok "link ab in both stores holds keys 1 and 2"
else
	bail "link ab in both stores holds keys 1 and 2 (alice: $(key_ids a), bob: $(key_ids b))"
fi

ss_conf a
ss_conf b
ss_start a && ss_start b || bail "one charon per namespace"
ss_swanctl_conf a "qkd:ab:1"
ss_swanctl_conf b "qkd:ab:1"
ss_load_conf a && ss_load_conf b || bail "swanctl --load-all"
ok "one charon per namespace, connection with ppk_required = yes loaded"

# alice takes the oldest key, bob names it: both get key 1.
id_a=$(ppk a load ab 2>"$SS_DIR/ppk-a.err")
id_b=$(ppk b load ab 1 2>"$SS_DIR/ppk-b.err")
if [ "$id_a" = qkd:ab:1 ] && [ "$id_b" = qkd:ab:1 ]; then
	ok "qkd-ppk loaded QKD key 1 into both charons as PPK qkd:ab:1"
else
	fail "qkd-ppk loaded QKD key 1 into both charons (got '$id_a' '$id_b')"
	sed 's/^/#   /' "$SS_DIR"/ppk-*.err
fi
if [ "$(key_ids a)" = "2 " ] && [ "$(key_ids b)" = "2 " ]; then
	ok "key 1 is consumed in both stores"
else
	fail "key 1 is consumed in both stores (alice: $(key_ids a), bob: $(key_ids b))"
fi

# Stores are per namespace: alice's qkd-ppk cannot see a link of bob's.
ctl b link add onlyb >/dev/null && printf '1 %s\n' "$(hexkey "$SS_DIR/k2")" | ctl b key push onlyb
out=$(ppk a load onlyb 2>&1)
st=$?
if [ $st -eq 3 ] && echo "$out" | grep -q 'no link onlyb' && [ "$(ctl b key list onlyb | wc -l)" = 1 ]; then
	ok "a link of another namespace is not found (exit 3), its key untouched"
else
	fail "a link of another namespace is not found (got $st: $out)"
fi

if ss_initiate; then
	ok "IKEv2 initiated with ppk_required = yes"
else
	fail "IKEv2 initiated with ppk_required = yes"
	ss_dump_logs
fi
if ss_sa_has_ppk a && ss_sa_has_ppk b; then
	ok "swanctl --list-sas shows the IKE_SA with PPK on both sides"
else
	fail "swanctl --list-sas shows the IKE_SA with PPK on both sides"
fi
sed -n '1,12s/^/#   /p' "$SS_DIR/a/sas.out"
if ppk b sas qkd | grep -q '^qkd #[0-9]* ESTABLISHED bob\.\.\.alice ppk=yes$'; then
	ok "qkd-ppk sas on bob reports the IKE_SA with ppk=yes"
else
	fail "qkd-ppk sas on bob reports the IKE_SA with ppk=yes"
fi
check "charon used PPK_ID qkd:ab:1" \
	grep -q "using PPK for PPK_ID 'qkd:ab:1'" "$SS_DIR/a/charon.log" "$SS_DIR/b/charon.log"
if ss_ping && ss_esp_used; then
	ok "ping alice -> bob passes over the ESP SA"
else
	fail "ping alice -> bob passes over the ESP SA"
	sed 's/^/#   /' "$SS_DIR/ping.out" "$SS_DIR/xfrm.out" 2>/dev/null | head -n 30
fi
if grep -qiF "$(hexkey "$SS_DIR/k1")" "$SS_DIR"/*/charon.log "$SS_DIR"/*.out "$SS_DIR"/*.err; then
	fail "no key bytes in any log"
else
	ok "no key bytes in any log"
fi

# Same key id 2, different bytes on the two sides.
ss_terminate
ppk a load ab 2 >/dev/null && ppk b load ab 2 >/dev/null && ss_reload_conns "qkd:ab:2" ||
	fail "load key 2 on both sides"
if ss_initiate; then
	fail "different key under the same id is refused"
else
	ok "different key under the same id is refused"
fi
check "refusal was an authentication failure" \
	grep -q "AUTHENTICATION_FAILED\|AUTH_FAILED\|MAC mismatched" "$SS_DIR/initiate.out" "$SS_DIR/b/charon.log"

# bob without any PPK (unloaded from charon); alice offers a PPK.
ss_terminate
printf '3 %s\n' "$(hexkey "$SS_DIR/k1")" | ctl a key push ab
ppk b unload qkd:ab:1 qkd:ab:2 && ppk a load ab 3 >/dev/null && ss_reload_conns "qkd:ab:3" ||
	fail "unload bob's PPKs, load key 3 on alice"
if ss_initiate; then
	fail "peer without the PPK is refused"
else
	if grep -q "peer does not support PPK" "$SS_DIR/initiate.out"; then
		ok "peer without the PPK is refused (no USE_PPK)"
	else
		ok "peer without the PPK is refused"
	fi
fi
[ "$tap_failed" -eq 0 ] || ss_dump_logs 40
[ "$tap_failed" -eq 0 ]
