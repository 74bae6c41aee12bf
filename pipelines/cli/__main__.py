"""`python -m pipelines.cli`: the `erasure` command."""

from pipelines.cli import app

app()
