"""The floor under ki2api's per-frame CPU: a bare gevent relay that forwards bytes and does nothing else.

`python -m bench.relay --port N --upstream PORT` accepts connections and, per connection, opens one to the
upstream, sends it what the client sent, and copies every read of the answer to the client as it comes (one
`recv` and one `sendall` per read, under gevent as ki2api's worker). It parses nothing. What one of its
forwarded frames costs in CPU is what any gevent process pays per frame arriving one per read on this
machine (the event loop, two system calls, two greenlet switches); ki2api's own figure sits on top of it.
"""
from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import socket  # noqa: E402
from typing import Any, Callable  # noqa: E402

from gevent.server import StreamServer  # noqa: E402


def handler(upstream_port: int) -> Callable[[socket.socket, Any], None]:
    """One client connection: its request to the upstream, the answer back read by read."""
    def handle(client: socket.socket, _address: Any) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            request = client.recv(262144)  # the bench's requests are small: one read holds them
            upstream.sendall(request)
            while data := upstream.recv(65536):
                client.sendall(data)
                if data.endswith(b"0\r\n\r\n"):  # end of the chunked body: the bench sends Connection: close
                    break
        except OSError:
            pass
        finally:
            upstream.close()
            client.close()
    return handle


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True, help="the bench streamer's port")
    args = parser.parse_args()
    StreamServer(("127.0.0.1", args.port), handler(args.upstream), backlog=4096).serve_forever()


if __name__ == "__main__":
    main()
