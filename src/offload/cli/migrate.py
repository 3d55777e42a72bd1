"""`offload migrate`: bring the database schema up to date."""

from __future__ import annotations

import click

from offload.cli.context import AppLoader


@click.command()
@click.pass_obj
def migrate(loader: AppLoader) -> None:
    """Apply pending schema migrations and print the version reached."""
    app = loader.app()
    version = app.migrate()
    click.echo(f"{app.backend.location}: schema version {version}")
