"""Translate mode: SV1 miners onto a Stratum V2 pool (sans-I/O core; see core.py)."""

from stratum_proxy.translate.core import Translator

__all__ = ["Translator"]
