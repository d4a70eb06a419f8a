"""A minimal local Lambda Runtime API, enough to see a function binary finish its init: the
binary is ready when it long-polls `GET /2018-06-01/runtime/invocation/next`. Nothing leaves
the machine. Used by measure-cold-start.py and check-bootstraps.py.
"""
import http.server, os, socketserver, subprocess, threading, time

_ready = threading.Event()


class _RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            _ready.set()
            time.sleep(0.2)  # hold the long poll; the process is killed meanwhile
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


_server = None


def _address():
    global _server
    if _server is None:
        _server = _Server(("127.0.0.1", 0), _RuntimeApi)
        threading.Thread(target=_server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{_server.server_address[1]}"


# What Lambda sets for every function, plus credentials and a region that are never used.
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
}


def time_to_ready(binary, env, timeout=10.0, runner=()):
    """Starts `binary` with `env` (plus the Lambda variables) against the stub Runtime API and
    returns the milliseconds until it polls for its first event. Raises RuntimeError, carrying
    the binary's stderr, if it exits or stays silent instead. `runner` prefixes the command
    (an emulator for another architecture)."""
    _ready.clear()
    full_env = dict(LAMBDA_ENV, AWS_LAMBDA_RUNTIME_API=_address(),
                    AWS_LAMBDA_FUNCTION_NAME=os.path.basename(binary), PATH=os.environ.get("PATH", ""))
    full_env.update(env)
    start = time.perf_counter()
    proc = subprocess.Popen([*runner, binary], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    while not _ready.wait(0.01):
        if proc.poll() is not None or time.perf_counter() > deadline:
            proc.kill()
            stderr = proc.communicate()[1].decode(errors="replace").strip()
            raise RuntimeError(f"{binary} never polled for an event (exit {proc.returncode}): {stderr[-500:]}")
    elapsed = (time.perf_counter() - start) * 1000
    proc.kill()
    proc.communicate()
    return elapsed
