"""A study notebook's parameters: the cell tagged ``parameters`` (read with
papermill), and ``-p key value`` texts typed and checked against it before
any kernel starts.

``run_id`` and ``out_dir`` are the runner's (``RESERVED_PARAMETERS``): the
contract between the runner and a notebook is in ``h3lab.studies.runner``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from h3lab.studies.registry import Study

RESERVED_PARAMETERS = ("run_id", "out_dir")


def notebook_parameters(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{name: {"default": text, "type": name, "help": text}}`` of the ``parameters`` cell."""
    import tempfile

    import nbformat
    import papermill as pm

    nb = nbformat.read(str(path), as_version=4)
    if nb.metadata.get("kernelspec", {}).get("name"):
        inspected = pm.inspect_notebook(str(path))
    else:
        # papermill needs a kernel name to pick the parameter parser; the runner
        # passes one at execution, so a notebook without kernelspec is fine.
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "language": "python",
            "display_name": "Python 3",
        }
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / Path(path).name
            nbformat.write(nb, str(copy))
            inspected = pm.inspect_notebook(str(copy))
    return {
        name: {
            "default": info.get("default"),
            "type": info.get("inferred_type_name"),
            "help": info.get("help", ""),
        }
        for name, info in inspected.items()
    }


def coerce(raw: Any, default_text: str | None) -> Any:
    """A ``-p key value`` text turned into the type of the parameter's default.

    ``"20"`` -> 20 for an int default, ``"true"`` -> True for a bool, a Python or
    JSON literal for lists/dicts/None defaults; non-text values pass unchanged.
    """
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        default = ast.literal_eval(default_text) if default_text is not None else None
    except (ValueError, SyntaxError):
        default = None  # an expression default: fall back to literal parsing below
    if isinstance(default, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    if isinstance(default, str):
        return text
    for parse in (ast.literal_eval, json.loads):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError):
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(default, int | float) and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ValueError(f"expected a number like the default {default!r}, got {raw!r}")
        return value
    if text.lower() in ("none", "null"):
        return None
    if isinstance(default, int | float):
        raise ValueError(f"expected a number, got {raw!r}")
    return text  # a bare word for a None/list default: a string


_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
}


def _split_type(type_name: str) -> tuple[str, bool]:
    """``Optional[list[int]]`` -> (``list[int]``, True)."""
    text = type_name.replace(" ", "")
    optional = False
    if text.startswith("Optional[") and text.endswith("]"):
        text, optional = text[len("Optional[") : -1], True
    return text, optional


def check_type(value: Any, type_name: str | None) -> Any:
    """``value`` checked against a parameter's declared type (``int``, ``float``,
    ``bool``, ``str``, ``list``, ``list[int]``, ``dict``, ``Optional[...]``);
    an undeclared or unknown type accepts anything. Returns the value (ints
    widened to float for ``float``); raises ``ValueError`` naming the type."""
    if not type_name or type_name == "None":
        return value
    base, optional = _split_type(type_name)
    if value is None:
        if optional:
            return None
        raise ValueError(f"expected {type_name}, got None")
    inner = None
    if base.startswith("list[") and base.endswith("]"):
        base, inner = "list", base[len("list[") : -1]
    allowed = _SCALARS.get(base)
    if allowed is None:
        return value  # a type this check does not know: papermill passes it through
    if isinstance(value, bool) and base in ("int", "float"):
        raise ValueError(f"expected {type_name}, got {value!r}")
    if not isinstance(value, allowed):
        raise ValueError(f"expected {type_name}, got {value!r}")
    # The isinstance checks only restate what _SCALARS just allowed, for the type checker.
    if base == "float" and isinstance(value, int | float):
        return float(value)
    if inner is not None and isinstance(value, list):
        return [check_type(item, inner) for item in value]
    return value


def resolve_parameters(study: Study, given: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against the notebook's parameters cell and type the values.

    A value is typed like the parameter's default, and checked against the
    parameter's declared type when the cell declares one -- either as a
    string annotation ``routes: "Optional[int]" = None  # help`` or as a type
    comment ``routes = None  # type: Optional[int] help`` (papermill's syntax;
    a bare ``int | None`` annotation is not understood by papermill). So
    ``-p routes abc`` fails here, as one line, before any kernel starts.
    """
    known = notebook_parameters(study.path)
    out: dict[str, Any] = {}
    for key, raw in given.items():
        if key in RESERVED_PARAMETERS:
            raise ValueError(f"{key} is set by the runner, not by -p")
        if key not in known:
            names = ", ".join(n for n in known if n not in RESERVED_PARAMETERS)
            raise ValueError(f"{study.slug} has no parameter {key!r}; its parameters: {names}")
        try:
            out[key] = check_type(coerce(raw, known[key]["default"]), known[key]["type"])
        except ValueError as exc:
            raise ValueError(f"parameter {key}: {exc}") from None
    return out
