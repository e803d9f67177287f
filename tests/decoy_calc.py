#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Independent calculator of the decoy-state key length of Lim, Curty,
Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Eqs. (1)-(5), written from the
paper (not from userspace/lib/decoy.c), standard library only.

Input, one case per line (whitespace separated):
  mu1 mu2 mu3 p1 p2 p3 nX1 nX2 nX3 nZ1 nZ2 nZ3 mZ1 mZ2 mZ3 leak eps_sec eps_cor
Output, one line per case: the key length l (an integer, 0 = no key).
Conventions shared with the C (stated in qkd/decoy.h): s_0, s_1 >= 0,
phi_X <= 1/2, the observed single-photon error rate at least 1/s_Z1.
"""
import math
import sys


def h2(x):
    if x <= 0:
        return 0.0
    if x >= 0.5:
        return 1.0
    return -x * math.log2(x) - (1 - x) * math.log2(1 - x)


def key_length(mu, p, nx, nz, mz, leak, es, ec):
    taus = [sum(math.exp(-m) * m ** n * q for m, q in zip(mu, p)) / math.factorial(n)
            for n in (0, 1)]

    def hoeff(counts):
        delta = math.sqrt(sum(counts) / 2.0 * math.log(21.0 / es))
        lo = [math.exp(m) / q * (c - delta) for m, q, c in zip(mu, p, counts)]
        hi = [math.exp(m) / q * (c + delta) for m, q, c in zip(mu, p, counts)]
        return lo, hi

    def s0_s1(counts):
        lo, hi = hoeff(counts)
        a, b, c = mu
        s0 = max(0.0, taus[0] * (b * lo[2] - c * hi[1]) / (b - c))
        num = lo[1] - hi[2] - (b * b - c * c) / (a * a) * (hi[0] - s0 / taus[0])
        s1 = max(0.0, taus[1] * a * num / (a * (b - c) - b * b + c * c))
        return s0, s1

    sx0, sx1 = s0_s1(nx)
    _, sz1 = s0_s1(nz)
    mlo, mhi = hoeff(mz)
    vz1 = max(0.0, taus[1] * (mhi[1] - mlo[2]) / (mu[1] - mu[2]))
    phi = 0.5
    if sz1 >= 1 and sx1 >= 1:
        rate = max(vz1 / sz1, 1.0 / sz1)
        if rate < 0.5:
            c, d = sz1, sx1
            g = math.sqrt((c + d) * (1 - rate) * rate / (c * d * math.log(2)) *
                          math.log2((c + d) / (c * d * (1 - rate) * rate) * 21.0 ** 2 / es ** 2))
            phi = min(0.5, rate + g)
    bound = (sx0 + sx1 * (1 - h2(phi)) - leak - 6 * math.log2(21.0 / es) -
             math.log2(2.0 / ec))
    if not math.isfinite(bound) or bound < 1:
        return 0
    return min(int(math.floor(bound)), sum(nx))


def main():
    for line in sys.stdin:
        v = line.split()
        if not v:
            continue
        f = [float(x) for x in v]
        i = [int(x) for x in v[6:16]]
        print(key_length(f[0:3], f[3:6], i[0:3], i[3:6], i[6:9], i[9], f[16], f[17]))


if __name__ == "__main__":
    main()
