"""What every command group shares: the console, the default params file, and entering the numerics."""

from __future__ import annotations

from rich.console import Console

from pipelines.adapters.settings import PROJECT_ROOT

console = Console()
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


def enter_numerics(mode: str) -> None:
    """Run the rest of this command in reproducible CPU numerics, unless `mode` is native or a GPU will do the work."""
    from unlearning import numerics
    from unlearning.device import best_device

    if mode != "native" and best_device().type == "cpu":
        enter(numerics.REPRODUCIBLE, "native numerics[/] (results are this machine's own)")


def enter(wanted, fallback: str) -> None:
    """Enter `wanted` numerics (restarting this command once if it was not started in them); a CPU that cannot
    run them is said with `fallback`, not fatal."""
    from unlearning import numerics

    try:
        numerics.enter(wanted)
    except numerics.NumericsUnavailable as error:
        console.print(f"[yellow]{fallback}: {error}")
