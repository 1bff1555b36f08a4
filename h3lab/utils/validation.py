"""Validated input: h3's ``readValidatedBody``, ``getValidatedQuery``, ``getValidatedRouterParams``.

::

    class NewItem(pydantic.BaseModel):
        name: str
        price: float

    @app.post("/items")
    async def create(event):
        item = await read_validated_body(event, NewItem)   # a NewItem
        page = get_validated_query(event, parse_page)       # any callable
        ...

A *validator* is either

* a pydantic model class (anything with ``model_validate``) or a pydantic
  ``TypeAdapter`` (anything with ``validate_python``): the result is what
  pydantic returns; or
* any callable ``validator(data)`` that returns the validated value or raises
  ``ValueError`` / ``TypeError`` (pydantic's ``ValidationError`` is a
  ``ValueError``). As in h3, returning ``False`` rejects the input, and
  returning ``True`` or ``None`` accepts it unchanged. To name the failing
  fields, raise ``InvalidInput(limit="must be an int in 1..100", ...)``.

Invalid input raises ``HTTPError(400, "Validation failed", data)`` before the
handler goes on, where ``data = {"source": "body"|"query"|"params",
"issues": [{"field": ..., "path": [...], "message": ..., "type": ...}]}`` lists
every failing field (``field`` is the dotted path, None when the failure is
about the input as a whole). The offending values are not echoed back.

pydantic is optional (``pip install h3lab[validation]``) and never imported
here: a model is recognised by its methods, so plain callables work without
it. Exceptions other than ``ValueError``/``TypeError`` are bugs in the
validator and propagate (a 500), like any other handler error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from h3lab.errors import HTTPError

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = [
    "InvalidInput",
    "get_validated_params",
    "get_validated_query",
    "read_validated_body",
    "validate_data",
]

Validator = Callable[[Any], Any] | type

VALIDATION_FAILED = "Validation failed"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class InvalidInput(ValueError):
    """Raised by a callable validator to say which fields failed and why.

    ``InvalidInput(limit="must be an int", offset="must be >= 0")``; a first
    positional message describes the input as a whole.
    """

    def __init__(self, message: str | None = None, /, **fields: str) -> None:
        self.fields = fields
        self.message = message
        super().__init__(message or "; ".join(f"{k}: {v}" for k, v in fields.items()))


def validate_data(data: Any, validator: Validator, source: str = "input") -> Any:
    """Run ``validator`` on ``data``: the validated value, or a 400 ``HTTPError``."""
    result = _call(data, validator, source)
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # never awaited: silence "coroutine was never awaited"
        raise TypeError(
            f"the {source} validator is async; only read_validated_body accepts async validators"
        )
    return _accept(data, result, source)


def _call(data: Any, validator: Validator, source: str) -> Any:
    run = getattr(validator, "model_validate", None)  # a pydantic model class
    if run is None:
        run = getattr(validator, "validate_python", None)  # a pydantic TypeAdapter
    if run is None:
        if not callable(validator):
            raise TypeError(
                f"a validator must be a pydantic model or a callable, got {validator!r}"
            )
        run = validator
    try:
        return run(data)
    except (ValueError, TypeError) as exc:
        raise _validation_error(exc, source) from exc


async def _call_async(data: Any, validator: Validator, source: str) -> Any:
    result = _call(data, validator, source)
    if inspect.isawaitable(result):
        try:
            result = await result
        except (ValueError, TypeError) as exc:
            raise _validation_error(exc, source) from exc
    return _accept(data, result, source)


def _accept(data: Any, result: Any, source: str) -> Any:
    if result is False:
        raise HTTPError(
            400,
            VALIDATION_FAILED,
            {"source": source, "issues": [_issue(None, [], "invalid input", "invalid")]},
        )
    if result is True or result is None:
        return data
    return result


def _issue(field: str | None, path: list[Any], message: str, kind: str) -> dict[str, Any]:
    return {"field": field, "path": path, "message": message, "type": kind}


def _validation_error(exc: BaseException, source: str) -> HTTPError:
    errors = getattr(exc, "errors", None)
    issues: list[dict[str, Any]] = []
    if isinstance(exc, InvalidInput):
        if exc.message:
            issues.append(_issue(None, [], exc.message, "invalid"))
        for field, message in exc.fields.items():
            issues.append(_issue(field, [field], str(message), "invalid"))
    elif callable(errors):  # pydantic's ValidationError
        try:
            # include_input=False: the client's own (possibly huge or secret)
            # value is not reflected back in the error body.
            details = errors(include_url=False, include_input=False, include_context=False)
        except TypeError:
            details = errors()
        for detail in details:
            path = list(detail.get("loc", ()))
            dotted = ".".join(str(part) for part in path) or None
            issues.append(
                _issue(dotted, path, str(detail.get("msg", "")), str(detail.get("type", "")))
            )
    if not issues:
        issues.append(_issue(None, [], str(exc) or type(exc).__name__, type(exc).__name__))
    return HTTPError(400, VALIDATION_FAILED, {"source": source, "issues": issues}, cause=exc)


async def _body_data(event: H3Event) -> Any:
    content_type = (event.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type in _FORM_TYPES:
        form = await event.form()
        return {
            name: values[0] if len(values) == 1 else values
            for name, values in _form_items(form).items()
        }
    return await event.json()  # 400 "Invalid JSON body" for an empty or broken body


def _form_items(form: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for name, value in form.items_all():
        grouped.setdefault(name, []).append(value)
    return grouped


async def read_validated_body(event: H3Event, validator: Validator) -> Any:
    """The body (JSON, or a form when the content-type says so) validated by ``validator``.

    A repeated form field becomes a list; uploaded files are ``UploadFile``
    objects. The validator may be async here.
    """
    data = await _body_data(event)
    return await _call_async(data, validator, "body")


def get_validated_query(event: H3Event, validator: Validator) -> Any:
    """The query string as a dict (a repeated key becomes a list) validated by ``validator``."""
    grouped: dict[str, list[str]] = {}
    for name, value in event.query.items_all():
        grouped.setdefault(name, []).append(value)
    data = {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}
    return validate_data(data, validator, "query")


def get_validated_params(event: H3Event, validator: Validator) -> Any:
    """The route parameters (``event.params``) validated by ``validator``."""
    return validate_data(dict(event.params), validator, "params")
