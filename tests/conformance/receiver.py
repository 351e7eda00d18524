"""A CloudEvents receiver built on the official SDK: parse every POST, keep what it parsed.

Each POST is handed to cloudevents.core.bindings.http.from_http, which tells binary from
structured mode by the ce- headers. A message the SDK accepts is answered 204 and kept
as a Received record; one it refuses is answered 400 and kept in `refused` with the
reason, so a test can both see the refusal and fail on it.

The SDK fills in a missing specversion, id or time when it builds the event, so what it
parsed cannot show whether the sender sent them: each record also keeps `wire`, the
attributes exactly as they were on the wire (see wire_attributes).
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat


@dataclass
class Received:
    mode: str  # "binary" or "structured", as the SDK saw it
    headers: dict[str, str]  # lower-cased names
    body: bytes
    event: BaseCloudEvent

    @property
    def wire(self) -> dict[str, Any]:
        return wire_attributes(self.mode, self.headers, self.body)

    @property
    def attributes(self) -> dict[str, Any]:
        return self.event.get_attributes()

    @property
    def data(self) -> Any:
        return self.event.get_data()


def wire_attributes(mode: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The attributes as sent, before the SDK fills anything in: name -> raw value."""
    if mode == "binary":
        attrs: dict[str, Any] = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        if "content-type" in headers:
            attrs["datacontenttype"] = headers["content-type"]
        return attrs
    doc = json.loads(body)
    return {k: v for k, v in doc.items() if k not in ("data", "data_base64")}


class Receiver:
    def __init__(self) -> None:
        self.events: list[Received] = []
        self.refused: list[tuple[dict[str, str], bytes, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the binary expects

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self._read_body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                mode = "binary" if any(k.startswith("ce-") for k in headers) else "structured"
                try:
                    event = from_http(HTTPMessage(headers=headers, body=body), JSONFormat())
                except Exception as err:  # the SDK refused it: that is the 400
                    reason = f"{type(err).__name__}: {err}"
                    with receiver._lock:
                        receiver.refused.append((headers, body, reason))
                    self._answer(400, reason.encode())
                    return
                with receiver._lock:
                    receiver.events.append(Received(mode, headers, body, event))
                self._answer(204, b"")

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def snapshot(self) -> tuple[list[Received], list[tuple[dict[str, str], bytes, str]]]:
        with self._lock:
            return list(self.events), list(self.refused)
