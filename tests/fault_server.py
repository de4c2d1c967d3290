"""A tiny OpenAI-compatible HTTP server that injects faults: it answers chat requests by following a
script of behaviours (HTTP error codes, hanging, then a canned completion), and records what it got.

Only for testing the HTTP backend's error paths (retries, timeouts, per-request failures); the real
server tests use llama.cpp (tests/llamacpp_server.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fault-model"


class FaultServer:
    """``script``: behaviours used one per chat request, in order; the last one repeats.

    A behaviour is an int (reply with that HTTP status), "hang" (never answer), "bad-json" (200 with
    a body that is not a completion), or a str starting with "text:" (200 with that completion text).
    """

    def __init__(self, script: list[Any], models: list[str] | None = None):
        self.script = list(script)
        self.models = [MODEL] if models is None else models
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": m} for m in server.models]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    server.requests.append(payload)
                    behaviour = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if behaviour == "hang":
                    server.stop_event.wait(60)
                    return
                if behaviour == "bad-json":
                    self._send(200, "<html>oops</html>")
                elif isinstance(behaviour, int):
                    headers = {"Retry-After": "0"} if behaviour == 429 else None
                    self._send(behaviour, {"error": {"message": f"injected {behaviour}"}}, headers)
                else:
                    text = behaviour.removeprefix("text:")
                    self._send(200, {"object": "chat.completion", "model": payload.get("model"), "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def chat_requests(self) -> int:
        return len(self.requests)


@contextmanager
def fault_server(script: list[Any], models: list[str] | None = None) -> Iterator[FaultServer]:
    server = FaultServer(script, models)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop_event.set()
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(5)
        time.sleep(0)  # let handler threads see the stop event
