#!/bin/bash
# qkd-kme on the host (TAP): two KMEs over real mutual TLS, keys from a key
# file (the kernel-store path runs in tests/kernel/e2e-kme.sh). curl and an
# independent Python ETSI 014 client (etsi014_client.py):
#   enc_keys on the master's KME and dec_keys on the slave's give the same
#   bytes, once; another SAE's certificate, no certificate and a certificate
#   from another CA get 401 and no key; malformed JSON, unknown SAE IDs,
#   oversize number, unsupported extensions and sizes get 400; a slowloris
#   connection neither blocks others nor lives past connection_timeout;
#   10,000 random requests: the daemon keeps serving and no key_ID is handed
#   out twice; verify_client no on a non-loopback address is refused.
set -u
cd "$(dirname "$0")/../.."
: "${QKD_BUILD:=$PWD/build}"
KME=$QKD_BUILD/bin/qkd-kme
PY=tests/integration/etsi014_client.py
d=$(mktemp -d /tmp/kme-test.XXXXXX)
pids=()
n=0 plan=20
echo "1..$plan"
ok() { n=$((n + 1)); echo "ok $n $1"; }
fail() { n=$((n + 1)); echo "not ok $n $1"; }
check() { local m=$1; shift; if "$@"; then ok "$m"; else fail "$m"; fi; }
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$d"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(free_port) PB=$(free_port)
scripts/kme-lab-certs "$d" --kme KME_A --kme KME_B --sae SAE_A --sae SAE_B --sae SAE_C >/dev/null
scripts/kme-lab-certs "$d/other" --sae SAE_B >/dev/null	# same name, another CA
python3 -c 'import os, sys
with open(sys.argv[1], "w") as f:
    for i in range(1, 3001):
        f.write("ab %d %s\n" % (i, os.urandom(32).hex()))' "$d/keys"
conf() { # NAME PORT PEER ROLE
	printf 'kme_id %s\nlisten 127.0.0.1:%s\ncert %s/%s.pem\nkey %s/%s.key\nca %s/ca.pem\n' \
		"$1" "$2" "$d" "$1" "$d" "$1" "$d"
	printf 'source file:%s/keys\npair ab SAE_A SAE_B %s %s\nconnection_timeout 2\n' "$d" "$3" "$4"
}
conf KME_A "$PA" KME_B master >"$d/a.conf"
conf KME_B "$PB" KME_A slave >"$d/b.conf"
"$KME" -c "$d/a.conf" 2>"$d/a.log" & pids+=($!)
"$KME" -c "$d/b.conf" 2>"$d/b.log" & pids+=($!)
for _ in $(seq 50); do
	grep -q serving "$d/a.log" && grep -q serving "$d/b.log" && break
	sleep 0.1
done
check "both KMEs serve" grep -q serving "$d/b.log"

c() { # SAE PORT PATH [curl args]: prints body then HTTP code
	local s=$1 p=$2 path=$3; shift 3
	curl -sS --cacert "$d/ca.pem" --cert "$d/$s.pem" --key "$d/$s.key" -w ' %{http_code}' \
		"$@" "https://127.0.0.1:$p/api/v1/keys/$path"
}
ids_of() { python3 -c 'import json,sys; print(json.dumps({"key_IDs":[{"key_ID":k["key_ID"]} for k in json.load(sys.stdin)["keys"]]}))'; }
keys_of() { python3 -c 'import json,sys; print(" ".join(k["key_ID"]+"="+k["key"] for k in json.load(sys.stdin)["keys"]))'; }

st=$(c SAE_A "$PA" SAE_B/status)
check "status: Status object, 3000 stored keys of 256 bits" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1].rsplit(" ",1)[0]); assert d["stored_key_count"]==3000 and d["key_size"]==256 and d["source_KME_ID"]=="KME_A" and d["target_KME_ID"]=="KME_B" and d["max_SAE_ID_count"]==0' "$st"

enc=$(c SAE_A "$PA" SAE_B/enc_keys -d '{"number":3}')
[ "${enc##* }" = 200 ] && ids=$(echo "${enc% *}" | ids_of)
dec=$(c SAE_B "$PB" SAE_A/dec_keys -d "${ids:-x}")
check "curl: enc_keys (3 keys) on KME_A, dec_keys on KME_B: byte-identical" \
	test -n "${ids:-}" -a "${dec##* }" = 200 -a "$(echo "${enc% *}" | keys_of)" = "$(echo "${dec% *}" | keys_of)"
again=$(c SAE_B "$PB" SAE_A/dec_keys -d "${ids:-x}")
check "second dec_keys of the same key_IDs: 400, no key" test "${again##* }" = 400 -a "${again#*keys}" = "$again"

enc=$(c SAE_A "$PA" 'SAE_B/enc_keys?number=1&size=128')
id=$(echo "${enc% *}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0]["key_ID"])' 2>/dev/null)
dec=$(c SAE_B "$PB" "SAE_A/dec_keys?key_ID=$id")
check "GET enc_keys size=128 and GET dec_keys: the same 16-byte key" \
	test "$(echo "${enc% *}" | keys_of)" = "$(echo "${dec% *}" | keys_of 2>/dev/null)" -a \
	"$(echo "${dec% *}" | python3 -c 'import json,sys,base64; print(len(base64.b64decode(json.load(sys.stdin)["keys"][0]["key"])))' 2>/dev/null)" = 16

out=$(python3 "$PY" --kme "127.0.0.1:$PA" --ca "$d/ca.pem" --cert "$d/SAE_A.pem" --key "$d/SAE_A.key" enc SAE_B --number 2 --size 256)
ids=$(echo "$out" | python3 -c 'import json,sys; print(" ".join(k["key_ID"] for k in json.load(sys.stdin)["keys"]))' 2>/dev/null)
out2=$(python3 "$PY" --kme "127.0.0.1:$PB" --ca "$d/ca.pem" --cert "$d/SAE_B.pem" --key "$d/SAE_B.key" dec SAE_A $ids)
check "Python ETSI 014 client: enc_keys then dec_keys, identical keys" \
	test -n "$ids" -a "$(echo "$out" | keys_of)" = "$(echo "$out2" | keys_of 2>/dev/null)"

enc=$(c SAE_A "$PA" SAE_B/enc_keys)
ids=$(echo "${enc% *}" | ids_of)
r=$(c SAE_C "$PB" SAE_A/dec_keys -d "$ids")
check "another SAE's certificate (SAE_C) on dec_keys: 401, no key" test "${r##* }" = 401 -a "${r#*\"key\"}" = "$r"
r=$(curl -sS --cacert "$d/ca.pem" --cert "$d/other/SAE_B.pem" --key "$d/other/SAE_B.key" -w ' %{http_code}' -d "$ids" "https://127.0.0.1:$PB/api/v1/keys/SAE_A/dec_keys")
check "SAE_B's name on a certificate of another CA: 401, no key" test "${r##* }" = 401 -a "${r#*\"key\"}" = "$r"
r=$(curl -sS --cacert "$d/ca.pem" -w ' %{http_code}' -d "$ids" "https://127.0.0.1:$PB/api/v1/keys/SAE_A/dec_keys")
check "no client certificate: 401, no key" test "${r##* }" = 401 -a "${r#*\"key\"}" = "$r"
r=$(c SAE_A "$PA" SAE_A/dec_keys -d "$ids")
check "the master SAE on its own KME asking dec_keys: 400/401, no key" test "${r#*\"key\"}" = "$r" -a "${r##* }" -ge 400
r=$(c SAE_B "$PB" SAE_A/dec_keys -d "$ids")
check "after the refusals, the right SAE still gets that key" test "${r##* }" = 200

bad=0
for body in '{' '[1]' '{"number":"2"}' '{"number":1,"extension_mandatory":[{"abc":1}]}' \
	'{"number":1,"additional_slave_SAE_IDs":["SAE_X"]}' '{"number":100000}' '{"size":7}' \
	'{"size":512}' '{"number":0}'; do
	r=$(c SAE_A "$PA" SAE_B/enc_keys -d "$body")
	case $r in *'"message"'*' 400') ;; *) bad=$((bad + 1)); echo "# $body -> $r" ;; esac
done
check "malformed JSON, wrong types, unsupported extensions/SAEs, oversize number, bad size: 400 Error" test $bad = 0
r=$(c SAE_A "$PA" NOPE/enc_keys)
check "unknown slave_SAE_ID: 400" test "${r##* }" = 400
r=$(c SAE_B "$PB" SAE_A/dec_keys -d '{"key_IDs":[{"key_ID":"not-a-uuid"}]}')
check "malformed key_ID: 400" test "${r##* }" = 400

# slowloris: a connection that sends half a request and stalls
python3 - "$PA" "$d" >"$d/slow" 2>&1 <<'PYEOF' &
import socket, ssl, sys, time
port, d = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=d + "/ca.pem")
ctx.check_hostname = False
ctx.load_cert_chain(d + "/SAE_A.pem", d + "/SAE_A.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
s.sendall(b"GET /api/v1/keys/SAE_B/status HTTP/1.1\r\nHost: x\r\n")
t = time.time()
s.settimeout(10)
try:
    while s.recv(4096):
        pass
except (OSError, ssl.SSLError):
    pass
print(int((time.time() - t) * 1000))
PYEOF
slow=$!
sleep 0.5
r=$(c SAE_A "$PA" SAE_B/status)
check "a stalled half request does not block another client" test "${r##* }" = 200
wait $slow
t=$(cat "$d/slow")
check "the stalled connection is closed after connection_timeout (2 s): ${t} ms" test "$t" -lt 6000 2>/dev/null

before=$(c SAE_A "$PA" SAE_B/status | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().rsplit(" ",1)[0])["stored_key_count"])')
rnd=$(python3 "$PY" --kme "127.0.0.1:$PA" --ca "$d/ca.pem" --cert "$d/SAE_A.pem" --key "$d/SAE_A.key" --seed 7 random SAE_B 10000 2>&1)
echo "# random requests on KME_A: $rnd"
after=$(c SAE_A "$PA" SAE_B/status | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().rsplit(" ",1)[0])["stored_key_count"])')
handed=$(echo "$rnd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])' 2>/dev/null)
check "10,000 random requests: all answered, no key_ID twice, store count fell by exactly the keys handed out ($before -> $after, ${handed:-?})" \
	test -n "$handed" -a $((before - after)) = "${handed:-x}"
kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null
check "both daemons still running" test $? = 0

sed 's/^listen .*/listen 0.0.0.0:1/; s/^ca .*/verify_client no/' "$d/a.conf" >"$d/open.conf"
msg=$("$KME" -c "$d/open.conf" 2>&1)
check "verify_client no on 0.0.0.0 is refused at start-up" test $? = 1 -a -n "$(echo "$msg" | grep 'refusing to listen')"
! grep -qiE '[A-Za-z0-9+/]{43}=' "$d/a.log" "$d/b.log"
check "no key material in the daemons' logs" test $? = 0
