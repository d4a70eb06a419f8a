#!/usr/bin/env python3
"""Measures a Lambda binary's init time: process start → its first
`GET /2018-06-01/runtime/invocation/next` (ready for the first event), against a minimal
local Lambda runtime API. Nothing leaves the machine.

usage: measure-cold-start.py BINARY [RUNS]     (prints min / median / p90 in ms)
"""
import http.server, os, pathlib, socketserver, statistics, subprocess, sys, threading, time

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
root = pathlib.Path(__file__).resolve().parent.parent
ready = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            ready.set()
            time.sleep(0.2)  # hold the long poll; the process is killed meanwhile
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ,
           AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
           AWS_LAMBDA_FUNCTION_NAME="config-api", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
           AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_FORMAT="JSON",
           AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
           AWS_EC2_METADATA_DISABLED="true",
           TAGCFG_TABLE="tagcfg-config", TAGCFG_ISSUER="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x",
           TAGCFG_JWKS_FILE=str(root / "crates/tenant-auth/tests/fixtures/jwks.json"))
samples = []
for _ in range(runs):
    ready.clear()
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not ready.wait(10):
        proc.kill()
        sys.exit(f"{binary} never polled for an event")
    samples.append((time.perf_counter() - start) * 1000)
    proc.kill()
    proc.wait()
samples.sort()
p90 = samples[max(0, int(len(samples) * 0.9) - 1)]
print(f"init (process start -> first /next), {runs} runs: min {samples[0]:.1f} ms, median {statistics.median(samples):.1f} ms, p90 {p90:.1f} ms")
