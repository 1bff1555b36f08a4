"""The ``h3lab serve`` command: its options and how they become a running server.

The options follow uvicorn's names where the idea is the same (``--uds``,
``--fd``, ``--ssl-keyfile``, ``--proxy-headers``, ``--root-path``,
``--timeout-keep-alive``, ``--log-level``, ``--reload``). Whatever the server
can be told through ``Config`` is also reachable as ``--set section.field=value``.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import Any

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
ACCESS_FORMAT = "%(asctime)s %(message)s"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 = any free port), never wrapped modulo 65536."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0 picks a free port), got {port}")
    return port


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_parser(subparsers: Any, formatter: type[argparse.HelpFormatter]) -> None:
    from h3lab.cli import add_config_arguments, version_text

    serve = subparsers.add_parser(
        "serve",
        help="serve an app with the built-in HTTP/1.1 server",
        description=(
            "Serve APP (module:attribute: an h3lab.H3 app, or a factory taking a Config)\n"
            "until CTRL+C or SIGTERM, then shut down gracefully.\n\n"
            "  h3lab serve h3lab.examples.demo:app --preset performance --access-log"
        ),
        formatter_class=formatter,
    )
    serve.add_argument("app", metavar="APP", help="the app to serve, as module:attribute")
    where = serve.add_argument_group("where to listen")
    where.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all IPv4)")
    where.add_argument(
        "--port", type=port_number, default=3000, help="TCP port to bind (0 picks a free port)"
    )
    where.add_argument("--uds", metavar="PATH", help="bind this Unix domain socket instead")
    where.add_argument(
        "--fd",
        type=int,
        metavar="N",
        help="serve on an already bound socket, inherited as file descriptor N",
    )
    where.add_argument("--ssl-keyfile", metavar="FILE", help="TLS private key (PEM): serve HTTPS")
    where.add_argument("--ssl-certfile", metavar="FILE", help="TLS certificate chain (PEM)")
    where.add_argument(
        "--ssl-keyfile-password", metavar="TEXT", help="password of an encrypted key file"
    )
    config = serve.add_argument_group("configuration")
    add_config_arguments(config)
    config.add_argument(
        "--timeout-keep-alive",
        type=positive_float,
        metavar="SECONDS",
        help="close keep-alive connections idle this long "
        "(same as --set limits.keepalive_timeout=...; default 5)",
    )
    proxy = serve.add_argument_group("behind a proxy")
    proxy.add_argument(
        "--proxy-headers",
        action="store_true",
        help="take the client address and scheme from X-Forwarded-For/X-Forwarded-Proto, "
        "from trusted peers only",
    )
    proxy.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help="comma-separated addresses or networks trusted to send proxy headers ('*': all)",
    )
    proxy.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the prefix the app is mounted under (e.g. /api): removed before routing",
    )
    run = serve.add_argument_group("processes and logging")
    run.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="processes sharing the port (SO_REUSEPORT)",
    )
    run.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop (auto: uvloop when installed)",
    )
    run.add_argument(
        "--reload",
        action="store_true",
        help="restart when a .py file under the current directory changes (development)",
    )
    run.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        help="level of the server's own log messages (stderr)",
    )
    run.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request to stderr: time, client:port, request line, "
        "status, bytes, latency (costs throughput)",
    )
    serve.add_argument(
        "--version", action="version", version=version_text(), help="print the version and exit"
    )
    serve.set_defaults(func=run_serve)


def configure_logging(level: str, access_log: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("h3lab")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access = logging.getLogger("h3lab.access")
    access.propagate = False
    if access_log:
        access_handler = logging.StreamHandler(sys.stderr)
        access_handler.setFormatter(logging.Formatter(ACCESS_FORMAT))
        access.handlers[:] = [access_handler]
        access.setLevel(logging.INFO)  # asked for explicitly: shown at any --log-level


def ssl_context(args: argparse.Namespace) -> Any:
    if not (args.ssl_keyfile or args.ssl_certfile):
        return None
    if not (args.ssl_keyfile and args.ssl_certfile):
        raise ValueError("--ssl-keyfile and --ssl-certfile go together")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile, args.ssl_keyfile_password)
    except FileNotFoundError as exc:
        raise ValueError(f"cannot read {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load the TLS key and certificate: {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _child_argv(argv: list[str]) -> Any:
    """``h3lab serve`` argv for a --reload child: the same, listening on an inherited fd."""
    drop_value = {"--host", "--port", "--uds", "--fd"}
    kept: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name == "--reload":
            continue
        if name in drop_value:
            skip = "=" not in item
            continue
        kept.append(item)

    def build(fd: int) -> list[str]:
        return [sys.executable, "-m", "h3lab.cli", *kept, "--fd", str(fd)]

    return build


def run_serve(args: argparse.Namespace) -> int:
    from h3lab.cli import CLIError, config_from_args, load_app
    from h3lab.config import Config
    from h3lab.server import core, proxy

    if sum(x is not None for x in (args.uds, args.fd)) > 1:
        raise CLIError("--uds and --fd are mutually exclusive")
    config = config_from_args(args)
    if args.access_log:
        config = (config or Config()).replace("server.access_log", True)
    if args.timeout_keep_alive is not None:
        config = (config or Config()).replace("limits.keepalive_timeout", args.timeout_keep_alive)
    ssl = ssl_context(args)
    trusted = proxy.TrustedHosts(args.forwarded_allow_ips) if args.proxy_headers else None
    hook = proxy.proxy_hook(trusted=trusted, root_path=args.root_path)  # checks --root-path
    app = load_app(args.app, config)  # fails here, in one line, before anything listens
    if args.reload:
        if args.workers > 1:
            raise CLIError("--reload runs one server process: leave out --workers")
        from h3lab.server import reload

        sock: socket.socket | None
        if args.fd is not None:
            sock = socket.socket(fileno=args.fd)
        else:
            sock = reload.bind(args.host, args.port, args.uds, app.config.server.backlog)
        return reload.supervise(_child_argv(args.argv), sock)
    if trusted is not None or args.root_path:
        proxy.install(app, hook)
    sock = None
    if args.fd is not None:
        try:
            sock = socket.socket(fileno=args.fd)
        except OSError as exc:
            raise CLIError(f"--fd {args.fd}: not an open socket ({exc.strerror})") from None
    # Only now: an argument error above must not leave the process's logging changed.
    configure_logging(args.log_level, args.access_log)
    core.serve(
        app,
        args.host,
        args.port,
        loop=args.loop,
        workers=args.workers,
        uds=args.uds,
        sock=sock,
        ssl=ssl,
    )
    return 0


__all__ = ["add_parser", "configure_logging", "port_number", "run_serve"]
