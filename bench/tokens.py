"""Token issuance over HTTP: client-credentials requests to a running `charter serve`, timed one by one.

    .venv/bin/python bench/tokens.py [--requests 2000] [--warmup 200] [--database-url URL] [--no-check]

Starts `charter serve` on a free loopback port with a fresh store (SQLite in a temporary CHARTER_DATA_DIR,
or `--database-url`, e.g. PostgreSQL), registers a service OAuth client for "billing-api" through the admin
API, then sends `--warmup` and then `--requests` `POST /oauth/token` (grant_type=client_credentials, HTTP
Basic) one after another on one keep-alive httpx connection, each timed with perf_counter_ns. Every
issuance writes its audit record (the hash chain) in the request's transaction, so this is the cost of an
audited token. Prints p50/p99/max (nearest rank) in ms and tokens/s; target: p99 < 10 ms.

Correctness: every token must verify against the server's JWKS with joserfc (ES256, `typ: at+jwt`, iss,
`sub: billing-api`, `subject_type: service`, exp - iat = the charter's 1 hour), and the first and last are
introspected (active). `verify_in_process(tokens, jwks, issuer)` is where an in-process verification
section (charter.oidc.verify with its cache) can be timed on the same tokens.
"""

from __future__ import annotations

import benchkit  # first: it keeps bench/ off sys.path (see benchkit)

# isort: split

import argparse
import os
import platform
import sys
import tempfile
import time


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def verify_with_jwks(tokens: list[str], jwks: dict, issuer: str) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(jwks)
    for token in tokens:
        decoded = jwt.decode(token, keys, algorithms=["ES256"])
        claims = decoded.claims
        assert decoded.header["typ"] == "at+jwt", decoded.header
        assert claims["iss"] == issuer and claims["sub"] == "billing-api" and claims["subject_type"] == "service"
        assert claims["exp"] - claims["iat"] == 3600, claims


def verify_in_process(tokens: list[str], jwks: dict, issuer: str) -> str:
    """In-process verification of the issued tokens, as a relying party does it (charter.oidc.verify with the
    server's JWKS): each token's first check (signature) and a repeat (the verifier's cache).
    `bench/token_verify.py` measures the same over 20,000 tokens with the ECDSA floor alongside."""
    import datetime as dt
    import gc

    from charter.oidc.verify import PublishedKeys, TokenVerifier

    verifier = TokenVerifier(PublishedKeys(jwks), issuer)
    now = dt.datetime.now(dt.UTC)
    first: list[float] = []
    again: list[float] = []
    gc.disable()
    try:
        for samples in (first, again):
            for token in tokens:
                begin = time.perf_counter_ns()
                verifier.verify(token, now)
                samples.append((time.perf_counter_ns() - begin) / 1e3)
    finally:
        gc.enable()
    first.sort()
    again.sort()
    return (
        f"first check p50 {percentile(first, 0.50):.1f} µs p99 {percentile(first, 0.99):.1f} µs; "
        f"repeat (cached) p50 {percentile(again, 0.50):.2f} µs p99 {percentile(again, 0.99):.2f} µs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--database-url", help="PostgreSQL (or another) store instead of a fresh SQLite file")
    parser.add_argument("--no-check", action="store_true", help="skip verifying every token against JWKS")
    options = parser.parse_args()

    import httpx

    http_bench = benchkit.load_http_bench()
    with tempfile.TemporaryDirectory(prefix="charter-bench-tokens-") as data:
        env = {**os.environ, "CHARTER_DATA_DIR": data, "CHARTER_DECISION_LOG": "off"}
        env.pop("CHARTER_ISSUER", None)
        env.pop("CHARTER_DATABASE_URL", None)
        credential = None
        if options.database_url:
            env["CHARTER_DATABASE_URL"] = options.database_url
            credential = http_bench.mint_credential(env)  # an admin credential on a store initialised before
        server = http_bench.start_server(1, env, 600, credential)
        try:
            base = server.base
            admin = {"Authorization": f"Bearer {server.credential}"}
            with httpx.Client(base_url=base, timeout=30) as http:
                body = {"name": "bench", "grant_types": ["client_credentials"], "service": "billing-api"}
                created = http.post("/admin/v1/oauth-clients", json=body, headers=admin)
                assert created.status_code == 201, created.text
                client = created.json()
                auth = (client["client_id"], client["client_secret"])
                form = {"grant_type": "client_credentials"}
                for _ in range(options.warmup):
                    answer = http.post("/oauth/token", data=form, auth=auth)
                    assert answer.status_code == 200, answer.text + "\n" + "\n".join(server.output[-40:])
                times: list[float] = []
                tokens: list[str] = []
                started = time.perf_counter()
                for _ in range(options.requests):
                    begin = time.perf_counter_ns()
                    answer = http.post("/oauth/token", data=form, auth=auth)
                    times.append((time.perf_counter_ns() - begin) / 1e6)
                    if answer.status_code != 200:
                        print(f"refused: {answer.status_code} {answer.text}", file=sys.stderr)
                        return 1
                    tokens.append(answer.json()["access_token"])
                elapsed = time.perf_counter() - started
                jwks = http.get("/oauth/jwks").json()
                issuer = http.get("/.well-known/openid-configuration").json()["issuer"]
                for token in (tokens[0], tokens[-1]):
                    active = http.post("/oauth/introspect", data={"token": token}, auth=auth).json()
                    assert active.get("active") is True, active
        finally:
            server.stop()
    if not options.no_check:
        verify_with_jwks(tokens, jwks, issuer)
    ordered = sorted(times)
    store = "PostgreSQL" if options.database_url else "SQLite"
    print(
        f"token issuance over HTTP (client credentials, audited), {store}, {platform.processor() or platform.machine()}"
    )
    print(f"  {options.requests} requests after {options.warmup} warm-up, one keep-alive connection")
    print(
        f"  p50 {percentile(ordered, 0.50):.2f} ms   p99 {percentile(ordered, 0.99):.2f} ms   "
        f"max {ordered[-1]:.2f} ms   {options.requests / elapsed:.0f} tokens/s"
    )
    print(f"  every token verified against JWKS: {'skipped' if options.no_check else 'yes'}")
    extra = verify_in_process(tokens, jwks, issuer)
    if extra:
        print(f"  in process: {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
