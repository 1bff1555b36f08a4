"""JSON response encoders: the ``response.json`` strategy family.

``stdlib``
    CPython's ``json`` C encoder, built once (``response.json_encode``):
    compact separators, UTF-8 (no ``\\u`` escapes), ``to_json()``, sets and
    tuples through ``default``.

``orjson``
    orjson (the optional extra ``h3lab[fast]``): about 8x less time than
    ``stdlib`` for a small dict and 12-16x for kilobyte payloads (measured on
    the development VM). The ``performance`` preset uses it when it is
    importable, else ``stdlib``
    (``Config.label`` and ``app.stats()["json"]`` say so).

Both give the same bytes for the same value, except where noted below; the
tests (``tests/test_json_encoding.py``) pin every case down over both:

* ``dict`` keys that are not ``str`` (int, float, bool, None): both turn
  them into strings the same way (``{1: "a"}`` -> ``{"1":"a"}``).
* integers beyond 64 bits, nesting deeper than orjson's 254 levels: orjson
  refuses them, so ``orjson`` falls back to ``stdlib`` for that value: both
  encode them. A value neither can encode (a cycle, an unknown type) raises
  (``TypeError``/``ValueError``/``RecursionError``), which the app answers
  with a 500 -- never a hang.
* ``datetime``/``date``/``time`` and dataclass instances are refused by
  both (a 500) unless they have ``to_json()``: orjson's native encodings are
  switched off (``OPT_PASSTHROUGH_*``) so that switching encoders never
  changes what a handler may return. ``uuid.UUID`` (its string) and
  ``enum.Enum`` (its value) are encoded by both.
* **Differences** (documented, not hidden): NaN and +/-Infinity are written
  ``NaN``/``Infinity`` by ``stdlib`` (Python's, not valid JSON) and ``null``
  by ``orjson``; a negative exponent is spelled ``1e-07`` by ``stdlib`` and
  ``1e-7`` by ``orjson`` (the same number; positive ones agree: ``1e+16``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from h3lab.registry import Registry, registry
from h3lab.response import json_encode

if TYPE_CHECKING:
    from h3lab.config import ResponseConfig

JSON_ENCODERS: Registry[type[JsonEncoder]] = registry("response.json")

try:
    import orjson
except ImportError:  # the optional extra h3lab[fast] is not installed
    orjson = None  # type: ignore[assignment]  # None marks the optional module absent

ORJSON_AVAILABLE = orjson is not None


class JsonEncoder(Protocol):
    name: ClassVar[str]

    def encode(self, value: Any) -> bytes:
        """``value`` as UTF-8 JSON; raises on a value that cannot be encoded."""

    def stats(self) -> dict[str, Any]: ...

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker): none for an encoder."""


@JSON_ENCODERS.register
class StdlibJson:
    """The standard library's C encoder, built once."""

    name: ClassVar[str] = "stdlib"

    def encode(self, value: Any) -> bytes:
        return json_encode(value).encode()

    def stats(self) -> dict[str, Any]:
        return {"encoder": self.name}

    def tick(self, now: float) -> None:
        """Nothing periodic."""


def _orjson_default(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@JSON_ENCODERS.register
class OrjsonJson:
    """orjson, with the standard library for the values orjson refuses."""

    name: ClassVar[str] = "orjson"

    def __init__(self) -> None:
        if orjson is None:
            raise ValueError(
                "response.json 'orjson' needs the orjson package (pip install 'h3lab[fast]'); "
                "use response.json='stdlib'"
            )
        self.fallbacks = 0
        str_keys = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        options = str_keys | orjson.OPT_NON_STR_KEYS
        dumps = orjson.dumps
        encode_error = orjson.JSONEncodeError

        def encode(value: Any) -> bytes:
            try:
                # PERF: first without OPT_NON_STR_KEYS, which costs ~0.15 us
                # per call even when every key is a str (it gives the same
                # bytes then). A non-str key makes orjson refuse the value,
                # and it is encoded again with the option (a ``to_json`` met
                # before that key is then called twice).
                return dumps(value, _orjson_default, str_keys)
            except encode_error:
                pass
            try:
                return dumps(value, _orjson_default, options)
            except encode_error:
                # Beyond 64-bit ints, deeper than 254 levels, a cycle, or what
                # default refused: the stdlib encoder decides (it raises too
                # for a cycle or an unknown type).
                self.fallbacks += 1
                return json_encode(value).encode()

        self.encode = encode  # type: ignore[method-assign]  # PERF: no bound-method hop

    def encode(self, value: Any) -> bytes:  # replaced per instance in __init__
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {"encoder": self.name, "fallbacks_to_stdlib": self.fallbacks}

    def tick(self, now: float) -> None:
        """Nothing periodic."""


def default_json_encoder() -> str:
    """What the ``performance`` preset uses: ``orjson`` when importable, else ``stdlib``."""
    return "orjson" if ORJSON_AVAILABLE else "stdlib"


def make_json_encoder(response: ResponseConfig) -> JsonEncoder:
    """The encoder ``response.json`` names."""
    return JSON_ENCODERS.get(response.json)()


__all__ = [
    "JSON_ENCODERS",
    "ORJSON_AVAILABLE",
    "JsonEncoder",
    "OrjsonJson",
    "StdlibJson",
    "default_json_encoder",
    "make_json_encoder",
]
