"""Benchmarks. ``python -m bench`` runs them all; each figure prints as one line:
``BENCH <name> <value> <unit> bar=<bar> ok|SHORT``."""
