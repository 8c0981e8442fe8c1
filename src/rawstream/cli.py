"""The ``rawstream`` command: ``rawstream run MODULE_OR_FILE:APP`` and ``rawstream demo``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import ssl
import sys
from functools import partial
from pathlib import Path

import trio

from .app import App
from .server import Config, serve

__all__ = ["load_app", "main"]

_DEFAULTS = Config()


def load_app(spec: str) -> App:
    """Load ``module:attr`` or ``path/to/file.py:attr`` (``attr`` defaults to ``app``)."""
    target, _, attr = spec.partition(":")
    attr = attr or "app"
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.exists():
            raise SystemExit(f"rawstream: no such file: {target}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise SystemExit(f"rawstream: cannot load {target}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        sys.path.insert(0, str(path.parent))
        module_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, str(Path.cwd()))
        module = importlib.import_module(target)
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise SystemExit(f"rawstream: {spec} is not a rawstream.App (got {type(app).__name__})")
    return app


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--certfile", help="TLS certificate chain (PEM): serve https and wss")
    parser.add_argument("--keyfile", help="TLS private key (PEM), with --certfile")
    parser.add_argument("--max-connections", type=int, default=_DEFAULTS.max_connections)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=_DEFAULTS.drain_timeout,
        help="seconds open streams get to finish on shutdown",
    )
    parser.add_argument(
        "--no-permessage-deflate", action="store_true", help="refuse WebSocket compression"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if certfile is None:
        if keyfile is not None:
            raise SystemExit("rawstream: --keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rawstream`` console script and ``python -m rawstream``."""
    parser = argparse.ArgumentParser(prog="rawstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve an App from a module or file")
    run.add_argument("app", metavar="MODULE_OR_FILE:APP", help="e.g. examples/hello.py:app")
    _add_server_options(run)
    demo = commands.add_parser("demo", help="serve the demo app (/healthz, /events, /ws/echo)")
    _add_server_options(demo)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if args.command == "demo":
        from .demo import app
    else:
        app = load_app(args.app)
    config = Config(
        max_connections=args.max_connections,
        drain_timeout=args.drain_timeout,
        permessage_deflate=not args.no_permessage_deflate,
    )
    trio.run(
        partial(
            serve,
            app,
            host=args.host,
            port=args.port,
            config=config,
            ssl_context=_ssl_context(args.certfile, args.keyfile),
            handle_signals=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
