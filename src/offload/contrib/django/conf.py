"""The `OFFLOAD` setting and the one offload App a Django project uses."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from offload.app import App
from offload.core.errors import _did_you_mean, shorten

#: The keys of `settings.OFFLOAD`, each with what it means.
SETTINGS = {
    "URL": "offload's database (default: the Django database named by DATABASE)",
    "DATABASE": "the Django database alias whose transactions enqueues join (default)",
    "AUTO_MIGRATE": "create or upgrade offload's tables at first use (default: True)",
    "PAYLOAD_LIMIT": "bytes of JSON a job's arguments may take",
}
#: The keys of a TASKS backend's entry, as Django's tasks framework reads them.
PARAMS = {
    "BACKEND": "the backend's import path",
    "QUEUES": "the queue names tasks may use",
    "OPTIONS": "offload's options for the backend (OPTIONS below)",
}
#: The keys of a TASKS backend's OPTIONS.
OPTIONS = {
    "max_attempts": "runs a job gets before it fails for good (default 1, as Django's)",
    "timeout": "seconds a run may take",
}

_lock = threading.Lock()
_app: App | None = None
_transactional: str | None = None
#: The Django alias whose database the App shares (its URL built from the settings).
_shared: str | None = None
#: The URL this module last pointed the App at. When the App's URL is another (a test
#: harness pointed it at its own database), the App is left where it is, and enqueues do
#: not join Django's transactions (they would store the job in Django's database).
_pointed: str | None = None


def may_see_dashboard(user: Any) -> bool:
    """Whether a signed-in Django user may use offload's dashboard (every page and action):
    Django admin's own rule, an active staff user (a deactivated one is refused even under
    a backend that lets inactive users sign in)."""
    return bool(user.is_active and user.is_staff)


def check_keys(given: object, known: dict[str, str], where: str) -> dict[str, Any]:
    """`given` as a dict, or an error naming the first key that is not one of `known`."""
    from django.core.exceptions import ImproperlyConfigured

    if not isinstance(given, dict):
        raise ImproperlyConfigured(f"{where} must be a dict, got {shorten(given)}")
    for key in given:
        if key not in known:
            hint = _did_you_mean(str(key), sorted(known), "keys")
            raise ImproperlyConfigured(f"{where} has no key {key!r}{hint}")
    return given


def offload_settings() -> dict[str, Any]:
    """`settings.OFFLOAD`, checked (an empty dict when unset)."""
    from django.conf import settings

    return check_keys(getattr(settings, "OFFLOAD", {}), SETTINGS, "settings.OFFLOAD")


def url_of(database: dict[str, Any]) -> str:
    """offload's URL for a Django database: the same SQLite file or PostgreSQL database."""
    from django.core.exceptions import ImproperlyConfigured

    engine = database.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        name = str(database.get("NAME", ""))
        if not name or name == ":memory:" or name.startswith("file:"):
            raise ImproperlyConfigured(
                "offload needs a SQLite database file it can open too: set NAME to a path, "
                "or settings.OFFLOAD['URL']"
            )
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        user = quote(str(database.get("USER") or ""), safe="")
        password = quote(str(database.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host, port = str(database.get("HOST") or ""), str(database.get("PORT") or "")
        name = quote(str(database.get("NAME") or ""), safe="")
        url = f"postgresql://{auth}{quote(host, safe='') if host.startswith('/') else host}"
        url += f":{port}/{name}" if port else f"/{name}"
        return url
    raise ImproperlyConfigured(
        f"offload cannot share the Django database engine {engine!r}: set "
        "settings.OFFLOAD['URL'] to a sqlite:/// or postgresql:// URL"
    )


def get_app() -> App:
    """The project's offload App, built once from the settings. When it shares a Django
    database and that alias now points elsewhere (the test runner's test database), the
    App follows it, so that jobs never land in the database the tests replaced."""
    global _app, _transactional, _shared, _pointed
    with _lock:
        if _app is not None and _shared is not None and _app.url == _pointed:
            from django.db import connections

            current = url_of(connections[_shared].settings_dict)
            if current != _app.url:
                _app._use(current)
                _app.ready()  # now: inside a transaction, its tables could wait on a lock
                _pointed = _app.url
        if _app is None:
            from django.conf import settings

            given = offload_settings()
            alias = given.get("DATABASE", "default")
            if alias not in settings.DATABASES:
                hint = _did_you_mean(str(alias), sorted(settings.DATABASES), "databases")
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(f"settings.OFFLOAD['DATABASE'] {alias!r}{hint}")
            url = given.get("URL")
            # Enqueues join Django's transactions when offload uses Django's database: by
            # default, or when the settings name the alias whose database URL points to.
            if url is None or "DATABASE" in given:
                _transactional = alias
            if url is None:
                url = url_of(settings.DATABASES[alias])
                _shared = alias
            options: dict[str, Any] = {"auto_migrate": given.get("AUTO_MIGRATE", True)}
            if "PAYLOAD_LIMIT" in given:
                options["payload_limit"] = given["PAYLOAD_LIMIT"]
            app = App(url, **options)
            _pointed = app.url
            # Now, at the first task's declaration: an enqueue inside a transaction must not
            # be the first use, which may create offload's tables (on SQLite, from a second
            # connection that would wait for the transaction's lock).
            app.ready()
            _app = app
        return _app


def release() -> None:
    """Close offload's connections (they reopen at next use): call it before the test
    runner drops its test databases, which PostgreSQL refuses while a session is open."""
    with _lock:
        if _app is not None:
            _app._use(_app.url)


def transactional_alias() -> str | None:
    """The Django database alias whose transactions enqueues join, if any: none while
    the App is pointed elsewhere than this module put it (a test harness's database)."""
    app = get_app()
    return _transactional if app.url == _pointed else None


def reset() -> None:
    """Forget the App (tests that change the settings)."""
    global _app, _transactional, _shared, _pointed
    with _lock:
        if _app is not None:
            _app.close()
        _app, _transactional, _shared, _pointed = None, None, None, None
