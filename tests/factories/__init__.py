"""Test factories: well-formed model objects with fresh identifiers (see metadata.py)."""
