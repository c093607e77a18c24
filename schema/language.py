"""Languages: a customer's language tag, and which of several texts a customer is given.

A language is a BCP 47 tag (`en`, `de`, `sl`, `de-AT`, `sr-Latn`), kept in one canonical
spelling (primary language lower case, a region upper case, a script title case), so `DE-at`
and `de-AT` are one language. Which text a customer gets (docs/greetings.md, "Languages"):
their own tag, then its primary language (`de-AT` -> `de`), then the chain's default
language and its primary language, then English; when none of those has a text, the first
text there is (by tag), so a message is never lost for want of a translation.

Pure: no I/O. Must never: refuse a stored tag it cannot read (a fact is never refused; an
unknown tag only falls back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

ENGLISH = "en"
MAX_TAG = 35
_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def language_tag(text: str) -> str:
    """`text` as a canonical language tag; ValueError when it is not one."""
    value = text.strip()
    if len(value) > MAX_TAG or not _TAG.fullmatch(value):
        raise ValueError(f"{text!r} is not a language tag")
    primary, *rest = value.split("-")
    parts = [primary.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())  # a region: AT
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())  # a script: Latn
        else:
            parts.append(part.lower())
    return "-".join(parts)


def _checked(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the field's own type check words it
    try:
        return language_tag(value)
    except ValueError:
        raise PydanticCustomError(
            "language_tag", "expected a language tag such as en, de, sl or de-AT") from None


# A language as a request or a master data document gives it: checked, stored canonical.
LanguageTag = Annotated[str, BeforeValidator(_checked),
                        WithJsonSchema({"type": "string", "maxLength": MAX_TAG,
                                        "pattern": f"^{_TAG.pattern}$",
                                        "examples": ["en", "de", "sl", "de-AT"]})]


def fallbacks(language: str | None, default: str | None) -> list[str]:
    """The tags to try, in order, for a customer of `language` in a chain whose default
    language is `default` (either may be missing or unreadable)."""
    order: list[str] = []
    for given in (language, default, ENGLISH):
        if not given:
            continue
        try:
            tag = language_tag(given)
        except ValueError:
            continue
        for candidate in (tag, tag.split("-")[0]):
            if candidate not in order:
                order.append(candidate)
    return order


def pick(texts: Mapping[str, str], language: str | None, default: str | None
         ) -> tuple[str, str] | None:
    """(tag, text) of the text to give: the first of `fallbacks` that `texts` has, else the
    first text by tag; None only when there is no text at all."""
    if not texts:
        return None
    for tag in fallbacks(language, default):
        if tag in texts:
            return tag, texts[tag]
    first = min(texts)
    return first, texts[first]
