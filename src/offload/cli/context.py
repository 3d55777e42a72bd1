"""The App a command works on, loaded from `--app` on first use and closed at exit."""

from __future__ import annotations

import click

from offload.app import App
from offload.core.errors import ConfigurationError
from offload.runtime.loader import load_app


class AppLoader:
    """The global options: the `--app` locator, and whether failures show a full traceback.

    Commands that need the App call `app()`; the entry point reads `traceback` when a
    command fails.
    """

    def __init__(self, path: str | None = None, *, traceback: bool = False) -> None:
        self.path = path
        self.traceback = traceback
        self._app: App | None = None

    def app(self) -> App:
        """Import the App (once) and close its connections when the command ends."""
        if self._app is None:
            if not self.path:
                raise ConfigurationError("no app given: pass --app MODULE:ATTR or set OFFLOAD_APP")
            loaded = load_app(self.path)
            if not isinstance(loaded, App):
                raise ConfigurationError(f"{self.path!r} is a {type(loaded).__name__}, not an App")
            self._app = loaded
            click.get_current_context().call_on_close(loaded.close)
        return self._app
