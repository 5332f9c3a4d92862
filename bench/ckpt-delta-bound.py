#!/usr/bin/env python3
"""Entropy estimate of a checkpoint's weights coded against the previous checkpoint (issue 16).

Models each weight's sign-magnitude integer difference d = b - a (what `compress --ref` codes) as
bit length L = bitlen(|d|), the L-1 bits under the leading one (taken as uniform), and the sign of d;
then conditions L on the reference's exponent field and on the step size the target's own Adam moments
predict (|m|/sqrt(v), in ulps of the reference), and the sign on the sign of the target's exp_avg.
Static empirical entropies, no model cost: a lower bound for coders of that family, not a coder.

usage: ckpt-delta-bound.py TARGET.safetensors REFERENCE.safetensors    (pure Python, ~2 min)
"""
import array, json, math, struct, sys
from collections import Counter


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__": continue
        if t["dtype"] != "F32": sys.exit(f"{path}: tensor {name} is {t['dtype']}; this estimate reads F32 only")
        a, b = t["data_offsets"]
        arr = array.array("I"); arr.frombytes(data[a:b]); out[name] = arr
    return out


def entropy(c):
    n = sum(c.values()); return -sum(v * math.log2(v / n) for v in c.values())


def conditional(cc):
    return sum(entropy(c) for c in cc.values())


def signed(u):
    return -(u & 0x7FFFFFFF) if u >> 31 else u & 0x7FFFFFFF


def as_float(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


target, reference = load(sys.argv[1]), load(sys.argv[2])
n = raw = nonzero = 0
length, by_exp, by_step, sign_by_m = Counter(), {}, {}, {}
for name, t in target.items():
    if name.startswith("optimizer.") or name not in reference: continue
    r = reference[name]
    m, v = target.get(f"optimizer.{name}.exp_avg"), target.get(f"optimizer.{name}.exp_avg_sq")
    for i in range(len(t)):
        d = signed(t[i]) - signed(r[i]); L = abs(d).bit_length(); e = (r[i] >> 23) & 0xFF
        n += 1; raw += max(L - 1, 0); nonzero += d != 0
        length[L] += 1; by_exp.setdefault(e, Counter())[L] += 1
        if m is not None and v is not None:
            mf, vf = as_float(m[i]), as_float(v[i])
            step = abs(mf) / (math.sqrt(vf) + 1e-8)
            ctx = math.floor(2 * math.log2(step)) - 2 * e if step > 0 else None  # half-octave bins, in ulps
            by_step.setdefault(ctx, Counter())[L] += 1
            if d: sign_by_m.setdefault(mf > 0, Counter())[d > 0] += 1
plain = (entropy(length) + raw + nonzero) / n
best = (min(conditional(by_exp), conditional(by_step) if by_step else math.inf) + raw
        + (conditional(sign_by_m) if sign_by_m else nonzero)) / n
print(f"{n} weights; bits/weight: H(L) {entropy(length)/n:.3f}, H(L|ref exponent) {conditional(by_exp)/n:.3f}, "
      f"H(L|predicted step) {conditional(by_step)/n if by_step else float('nan'):.3f}, bits under the leading one {raw/n:.3f}, "
      f"sign {nonzero/n:.3f}, H(sign|exp_avg sign) {conditional(sign_by_m)/n if sign_by_m else float('nan'):.3f}")
print(f"unconditioned model {plain:.3f} bits/weight; best conditioned {best:.3f} bits/weight")
