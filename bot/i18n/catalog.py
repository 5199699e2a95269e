"""Load the gettext catalogues and render messages by key.

Why gettext ``.po`` files with dotted keys as msgids instead of English source strings: the
texts are read at night on a phone by people under stress, so translators must be free to
rewrite a message completely without touching code, and a key such as ``ack.recorded`` stays
stable when the Swedish wording changes. ``.po`` keeps the files editable with ordinary tools.

Placeholders are ``str.format`` named fields (``{incident}``); the catalogue test checks that
every language uses the same set for every key, so a translation cannot drop or invent one.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("sv", "nb", "en")
DEFAULT_LANGUAGE = "sv"
CATALOGUE_DIR = Path(__file__).parent


def placeholders(template: str) -> set[str]:
    """The named fields of a ``str.format`` template, e.g. ``{"incident", "count"}``."""
    return {
        field.split(".")[0].split("[")[0]
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    }


class Catalog:
    """All messages of all languages, by key. Cheap to build; the app builds one."""

    def __init__(
        self, messages: Mapping[str, Mapping[str, str]], default: str = DEFAULT_LANGUAGE
    ) -> None:
        if default not in messages:
            raise ValueError(f"no catalogue for the default language {default!r}")
        self._messages = {lang: dict(texts) for lang, texts in messages.items()}
        self.default = default

    @classmethod
    def load(
        cls, directory: Path = CATALOGUE_DIR, languages: Iterable[str] = LANGUAGES
    ) -> Catalog:
        """Read ``<lang>.po`` for each language from ``directory``."""
        messages: dict[str, dict[str, str]] = {}
        for lang in languages:
            with (directory / f"{lang}.po").open("rb") as handle:
                po = read_po(handle, locale=lang)
            messages[lang] = {
                str(m.id): str(m.string) for m in po if m.id and isinstance(m.id, str)
            }
        return cls(messages)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._messages)

    def keys(self, lang: str) -> set[str]:
        return set(self._messages.get(lang, {}))

    def raw(self, lang: str, key: str) -> str | None:
        """The unformatted template, or None if ``lang`` lacks ``key``."""
        return self._messages.get(lang, {}).get(key)

    def text(self, lang: str, key: str, **params: Any) -> str:
        """The message ``key`` in ``lang`` (the default language if ``lang`` is unknown or
        lacks it), with ``params`` filled in.

        An unknown key is a bug in the code, not bad input, so it raises ``KeyError``; the
        catalogue tests make sure it cannot ship.
        """
        template = self.raw(lang, key) or self.raw(self.default, key)
        if not template:
            raise KeyError(f"no message {key!r} in the catalogue")
        return template.format(**params)
