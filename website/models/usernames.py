"""Usernames: the one rule every way of making an account obeys, and the canonical form that
makes look-alikes one name.

A username is stored as typed after NFKC normalisation (fullwidth "ａｌｉｃｅ" is "alice"). Its
canonical form, NFKC then case-folded, is unique among users (``users.username_canonical``)
and is what every look-up compares, so "Alice" is alice and cannot be a second account.
"""

import re
import unicodedata

MIN_LENGTH = 3


MAX_LENGTH = 40


#: fullmatch, not match with "$": "$" also matches before a final newline ("alice\n").
_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")


CHARACTERS_MESSAGE = "Use letters, digits, dots, dashes and underscores only."


LENGTH_MESSAGE = f"Use between {MIN_LENGTH} and {MAX_LENGTH} characters."


def normalize_username(value):
    """The username as stored: NFKC-normalised (non-strings pass through, for form filters)."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def canonical_username(value: str) -> str:
    """What makes two usernames the same: NFKC, case-folded (NFKC again, as folding can
    denormalise)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def username_problem(value: str) -> str | None:
    """Why the (normalised) username is not allowed, or None when it is."""
    if not MIN_LENGTH <= len(value) <= MAX_LENGTH:
        return LENGTH_MESSAGE
    if not _CHARACTERS.fullmatch(value):
        return CHARACTERS_MESSAGE
    return None
