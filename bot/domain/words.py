"""The forgiving comparison of words people type on phones at night.

``!lagesbild`` must match ``!lägesbild``, ``PLATS=`` must match ``plats=`` and ``sted=`` typed on a
Swedish keyboard as ``sted=`` still means the Norwegian field. Folding is applied to names and
enumerated words (command names, readiness levels, report field names), never to free text,
which is kept as typed. It lives in the domain because the situation report's template matches
field names with it; the command layer uses the same function.
"""

from __future__ import annotations

import unicodedata

# Letters that do not decompose into a base letter and a combining mark.
_NO_DECOMPOSITION = str.maketrans({"ø": "o", "æ": "ae", "ß": "ss", "đ": "d", "ł": "l"})


def fold(word: str) -> str:
    """Case- and diacritic-insensitive form: ``Förstärkningsläge`` → ``forstarkningslage``."""
    lowered = word.casefold().translate(_NO_DECOMPOSITION)
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))
