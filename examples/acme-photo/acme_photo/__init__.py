"""Acme's photo restorer: the model, its image folders in a DVC repository of its own, its training script."""
