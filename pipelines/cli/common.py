"""What every command group shares: the console, the default params file, entering the numerics, and a cold
command's start (Prefect's server booting beside the imports, the cyclic GC paused while they run)."""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


@contextmanager
def sparing_the_gc() -> Iterator[Callable[[], None]]:
    """Spare a cold command the cyclic GC's passes over what it imports; yields what to call once imported.

    A flow run's imports make ~0.5M long-lived objects and next to no garbage, yet trigger full collections
    over all of them (~2 s of a cold `request run` on two cores) and the exit's (~2-3 s). So the GC is paused
    while importing, what was imported is frozen until the block ends (later collections skip it), and the
    process's exit freezes what is left instead of collecting it. Nothing stays frozen after the block.
    """
    global _FREEZE_AT_EXIT
    if not _FREEZE_AT_EXIT:
        atexit.register(gc.freeze)
        _FREEZE_AT_EXIT = True
    gc.disable()

    def imported() -> None:
        gc.enable()
        gc.freeze()

    try:
        yield imported
    finally:
        gc.enable()
        gc.unfreeze()


_FREEZE_AT_EXIT = False


def start_prefect_server() -> Callable[[], None]:
    """Start Prefect's ephemeral API server now, beside this process's work; returns what waits until it is up.

    With no PREFECT_API_URL, a process's first flow run starts a temporary Prefect server in a subprocess
    and waits for it (~5 s on two busy cores). Started here, it boots while this process imports the flow.
    It is Prefect's own start (same server, settings, and stop at exit); if it fails here, the flow's first
    call starts it again and reports why.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None
    # Imported here, not in the thread: two threads importing the same packages can deadlock on their locks.
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        try:
            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001, S110 - not started: the flow's own start tries again and raises
            pass

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()
    return thread.join
