"""limo-ray: the LIMO recipe (curate -> SFT -> serve/evaluate) as a Ray application."""

__version__ = "0.1.0"
