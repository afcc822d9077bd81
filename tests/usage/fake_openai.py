"""A tiny real HTTP server speaking enough of the OpenAI API for the reporter tests.

POST /v1/responses (plain or ``stream: true`` as SSE), /v1/chat/completions (with
``stream_options.include_usage``), /v1/embeddings. A model named ``fail-429`` gets a 429.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ids = itertools.count(1)
USAGE = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 20},
         "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 10}, "total_tokens": 150}


def _response(model: str) -> dict:
    n = next(_ids)
    return {"id": f"resp_fake{n}", "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": model, "service_tier": "default",
            "output": [{"type": "message", "id": f"msg_{n}", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": USAGE}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_fake{next(_ids)}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[dict]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("x-request-id", f"req_fake{next(_ids)}")
        self.send_header("Connection", "close")
        self.end_headers()
        for e in events:
            name = e.get("type") or "chunk"
            self.wfile.write(f"event: {name}\ndata: {json.dumps(e)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        model = body.get("model", "gpt-5.4-mini")
        if model == "fail-429":
            return self._json(429, {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
                              {"retry-after": "500"})
        if self.path == "/v1/responses":
            resp = _response(model)
            if not body.get("stream"):
                return self._json(200, resp)
            start = dict(resp, status="in_progress", output=[], usage=None)
            return self._sse([
                {"type": "response.created", "sequence_number": 0, "response": start},
                {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1",
                 "output_index": 0, "content_index": 0, "delta": "Hi ", "logprobs": []},
                {"type": "response.completed", "sequence_number": 2, "response": resp},
            ])
        if self.path == "/v1/chat/completions":
            n = next(_ids)
            usage = {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55,
                     "prompt_tokens_details": {"cached_tokens": 0},
                     "completion_tokens_details": {"reasoning_tokens": 0}}
            if not body.get("stream"):
                return self._json(200, {"id": f"chatcmpl-{n}", "object": "chat.completion",
                                        "created": int(time.time()), "model": model, "usage": usage,
                                        "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"role": "assistant", "content": "Hi"}}]})
            base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            return self._sse([
                dict(base, choices=[{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]),
                dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                dict(base, choices=[], usage=usage),
            ])
        if self.path == "/v1/embeddings":
            return self._json(200, {"object": "list", "model": model,
                                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                                    "usage": {"prompt_tokens": 8, "total_tokens": 8}})
        return self._json(404, {"error": {"message": "no such path"}})


class FakeOpenAI:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
