"""Message catalogues: every word a user reads comes from here, in sv, nb or en."""

from bot.i18n.catalog import DEFAULT_LANGUAGE, LANGUAGES, Catalog, placeholders

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Catalog", "placeholders"]
