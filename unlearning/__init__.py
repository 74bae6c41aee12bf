"""Erasure's science: machine unlearning in plain PyTorch.

Nothing in this package knows about MLflow, Prefect, DVC or Great Expectations; `pipelines/`
composes it with those tools.
"""
