"""`erasure plugins`: which architectures, methods and kinds of model are installed, and from where."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli.common import console


def plugins_list() -> None:
    """Every installed plug-in (entry point groups erasure.architectures, erasure.methods, erasure.kinds) and the
    package it comes from; a plug-in that fails to load is listed with its error. Exits 1 if any is broken."""
    from unlearning import plugins

    table = Table("group", "name", "from", "state")
    broken = 0
    for group in plugins.GROUPS:
        loaded = plugins.load_group(group)
        for plugin in loaded.loaded.values():
            table.add_row(group.removeprefix("erasure."), plugin.name, escape(plugin.source), "[green]ok[/]")
        for failure in loaded.broken.values():
            broken += 1
            table.add_row(group.removeprefix("erasure."), failure.name, escape(failure.source), f"[red]broken[/]: {escape(failure.error)}")
    console.print(table)
    raise typer.Exit(1 if broken else 0)
