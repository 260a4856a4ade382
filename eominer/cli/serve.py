"""`eominer serve`: the mining app in the browser."""

from __future__ import annotations

import errno
from pathlib import Path

import click

from eominer.cli import db_option

# why the server's socket could not be bound, and what to do
BIND_HINTS = {
    errno.EADDRINUSE: "another program uses this port (another eominer serve?): choose "
                      "another with --port N, or stop the one that holds it",
    errno.EADDRNOTAVAIL: "this machine has no such address: --address 127.0.0.1 (this "
                         "machine only), or 0.0.0.0 (every interface; with a log-in, "
                         "--basic-auth or --oauth-provider)",
    errno.EACCES: "ports below 1024 need administrator rights: choose --port 1024 or above",
}


def exposure_warning(address: str, login: bool) -> str | None:
    """What to say when the app listens beyond this machine with no log-in: whoever
    reaches the port labels under the server's user and runs SQL on the database."""
    import ipaddress

    if login:
        return None
    try:
        local = ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: local only if it is localhost
        local = address == "localhost"
    if local:
        return None
    return (f"warning: the app listens on {address} without a log-in: anyone who reaches "
            "this port labels as this server's user and runs SQL on the database. Add "
            "--basic-auth FILE or --oauth-provider NAME, or use --address 127.0.0.1 behind "
            "a reverse proxy that logs users in.")


@click.command()
@db_option
@click.option("--port", default=5006, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to bind (127.0.0.1: this machine only).")
@click.option("--basic-auth", "basic_auth", default=None, metavar="FILE",
              type=click.Path(dir_okay=False),
              help='JSON file {"user": "password", ...}: users log in; labels carry their name.')
@click.option("--oauth-provider", default=None, metavar="NAME",
              help="Panel OAuth provider: generic (any OIDC server, e.g. Keycloak), "
                   "github, gitlab, google, azure, okta... See docs/app.md.")
@click.option("--oauth-key", default=None, help="OAuth client id.")
@click.option("--oauth-secret", default=None, help="OAuth client secret.")
@click.option("--oauth-redirect-uri", default=None, help="This app's public URL.")
@click.option("--oauth-extra-params", default=None, metavar="JSON",
              help='Provider endpoints, e.g. {"AUTHORIZE_URL": ..., "TOKEN_URL": ..., '
                   '"USER_URL": ..., "USER_KEY": "preferred_username"}.')
@click.option("--oauth-encryption-key", default=None,
              help="Fernet key that encrypts OAuth tokens in the cookies.")
@click.option("--cookie-secret", default=None,
              help="Secret that signs login cookies (default: a new random one per start).")
@click.option("--show/--no-show", default=True, show_default=True,
              help="Open the app in a web browser.")
@click.option("--basemap", default=None, metavar="URL",
              help="XYZ tile URL of a basemap under the products, e.g. "
                   "http://tiles.example.org/{z}/{x}/{y}.png (default: $EOMINER_BASEMAP_URL; "
                   "none: no tile is ever requested).")
def serve(db: str | None, port: int, address: str, basic_auth: str | None,
          oauth_provider: str | None, oauth_key: str | None, oauth_secret: str | None,
          oauth_redirect_uri: str | None, oauth_extra_params: str | None,
          oauth_encryption_key: str | None, cookie_secret: str | None, show: bool,
          basemap: str | None) -> None:
    """Serve the app: scope, map, patch grid, rounds, publish, SQL. Docs: docs/app.md."""
    import json
    import secrets

    from eominer.errors import require
    from eominer.ui.auth import check_basic_auth_file
    from eominer.ui.state import shared_store

    pn = require("panel", "ui", "the eominer app")
    from eominer.ui.app import create_app

    if basic_auth and oauth_provider:
        raise click.UsageError("--basic-auth and --oauth-provider exclude each other")
    kwargs: dict = {}
    if basic_auth or oauth_provider:
        kwargs["cookie_secret"] = cookie_secret or secrets.token_hex(32)
    if oauth_provider:
        try:
            extra = json.loads(oauth_extra_params) if oauth_extra_params else {}
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON ({exc}): expected an object such as "
                                     '{"TOKEN_URL": "https://..."}',
                                     param_hint="--oauth-extra-params") from exc
        kwargs.update(oauth_provider=oauth_provider, oauth_key=oauth_key,
                      oauth_secret=oauth_secret, oauth_redirect_uri=oauth_redirect_uri,
                      oauth_extra_params=extra, oauth_encryption_key=oauth_encryption_key)
    if basic_auth:
        kwargs["basic_auth"] = str(check_basic_auth_file(basic_auth))
        # our own login page: Panel's loads a web font from Google
        kwargs["basic_login_template"] = str(
            Path(__file__).resolve().parents[1] / "ui" / "assets" / "login.html")
    from eominer.errors import StoreConnectionError

    try:
        shared_store(db)  # open once now: the first page loads fast
    except StoreConnectionError as exc:  # the app page says so, and retries on reload
        click.secho(f"warning: {exc}", fg="yellow", err=True)
    import importlib.util

    if importlib.util.find_spec("prometheus_client") is not None:  # the `metrics` extra
        from eominer.metrics import app_registry, metrics_handler

        # Prometheus scrapes the batch jobs' progress, as the database records it, here
        handler = metrics_handler(app_registry(lambda: shared_store(db).tasks()))
        kwargs["extra_patterns"] = [(r"/metrics", handler)]
    if basemap:  # read by every browser session's map (eominer.ui.mapview)
        import os

        from eominer.ui.mapview import BASEMAP_ENV

        os.environ[BASEMAP_ENV] = basemap
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    # rasterio hides this warning of its in-memory datasets with warnings.catch_warnings(),
    # which is not thread-safe; the map warps a few products at once (each warp is given
    # its transform: tests/ui/test_webmercator.py), so a spurious line would reach the log
    warnings.filterwarnings("ignore", "Dataset has no geotransform", NotGeoreferencedWarning,
                            "rasterio.warp")
    exposed = exposure_warning(address, bool(basic_auth or oauth_provider))
    if exposed:
        click.secho(exposed, fg="yellow", err=True)
    click.echo(f"eominer app on http://{address}:{port}/ (ctrl-c to stop)")
    try:
        pn.serve({"/": lambda: create_app(db)}, port=port, address=address, show=show,
                 websocket_origin=[f"{address}:{port}", f"localhost:{port}"],
                 title="eominer", threaded=False, **kwargs)
    except OSError as exc:  # the socket could not be bound: say why, not a traceback
        hint = BIND_HINTS.get(exc.errno or 0)
        if hint is None:
            raise
        raise click.ClickException(
            f"cannot listen on {address}:{port}: {exc.strerror}; {hint}") from exc
