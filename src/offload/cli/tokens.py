"""`offload tokens`: create, list and revoke the API tokens of the HTTP API, through the App."""

from __future__ import annotations

import click

from offload.cli.context import AppLoader
from offload.cli.output import console, new_table, print_json, when
from offload.core.tokens import Scope, scopes_text


@click.group(short_help="API tokens of the HTTP API: create, list, revoke.")
def tokens() -> None:
    """Manage the bearer tokens the HTTP API accepts.

    Only a token's hash is stored, so every API replica on the same database accepts it
    and nobody can read it back: keep it when `create` prints it.
    """


@tokens.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    required=True,
    metavar="SCOPE[,SCOPE...]",
    help=f"What the token may do, from {', '.join(Scope)} (admin allows all).",
)
@click.pass_obj
def tokens_create(loader: AppLoader, name: str, scopes: str) -> None:
    """Create token NAME and print it, the only time it is shown.

    Only its hash is stored: keep the token in a secret store of your own.
    """
    click.echo(loader.app().create_token(name, scopes))


@tokens.command("list")
@click.option("--json", is_flag=True, help="Print the tokens as JSON.")
@click.pass_obj
def tokens_list(loader: AppLoader, json: bool) -> None:
    """List the tokens, never showing one.

    Each token's name, scopes, when it was created and when it was last used (recorded
    at most once a minute).
    """
    found = loader.app().tokens()
    if json:
        print_json(
            [
                {
                    "name": t.name,
                    "scopes": scopes_text(t.scopes).split(","),
                    "created_at": t.created_at.isoformat(),
                    "last_used_at": None if t.last_used_at is None else t.last_used_at.isoformat(),
                }
                for t in found
            ]
        )
        return
    if not found:
        click.echo("no tokens")
        return
    out = new_table()
    for column in ("name", "scopes", "created", "last used"):
        out.add_column(column)
    for t in found:
        out.add_row(t.name, scopes_text(t.scopes), when(t.created_at), when(t.last_used_at))
    console.print(out)


@tokens.command("revoke")
@click.argument("name")
@click.pass_obj
def tokens_revoke(loader: AppLoader, name: str) -> None:
    """Revoke token NAME.

    Every API replica refuses it from its next request; the name can be used again.
    """
    loader.app().revoke_token(name)
    click.echo(f"{name}: revoked")
