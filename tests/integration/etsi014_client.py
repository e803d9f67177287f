#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A small ETSI GS QKD 014 V1.1.1 client, Python standard library only
(http.client + ssl), written from the standard's API: Status, Key request,
Key container, Key IDs and Error objects over HTTPS with a client certificate.
Independent of qkd-kme's code; used by its tests.

  etsi014_client.py --kme HOST:PORT --ca CA --cert CRT --key KEY status SLAVE
  ... enc SLAVE [--number N] [--size BITS] [--get]   prints the Key container
  ... dec MASTER KEY_ID...  [--get]                   prints the Key container
  ... random MASTER_OR_SLAVE N --seed S               N random requests (robustness)
Exit status 0 on HTTP 200, 1 otherwise (the Error object is printed).
"""
import argparse
import base64
import http.client
import json
import random
import ssl
import sys
import uuid

API = "/api/v1/keys/"


class Client:
    def __init__(self, kme, ca, cert, key):
        host, _, port = kme.rpartition(":")
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        ctx.check_hostname = False  # the lab KME certs name the KME, not 127.0.0.1 always
        if cert:
            ctx.load_cert_chain(cert, key)
        self.conn = http.client.HTTPSConnection(host.strip("[]"), int(port), context=ctx,
                                                timeout=10)

    def call(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        return r.status, doc

    def status(self, slave):
        return self.call("GET", API + slave + "/status")

    def enc_keys(self, slave, number=None, size=None, get=False):
        if get:
            q = "&".join(f"{k}={v}" for k, v in (("number", number), ("size", size)) if v)
            return self.call("GET", API + slave + "/enc_keys" + ("?" + q if q else ""))
        req = {}
        if number is not None:
            req["number"] = number
        if size is not None:
            req["size"] = size
        return self.call("POST", API + slave + "/enc_keys", req)

    def dec_keys(self, master, key_ids, get=False):
        if get:
            return self.call("GET", API + master + "/dec_keys?key_ID=" + key_ids[0])
        return self.call("POST", API + master + "/dec_keys",
                         {"key_IDs": [{"key_ID": k} for k in key_ids]})


def check_container(doc, size_bits):
    """A Key container: keys[] with a UUID key_ID and base64 key of size_bits."""
    out = []
    for k in doc["keys"]:
        uuid.UUID(k["key_ID"])
        key = base64.b64decode(k["key"], validate=True)
        if size_bits and len(key) * 8 != size_bits:
            raise ValueError("key of %d bits, asked %d" % (len(key) * 8, size_bits))
        out.append((k["key_ID"], key))
    return out


def random_requests(c, sae, n, seed):
    """n random requests; every answer must be an ETSI status with a JSON body."""
    rnd = random.Random(seed)
    seen = set()
    counts = {}
    junk = ['{', '[]', '{"number":"1"}', '{"number":-1}', '{"number":1e9}', 'null',
            '{"key_IDs":[{"key_ID":"x"}]}', '{"key_IDs":[]}', '\xff\xfe', '{"size":7}',
            '{"number":1,"additional_slave_SAE_IDs":["X"]}', '{"extension_mandatory":[{}]}']
    for _ in range(n):
        kind = rnd.randrange(6)
        target = rnd.choice([sae, "NOPE", "", "a" * 70, "SAE_%d" % rnd.randrange(4)])
        if kind == 0:
            st, doc = c.call("GET", API + target + "/status")
        elif kind == 1:
            st, doc = c.call("POST", API + target + "/enc_keys", rnd.choice(junk))
        elif kind == 2:
            st, doc = c.enc_keys(target, number=rnd.randrange(0, 200), size=rnd.choice(
                [None, 8, 128, 256, 255, 512, 0]), get=rnd.random() < 0.5)
        elif kind == 3:
            st, doc = c.dec_keys(target, [str(uuid.UUID(int=rnd.getrandbits(128)))],
                                 get=rnd.random() < 0.5)
        elif kind == 4:
            st, doc = c.call(rnd.choice(["PUT", "DELETE", "GET"]),
                             "/api/v1/keys/" + "/" * rnd.randrange(3) + target)
        else:
            st, doc = c.call("POST", API + target + "/dec_keys", rnd.choice(junk))
        if st not in (200, 400, 401, 404, 405, 503) or not isinstance(doc, dict):
            raise SystemExit("bad answer %r %r" % (st, doc))
        if st == 200 and "keys" in doc:
            for kid, _ in check_container(doc, None):
                if kid in seen:
                    raise SystemExit("key_ID %s handed out twice" % kid)
                seen.add(kid)
        counts[st] = counts.get(st, 0) + 1
    return counts, len(seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kme", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--get", action="store_true")
    ap.add_argument("--number", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("cmd", choices=["status", "enc", "dec", "random"])
    ap.add_argument("sae")
    ap.add_argument("rest", nargs="*")
    a = ap.parse_args()
    c = Client(a.kme, a.ca, a.cert, a.key)
    if a.cmd == "status":
        st, doc = c.status(a.sae)
    elif a.cmd == "enc":
        st, doc = c.enc_keys(a.sae, a.number, a.size, a.get)
        if st == 200:
            check_container(doc, a.size)
    elif a.cmd == "dec":
        st, doc = c.dec_keys(a.sae, a.rest, a.get)
        if st == 200:
            check_container(doc, None)
    else:
        counts, keys = random_requests(c, a.sae, int(a.rest[0]), a.seed)
        print(json.dumps({"statuses": counts, "keys": keys}))
        return 0
    print(json.dumps(doc))
    return 0 if st == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
