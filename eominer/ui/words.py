"""Counted words for what the views say ("1 round", "2 rounds")."""

from __future__ import annotations


def plural(n: int, word: str) -> str:
    """`word` as it follows the number `n`: plural(1, "round") == "round"."""
    return word if n == 1 else f"{word}s"
