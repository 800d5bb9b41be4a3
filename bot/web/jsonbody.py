"""Read a JSON request body without ever failing with a 500: nesting and lone surrogates are bounded.

Python's json module parses ``[[[[...`` until the interpreter's recursion limit (a RecursionError,
not a ValueError) and accepts ``"\\ud800"``, a string SQLite cannot store. Both end here as a
BodyError (a ValueError), which the routes answer with 400, before anything is stored.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # Telegram's and Meta's updates nest about 10 deep; nothing real nests 64


class BodyError(ValueError):
    """The body is not JSON the service takes."""


def loads(raw: bytes | str, replace_surrogates: bool = False) -> Any:
    """Parse JSON; nested deeper than MAX_DEPTH raises BodyError, lone surrogates too unless replaced (U+FFFD)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BodyError("JSON nested too deeply") from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise BodyError(f"not valid JSON: {err}") from None
    return _checked(value, replace_surrogates)


def _clean(text: str, replace: bool) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        if not replace:
            raise BodyError("a string holds a lone surrogate (not valid Unicode)") from None
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _checked(value: Any, replace: bool) -> Any:
    """Walk the parsed value without recursion: enforce MAX_DEPTH and clean every string."""
    root: list[Any] = [value]
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BodyError("JSON nested too deeply")
        if isinstance(container, list):
            items = enumerate(container)
        else:
            items = list(container.items())
            for key, _ in items:
                if isinstance(key, str) and _clean(key, replace) is not key:
                    container[_clean(key, replace)] = container.pop(key)
            items = container.items()
        for key, item in list(items):
            if isinstance(item, str):
                container[key] = _clean(item, replace)
            elif isinstance(item, (list, dict)):
                stack.append((item, depth + 1))
    return root[0]
