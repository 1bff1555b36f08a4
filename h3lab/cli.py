"""The ``h3lab`` command: ``serve``, and the ``bench``, ``study`` and ``tune`` suites.

Each suite registers its own sub-commands from its package (``add_parser``),
imported lazily so ``h3lab serve`` never imports pandas or Jupyter.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tomllib
from collections.abc import Callable
from typing import Any

from h3lab.config import PRESETS, Config

# sub-command -> module exposing add_parser(subparsers)
SUITES = {
    "bench": "h3lab.bench.cli",
    "study": "h3lab.studies.cli",
    "tune": "h3lab.tune.cli",
}


class CLIError(ValueError):
    """A bad argument: printed as one line, exit status 2."""


def load_app(target: str, config: Config | None) -> Any:
    """``module:attr`` -> an H3 app, rebuilt under ``config`` when one is given.

    ``attr`` may be an ``H3`` instance or a factory taking the config.
    """
    from h3lab.app import H3

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CLIError(f"app must look like module:attribute, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise CLIError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, H3):
        return obj.clone(config) if config is not None else obj
    if callable(obj):
        app = obj(config) if config is not None else obj()
        if not isinstance(app, H3):
            raise CLIError(f"{target} returned {type(app).__name__}, not an h3lab.H3 app")
        return app
    raise CLIError(f"{target} is a {type(obj).__name__}, not an h3lab.H3 app or factory")


def config_from_args(args: argparse.Namespace) -> Config | None:
    """--config FILE, then --preset, then --set overrides (None if none given)."""
    if not (args.config or args.preset or args.set):
        return None
    if args.config:
        if args.preset:
            raise CLIError("--config and --preset are mutually exclusive")
        try:
            config = Config.load(args.config)
        except OSError as exc:
            raise CLIError(f"cannot read config file {args.config!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise CLIError(f"config file {args.config!r} is not valid TOML: {exc}") from None
        except json.JSONDecodeError as exc:
            raise CLIError(f"config file {args.config!r} is not valid JSON: {exc}") from None
    else:
        config = Config.preset(args.preset or "balanced")
    if args.set:
        config = config.with_overrides(args.set)
    return config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), help="start from this preset")
    parser.add_argument("--config", metavar="FILE", help="a .toml/.json config (Config.load)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set cache.policy=lru (repeatable)",
    )


def _serve(args: argparse.Namespace) -> int:
    from h3lab.server import serve

    config = config_from_args(args)
    if args.access_log:
        config = (config or Config()).replace("server.access_log", True)
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = load_app(args.app, config)
    serve(app, args.host, args.port, loop=args.loop, workers=args.workers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="h3lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve an app with the built-in server")
    serve.add_argument("app", nargs="?", default="h3lab.examples.demo:app", help="module:attr")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    serve.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--access-log", action="store_true")
    add_config_arguments(serve)
    serve.set_defaults(func=_serve)
    for module_name in SUITES.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that suite is not part of this installation
            raise
        add: Callable[[Any], None] = module.add_parser
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError) as exc:
        print(f"h3lab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Under ``python -m h3lab.cli`` this module runs as ``__main__``; call the
    # ``h3lab.cli`` module's main so suites raising ``h3lab.cli.CLIError`` are
    # caught by the same class.
    from h3lab.cli import main as _main

    sys.exit(_main())
