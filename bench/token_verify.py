"""In-process access token verification: first-seen tokens (signature checked) and repeat tokens (cached).

    PYTHONPATH=src .venv/bin/python bench/token_verify.py [--tokens N] [--repeats R]

The verifier is `charter.oidc.verify.TokenVerifier`, the one `engine.tokens` is: ES256 (ECDSA P-256)
keys from a key ring, the issuer, audience, expiry and revocation checks, and the cache of verified
tokens. N distinct RFC 9068 access tokens (default 20,000; the claims a signed-in person's token
carries: amr, groups, scope) are minted with one key, then:

- *cold*: each token verified once by a fresh verifier (an empty cache): parse, key by kid, signature,
  claims. Nearly all of it is the ECDSA verification, measured alone as *floor* (cryptography's
  `EllipticCurvePublicKey.verify` on the same signatures, DER-encoded beforehand);
- *cached*: the same tokens verified again R more times each, in shuffled order (the common case: a
  client presents its token on every call for the hour it lives).

Each call is timed with `time.perf_counter_ns`; p50/p99 by nearest rank. No store is involved: the key
ring is built from key rows in memory, as the engine builds it from a snapshot. Part of `bench/tokens.py`
(issuance over HTTP) once both halves are merged.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import gc
import platform
import random
import time
import tracemalloc

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from charter.oidc import keys
from charter.oidc.tokens import mint_access_token
from charter.oidc.verify import TokenVerifier
from charter.policy.obligations import obligations_of
from charter.sealed import Sealer

ISSUER = "https://charter.example"
NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def percentile(sorted_ns: list[int], p: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, max(0, round(p / 100 * len(sorted_ns)) - 1))] / 1000


def report(name: str, samples: list[int]) -> None:
    samples.sort()
    mean = sum(samples) / len(samples) / 1000
    print(
        f"{name:<8} n={len(samples):>7,}  p50 {percentile(samples, 50):7.2f} µs  p99 {percentile(samples, 99):7.2f} µs"
        f"  mean {mean:7.2f} µs  ({1e6 / mean:,.0f}/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    sealer = Sealer([Fernet.generate_key()])
    row = keys.new_key(sealer, NOW, obligations_of([]))
    ring = keys.KeyRing([row], sealer, NOW)
    private = ring.private(row.kid)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, {args.tokens:,} tokens")

    tokens = [
        mint_access_token(
            ring,
            issuer=ISSUER,
            audience=ISSUER,
            subject_type="user",
            subject=f"user-{i}",
            client_id="console",
            scope="openid profile charter:api",
            lifetime=dt.timedelta(hours=1),
            now=NOW,
            amr=["pwd", "otp"],
            auth_time=NOW,
            groups=["sre", "support", f"team-{i % 50}"],
        ).token
        for i in range(args.tokens)
    ]
    print(f"token size {len(tokens[0])} bytes")
    now = NOW + dt.timedelta(minutes=5)

    # floor: the ECDSA P-256 verification alone, on the same signatures
    public = private.get_op_key("verify")
    prepared = []
    for token in tokens:
        header, payload, signature = token.split(".")
        raw = base64.urlsafe_b64decode(signature + "==")
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        prepared.append((der, f"{header}.{payload}".encode()))
    algorithm = ec.ECDSA(hashes.SHA256())
    gc.collect()
    gc.disable()
    floor = []
    for der, message in prepared:
        start = time.perf_counter_ns()
        public.verify(der, message, algorithm)
        floor.append(time.perf_counter_ns() - start)

    verifier = TokenVerifier(ring, ISSUER)
    cold = []
    for token in tokens:
        start = time.perf_counter_ns()
        verifier.verify(token, now)
        cold.append(time.perf_counter_ns() - start)

    order = [t for _ in range(args.repeats) for t in tokens]
    random.Random(7).shuffle(order)
    cached = []
    for token in order:
        start = time.perf_counter_ns()
        verifier.verify(token, now)
        cached.append(time.perf_counter_ns() - start)
    gc.enable()

    report("floor", floor)
    report("cold", cold)
    report("cached", cached)

    # What the cache holds per token (after the timings: tracemalloc slows everything it watches).
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    filled = TokenVerifier(ring, ISSUER)
    for token in tokens:
        filled.verify(token, now)
    per_token = (tracemalloc.get_traced_memory()[0] - before) / len(tokens)
    tracemalloc.stop()
    size = filled.cache_size
    full = (per_token + len(tokens[0]) + 49) * size / 2**20  # and the token itself, the key
    print(f"cache    {per_token:,.0f} bytes a token besides the token string; full ({size:,} tokens): ~{full:,.0f} MiB")


if __name__ == "__main__":
    main()
