"""Deterministic data: clean images shipped in packages, degradations synthesised from a seed."""
