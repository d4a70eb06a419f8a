#!/usr/bin/env python3
"""Measures a Lambda binary's init time: process start → its first
`GET /2018-06-01/runtime/invocation/next` (ready for the first event), against the stub
Runtime API in lambda_stub.py. Nothing leaves the machine.

usage: measure-cold-start.py BINARY [RUNS]     (prints min / median / p90 in ms)
"""
import pathlib, statistics, sys

from lambda_stub import time_to_ready

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
root = pathlib.Path(__file__).resolve().parent.parent
# config-api's configuration, with the test JWKS so nothing is fetched.
env = {"TAGCFG_TABLE": "tagcfg-config", "TAGCFG_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x",
       "TAGCFG_JWKS_FILE": str(root / "crates/tenant-auth/tests/fixtures/jwks.json")}
try:
    samples = sorted(time_to_ready(binary, env) for _ in range(runs))
except RuntimeError as e:
    sys.exit(str(e))
p90 = samples[max(0, int(len(samples) * 0.9) - 1)]
print(f"init (process start -> first /next), {runs} runs: min {samples[0]:.1f} ms, median {statistics.median(samples):.1f} ms, p90 {p90:.1f} ms")
