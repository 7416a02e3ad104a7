"""`python -m tests.fakes.kiro --port 0 --port-file PATH`: run the fake Kiro server until terminated."""
if __name__ == "__main__":  # patch before anything imports socket or ssl (the package's __init__ imports nothing)
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the server until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--state", default="{}", help="start-up state as JSON (access_tokens, refresh_token, ...)")
    parser.add_argument("--log-level", default=os.environ.get("FAKE_KIRO_LOG_LEVEL", "WARNING"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="fake-kiro %(levelname)s %(name)s: %(message)s")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of concurrent streams in benchmarks
    except (ValueError, OSError):
        pass

    from tests.fakes.kiro.server import serve
    from tests.fakes.kiro.state import State

    server = serve(args.host, args.port, State(json.loads(args.state)))
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        Path(tmp).write_text(str(server.server_port))
        os.replace(tmp, args.port_file)
    logging.getLogger(__name__).info("listening on %s:%s", args.host, server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
