"""The `erasure` command, one module per command group: `request` (and `inbox`, `serve`), `audit`, `data`,
`model`, `servers`, `plugins`. Each group imports its tools on use, so `erasure --help` starts in a fraction of a second.
"""

import typer

from pipelines.cli.audit import audit_app
from pipelines.cli.data import data_app
from pipelines.cli.model import model_app
from pipelines.cli.plugins import plugins_list
from pipelines.cli.request import inbox_app, request_app, serve
from pipelines.cli.servers import servers_app

app = typer.Typer(help="Erasure: verified, audited machine unlearning for deletion requests.", no_args_is_help=True)
for sub_app, name in (
    (data_app, "data"),
    (model_app, "model"),
    (request_app, "request"),
    (inbox_app, "inbox"),
    (audit_app, "audit"),
    (servers_app, "servers"),
):
    app.add_typer(sub_app, name=name)
app.command("serve")(serve)
app.command("plugins")(plugins_list)
