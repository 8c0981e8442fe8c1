"""The ``rawstream`` command: ``rawstream run MODULE_OR_FILE:APP`` and ``rawstream demo``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import ssl
import sys
from functools import partial
from pathlib import Path

import trio

from .app import App
from .cors import CORS
from .hub import BROKER_ENV, BrokerUnavailable, is_in_memory
from .llm import DEFAULT_TOKEN_RATE, UPSTREAM_API_KEY_ENV
from .llm.relay import Relay
from .logs import configure_logging
from .server import Config, Server, serve
from .server.workers import READY_MARKER, run_workers

__all__ = ["load_app", "main"]

log = logging.getLogger("rawstream.cli")

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


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {count}")
    return count


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="processes serving the port, supervised (default 1: this process serves; "
        "N > 1 needs Linux)",
    )
    # With --workers N > 1 this process becomes a supervisor (rawstream.server.workers) running N
    # copies of its own command line, each marked by two hidden options: --reuse-port (listen
    # with SO_REUSEPORT, so all of them share the port) and --supervised (report on stderr once
    # listening; shut down if the supervisor goes away).
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="where channels live: memory:// (default: in this process) or "
        "redis://HOST:PORT/DB (shared by workers and nodes; needs rawstream[redis])",
    )
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
        "--max-connections-per-client",
        type=int,
        metavar="N",
        help="open connections one client address may hold; beyond, 429 (default: no cap)",
    )
    parser.add_argument(
        "--ws-max-message-bytes",
        type=int,
        default=_DEFAULTS.ws_max_message_bytes,
        metavar="BYTES",
        help="largest WebSocket message, decompressed (default %(default)s); close 1009 beyond",
    )
    parser.add_argument(
        "--ws-max-fragments",
        type=int,
        default=_DEFAULTS.ws_max_fragments,
        metavar="N",
        help="most frames one WebSocket message may arrive in (default %(default)s)",
    )
    parser.add_argument(
        "--ws-ping-interval",
        type=float,
        default=_DEFAULTS.ws_ping_interval,
        metavar="SECONDS",
        help="seconds between WebSocket pings (default %(default)s; 0 turns them off)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages from ORIGIN (e.g. https://app.example; '*' for any) open WebSockets "
        "and read HTTP and SSE responses (CORS); repeatable (default: same origin only)",
    )
    parser.add_argument(
        "--no-permessage-deflate", action="store_true", help="refuse WebSocket compression"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object a line (default text)",
    )


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if certfile is None:
        if keyfile is not None:
            raise SystemExit("rawstream: --keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


#: Options the supervisor sets itself on a worker's command line (each takes one value).
_SUPERVISOR_OPTIONS = ("--workers", "--port")


def _worker_argv(argv: list[str]) -> list[str]:
    """``argv`` without ``--workers`` and ``--port`` (``--opt V`` or ``--opt=V``): what a worker
    runs, every other option passed through untouched.

    An abbreviation (``--work 4``) is left in place; that is harmless, since the worker's
    appended ``--port`` wins and a ``--supervised`` worker never supervises.
    """
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in _SUPERVISOR_OPTIONS:
            skip_value = True
        elif not arg.startswith(tuple(option + "=" for option in _SUPERVISOR_OPTIONS)):
            kept.append(arg)
    return kept


def _supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``args.workers`` workers with this command line (see :func:`run_workers`)."""
    ssl_context = _ssl_context(args.certfile, args.keyfile)  # a bad certificate fails here, once
    return run_workers(
        _worker_argv(argv),
        args.workers,
        host=args.host,
        port=args.port,
        scheme="https" if ssl_context else "http",
        drain_timeout=args.drain_timeout,
        channels_per_process=is_in_memory(args.broker),
    )


async def _serve_supervised(
    app: App, *, host: str, port: int, config: Config, ssl_context: ssl.SSLContext | None
) -> None:
    """Serve as one worker of a supervisor: listen with ``SO_REUSEPORT``, write
    :data:`READY_MARKER` on stderr once listening, and shut down gracefully, like on SIGTERM,
    when stdin (a pipe from the supervisor) reaches EOF: the supervisor has gone, and nobody
    would stop or restart this worker any more."""
    async with trio.open_nursery() as nursery:

        async def run_server(task_status: trio.TaskStatus[Server]) -> None:
            await serve(
                app,
                host=host,
                port=port,
                config=config,
                ssl_context=ssl_context,
                handle_signals=True,
                reuse_port=True,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()  # the stdin watch

        server: Server = await nursery.start(run_server)
        print(f"{READY_MARKER} {server.port}", file=sys.stderr, flush=True)
        nursery.start_soon(_shutdown_at_stdin_eof, server)


async def _shutdown_at_stdin_eof(server: Server) -> None:
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        while await stdin.receive_some():
            pass
    log.warning("the supervisor has gone (stdin closed): shutting down")
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rawstream`` console script and ``python -m rawstream``."""
    parser = argparse.ArgumentParser(prog="rawstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve an App from a module or file")
    run.add_argument("app", metavar="MODULE_OR_FILE:APP", help="e.g. examples/hello.py:app")
    _add_server_options(run)
    demo = commands.add_parser("demo", help="serve the demo app (/, /events, /ws/chat, ...)")
    _add_server_options(demo)
    demo.add_argument(
        "--upstream",
        metavar="URL",
        help="relay /v1/chat/completions to this OpenAI-compatible base URL (e.g. "
        "http://127.0.0.1:11434/v1) instead of the built-in token generator; "
        "$RAWSTREAM_UPSTREAM_API_KEY, if set, is sent as its bearer token",
    )
    demo.add_argument(
        "--token-rate",
        type=float,
        default=DEFAULT_TOKEN_RATE,
        metavar="N",
        help=f"tokens a second of the built-in model (default {DEFAULT_TOKEN_RATE:g})",
    )
    args = parser.parse_args(argv)
    relay = _check_demo_options(parser, args) if args.command == "demo" else None

    configure_logging(args.log_level, args.log_format)
    try:  # (before any worker starts: a bad option fails once, here)
        config = _config(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers > 1 and not args.supervised:
        return _supervise(args, sys.argv[1:] if argv is None else list(argv))
    if args.broker:  # the app (and every worker) finds it with rawstream.hub.open_broker()
        os.environ[BROKER_ENV] = args.broker
    if args.command == "demo":
        from .demo import build_demo, open_demo_broker

        try:
            hub = open_demo_broker(args.broker)
        except ValueError as exc:
            parser.error(str(exc))
        app = build_demo(hub, upstream=relay, token_rate=args.token_rate)
    else:
        app = load_app(args.app)
    ssl_context = _ssl_context(args.certfile, args.keyfile)
    unavailable: list[BaseException] = []
    try:
        _run_server(args, app, config, ssl_context)
    except* BrokerUnavailable as failed:  # e.g. Redis unreachable at start: no server
        unavailable.extend(failed.exceptions)
    for error in unavailable:
        print(f"rawstream: cannot start: {error}", file=sys.stderr)
    return 1 if unavailable else 0


def _config(args: argparse.Namespace) -> Config:
    """The server's settings from the command line (ValueError: a value out of range or a
    bad ``--allow-origin``)."""
    origins = tuple(args.allow_origin)
    return Config(
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
        ws_max_message_bytes=args.ws_max_message_bytes,
        ws_max_fragments=args.ws_max_fragments,
        ws_ping_interval=args.ws_ping_interval or None,
        ws_allowed_origins=origins,
        cors=CORS(origins=origins) if origins else None,
        drain_timeout=args.drain_timeout,
        permessage_deflate=not args.no_permessage_deflate,
    )


def _check_demo_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Relay | None:
    """Refuse a bad ``--token-rate`` or ``--upstream`` (and upstream key) with a usage error,
    before anything starts; return the relay to ``--upstream``, if any."""
    if not args.token_rate >= 0:  # NaN too
        parser.error(f"--token-rate must be 0 or more tokens a second, not {args.token_rate}")
    if args.upstream is None:
        return None
    try:
        return Relay(args.upstream, api_key=os.environ.get(UPSTREAM_API_KEY_ENV))
    except ValueError as exc:
        parser.error(f"--upstream: {exc}")


def _run_server(
    args: argparse.Namespace, app: App, config: Config, ssl_context: ssl.SSLContext | None
) -> None:
    options = {"host": args.host, "port": args.port, "config": config, "ssl_context": ssl_context}
    if args.supervised:
        trio.run(partial(_serve_supervised, app, **options))
    else:
        trio.run(partial(serve, app, handle_signals=True, reuse_port=args.reuse_port, **options))


if __name__ == "__main__":
    sys.exit(main())
