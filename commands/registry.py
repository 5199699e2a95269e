"""The set of implemented commands, looked up by any of their names in any language.

Built by :func:`build_registry` (no module-level instance): the help lists exactly what is in
here, so a command that is not implemented cannot be advertised.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence

from commands.declaration import Declaration
from commands.declarations import declarations
from commands.text import fold


class Registry:
    def __init__(self, declarations: Sequence[Declaration]) -> None:
        self._declarations = tuple(declarations)
        self._by_key = {d.key: d for d in self._declarations}
        self._by_name: dict[str, Declaration] = {}
        for declaration in self._declarations:
            for name in declaration.names.all():
                folded = fold(name)
                other = self._by_name.get(folded)
                if other is not None and other is not declaration:
                    raise ValueError(f"command name {name!r} is used by {other.key} too")
                self._by_name[folded] = declaration
        if len(self._by_key) != len(self._declarations):
            raise ValueError("two commands share a key")

    def __iter__(self) -> Iterator[Declaration]:
        return iter(self._declarations)

    def __len__(self) -> int:
        return len(self._declarations)

    def get(self, key: str) -> Declaration:
        return self._by_key[key]

    def find(self, name: str) -> Declaration | None:
        """The command called ``name`` in any language, ignoring case and diacritics."""
        return self._by_name.get(fold(name.removeprefix("!")))

    def language_of(self, name: str) -> str | None:
        """The language whose name for the command is ``name``, when only one language calls it
        that: ``!help`` is English, ``!hjelp`` Norwegian, ``!status`` none in particular.

        Someone who types a command in a language wants the answer in it, whatever the room's
        configured language; a name every language shares says nothing, and the room decides.
        """
        declaration = self.find(name)
        if declaration is None:
            return None
        folded = fold(name.removeprefix("!"))
        langs = [
            lang
            for lang in ("sv", "nb", "en")
            if fold(declaration.names.in_language(lang)) == folded
        ]
        return langs[0] if len(langs) == 1 else None

    def closest(self, name: str) -> Declaration | None:
        """The command whose name is most like ``name``, if any is reasonably close."""
        matches = difflib.get_close_matches(
            fold(name.removeprefix("!")), list(self._by_name), n=1, cutoff=0.5
        )
        return self._by_name[matches[0]] if matches else None

    def display(self, key: str, lang: str) -> str:
        """``!kvittera`` in a Swedish room, ``!ack`` in an English one."""
        return "!" + self._by_key[key].names.in_language(lang)


def build_registry() -> Registry:
    """Every implemented command, in the order the help lists them."""
    return Registry(declarations())
