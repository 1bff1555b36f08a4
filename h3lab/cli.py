"""The ``h3lab`` command: ``serve``, and the ``bench``, ``study`` and ``tune`` suites.

Each suite registers its own sub-commands from its package (``add_parser``),
imported lazily so ``h3lab serve`` never imports pandas or Jupyter. Every
expected failure (a bad argument, an address in use, a missing optional
dependency, a closed pipe) ends as one line on stderr and a non-zero status.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tomllib
from collections.abc import Callable
from typing import Any, NoReturn

from h3lab.config import PRESETS, Config

DESCRIPTION = """\
h3lab: an H3-style HTTP framework with its own server, and the tools that measure it.

  h3lab serve APP       serve an app (e.g. h3lab serve h3lab.examples.demo:app)
  h3lab bench ...       micro-benchmarks, load runs, peers, soak, conformance
  h3lab study ...       run the research notebooks and build their report
  h3lab tune ...        search the configuration that serves a workload best

Run 'h3lab COMMAND --help' for a command's options."""

# sub-command -> module exposing add_parser(subparsers)
SUITES = {
    "bench": "h3lab.bench.cli",
    "study": "h3lab.studies.cli",
    "tune": "h3lab.tune.cli",
}

# An optional dependency -> the extra that installs it (see pyproject.toml).
EXTRAS = {
    **dict.fromkeys(("aiohttp", "hdrh", "hdrhistogram", "psutil", "tqdm"), "bench"),
    **dict.fromkeys(
        (
            "pandas",
            "pyarrow",
            "altair",
            "vl_convert",
            "papermill",
            "ipykernel",
            "jupyterlab",
            "jupyter_client",
            "nbconvert",
            "nbformat",
            "libcachesim",
            "optuna",
            "sqlalchemy",
            "psycopg2",
        ),
        "studies",
    ),
    **dict.fromkeys(
        ("uvicorn", "starlette", "falcon", "blacksheep", "granian", "hypercorn", "gunicorn"),
        "peers",
    ),
    **dict.fromkeys(("watchfiles",), "dev"),
}
# What each command needs beyond the core install.
COMMAND_EXTRAS = {"bench": "bench", "study": "bench,studies", "tune": "bench,studies"}


class CLIError(ValueError):
    """A bad argument: printed as one line, exit status 2."""


def version_text() -> str:
    import platform

    from h3lab import __version__

    return (
        f"h3lab {__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions keep their line breaks (long lines wrapped, indented lines as they
    are); every option's default is shown, unless it says nothing."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out: list[str] = []
        for line in text.splitlines():
            if len(line) <= width or line.startswith(" "):
                out.append(indent + line)
            else:
                out += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent)
        return "\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, [], "")
            or default is argparse.SUPPRESS
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: {default})"


class Parser(argparse.ArgumentParser):
    """An argument error is one line (``h3lab serve: error: ...``), exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class DeprecatedAlias(argparse.Action):
    """An old option name that still works (hidden from --help) and says its new name."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        print(f"note: {option} is deprecated, use {self.new}", file=sys.stderr)
        if isinstance(getattr(namespace, self.dest, None), list):
            getattr(namespace, self.dest).append(values)
        else:
            setattr(namespace, self.dest, values)


def add_alias(parser: Any, old: str, new: str, dest: str) -> None:
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, help=argparse.SUPPRESS)


def missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The one-line advice for an optional dependency that is not installed."""
    top = (exc.name or "").split(".")[0]
    if top.startswith("h3lab") or not top:
        return None
    extra = EXTRAS.get(top) or COMMAND_EXTRAS.get(command)
    if extra is None:
        return None
    return f"{top} is not installed: this command needs pip install 'h3lab[{extra}]'"


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


def add_config_arguments(parser: Any) -> None:
    parser.add_argument(
        "--preset", choices=list(PRESETS), help="start from this preset (default: balanced)"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="a .toml or .json config file (h3lab tune writes them)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set cache.policy=lru (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="h3lab", description=DESCRIPTION)
    parser.add_argument(
        "--version", action="version", version=version_text(), help="print the version and exit"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    from h3lab.server.command import add_parser as add_serve

    add_serve(sub, HelpFormatter)
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


def _closed_pipe() -> int:
    # The reader went away (``h3lab study list | head``): stop quietly, as
    # coreutils do, and keep the interpreter from failing again when it
    # flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a killed writer


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _closed_pipe()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(
        str(part)
        for part in (
            args.command,
            getattr(args, "bench_command", None) or getattr(args, "study_command", None),
        )
        if part
    )
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except ModuleNotFoundError as exc:
        advice = missing_extra(exc, args.command)
        if advice is None:
            raise
        print(f"h3lab {command}: error: {advice}", file=sys.stderr)
        return 2
    except (CLIError, ValueError) as exc:
        print(f"h3lab {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from h3lab.server.core import ServeError

        if isinstance(exc, ServeError):
            print(f"h3lab {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    # Under ``python -m h3lab.cli`` this module runs as ``__main__``; call the
    # ``h3lab.cli`` module's main so suites raising ``h3lab.cli.CLIError`` are
    # caught by the same class.
    from h3lab.cli import main as cli_main

    sys.exit(cli_main())
