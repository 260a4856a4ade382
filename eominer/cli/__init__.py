"""The `eominer` command. Subcommands live in one module each and load lazily, so
`eominer --help` stays fast and a missing optional extra only affects its command."""

from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from eominer.errors import EominerError

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable
    from types import FrameType

    import pyarrow as pa
    from click.decorators import FC

    from eominer.store import Store

# name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "ingest": "eominer.cli.ingest:ingest",
    "products": "eominer.cli.ingest:products",
    "sql": "eominer.cli.sql:sql",
    "extract": "eominer.cli.extract:extract",
    "apply": "eominer.cli.apply:apply",
    "models": "eominer.cli.models:models",
    "jobs": "eominer.cli.jobs:jobs",
    "encoder": "eominer.cli.encoder:encoder",
    "session": "eominer.cli.learn:session",
    "search": "eominer.cli.search:search",
    "index": "eominer.cli.index:index",
    "change": "eominer.cli.change:change",
    "timeseries": "eominer.cli.timeseries:timeseries",
    "fusion": "eominer.cli.fusion:fusion",
    "serve": "eominer.cli.serve:serve",
    "demo": "eominer.cli.demo:demo",
    "eval": "eominer.cli:evaluate",
}
# Commands whose re-run resumes an interrupted run: what finished is kept.
RESUMING = frozenset({"ingest", "extract", "apply", "index", "change", "encoder",
                      "timeseries"})
# Commands recorded with the jobs they start (`eominer jobs resume` runs them again): those
# whose re-run is the job's resume, and `fusion train` (it takes a stopped training's task
# over). Not `eominer demo`, which would serve the app again, nor an evaluation.
RECORDED = RESUMING | {"fusion"}
EVALS: dict[str, str] = {
    "learning": "eominer.cli.eval_learning:learning",
    "change": "eominer.cli.eval_change:change",
    "fusion": "eominer.cli.eval_fusion:fusion",
    "cascade": "eominer.cli.eval_cascade:cascade",
}


def _load(spec: str) -> click.Command:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    def __init__(self, *args: Any, commands_spec: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_spec = commands_spec

    def list_commands(self, ctx: click.Context) -> list[str]:
        # a command whose module is absent from this install is not offered
        return sorted(
            name for name, spec in self.commands_spec.items()
            if spec == "eominer.cli:evaluate"
            or importlib.util.find_spec(spec.split(":")[0]) is not None
        )

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = self.commands_spec.get(name)
        if spec is None:
            return None
        if spec == "eominer.cli:evaluate":
            return evaluate
        return _load(spec)


@click.group(cls=LazyGroup, commands_spec=COMMANDS)
@click.version_option(package_name="eominer")
def cli() -> None:
    """eominer: interactive mining of Sentinel-1/2 imagery.

    The database is --db URL, else $EOMINER_DB, else $EOMINER_HOME/eominer.duckdb
    (EOMINER_HOME defaults to ~/.eominer).
    """


@click.group(cls=LazyGroup, commands_spec=EVALS, name="eval")
def evaluate() -> None:
    """Evaluations on real labelled data (learning curves, change maps, fusion)."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: eominer errors become one clear line and exit code 1; Ctrl-C becomes
    "interrupted" and exit code 130, also when DuckDB reports it as an error of its own;
    SIGTERM stops the same way, with "terminated" and exit code 143."""
    pressed = _note_ctrl_c()
    termed = _sigterm_as_ctrl_c()
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), "")
    from eominer.workspace import set_command

    set_command(args if command in RECORDED else ())  # `eominer jobs resume` runs it again
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort as exc:  # a prompt answered no, or Ctrl-C (click's)
        if pressed or isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted(command, said=getattr(exc.__cause__, "said", False), termed=termed)
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        _interrupted(command, said=getattr(exc, "said", False), termed=termed)
    except Exception as exc:
        if pressed or termed:  # DuckDB's "Query interrupted" and the like: the user's Ctrl-C
            _interrupted(command, termed=termed)
        if isinstance(exc, EominerError):
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        if isinstance(exc, OSError) and exc.filename:  # a path that cannot be made or read
            click.secho(f"error: {exc.strerror or exc}: {exc.filename} (check the path and "
                        "its permissions)", fg="red", err=True)
            sys.exit(1)
        raise
    finally:
        set_command(())  # a caller that goes on (a test, a notebook) runs no command
        if pressed is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if termed is not None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _note_ctrl_c() -> list[bool] | None:
    """Python's own Ctrl-C handler, plus a note that it ran (None where another handler
    is in place, or off the main thread: nothing is changed there)."""
    return _as_ctrl_c(signal.SIGINT, signal.default_int_handler)


def _sigterm_as_ctrl_c() -> list[bool] | None:
    """SIGTERM (`kill`, `timeout`, systemd, a batch scheduler's stop) becomes a Ctrl-C:
    a job commits what finished and marks the task it was running here pending again.
    Killed outright, it lost up to a commit interval of results, and the re-run took the
    stop for a crash of that task (`compute.runner.died_in_process`). Held during a
    commit as a Ctrl-C is (`eominer.store.base.ctrl_c_after`). Also where SIGINT is
    ignored (a command started in the background by a script or `nohup`), the usual way
    such a command is stopped. Returns a note that it came (None where another handler
    is in place, or off the main thread: nothing is changed there)."""
    return _as_ctrl_c(signal.SIGTERM, signal.SIG_DFL)


def _as_ctrl_c(signum: int,
               default: Callable[[int, FrameType | None], Any] | int) -> list[bool] | None:
    """A handler for `signum` that notes it came and raises KeyboardInterrupt, put in
    where `default` is in place, on the main thread."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signum) is not default:
        return None
    came: list[bool] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        came.append(True)
        raise KeyboardInterrupt

    signal.signal(signum, handler)
    return came


def _interrupted(command: str, said: bool = False, termed: list[bool] | None = None) -> None:
    """Exit 130 (143 after SIGTERM) with one line: a job's progress bar has said it
    already (`said`, set on the KeyboardInterrupt), a command that resumes says how, any
    other just stops."""
    what = "terminated" if termed else "interrupted"
    if not said:
        click.echo(f"{what}; re-run the same command to resume" if command in RESUMING
                   else what, err=True)
    sys.exit(143 if termed else 130)


def user_option(name: str = "--user", help: str = "Who asks.") -> Callable[[FC], FC]:
    """`--user` / `--owner`: defaults to the operating-system user, who the app labels as
    without a log-in, so sessions made here are the user's own there."""
    from eominer.workspace import os_user

    return click.option(name, default=os_user, show_default="the operating-system user",
                        help=help)


def split_ids(values: tuple[str, ...] | str | None) -> list[str]:
    """Ids given comma-separated, repeated, or both (`--products a,b --products c`), in
    order, each once."""
    if not values:
        return []
    texts = (values,) if isinstance(values, str) else values
    return list(dict.fromkeys(v.strip() for t in texts for v in t.split(",") if v.strip()))


def catalogue_options(within: str = "") -> Callable[[FC], FC]:
    """--tile, --sensor, --since, --until and --max-cloud: a part of the catalogue
    (`eominer products`; `change --consecutive`, whose help says so with `within`)."""
    cap = (lambda text: f"{within}: {text[0].lower()}{text[1:]}") if within else str
    options = [
        click.option("--tile", "tiles", multiple=True, metavar="TILES", help=cap(
            "Only these tiles (MGRS, as 31UDQ or T31UDQ; comma-separated or repeated).")),
        click.option("--sensor", type=click.Choice(["S1", "S2"]), default=None,
                     help=cap("Only this one.")),
        click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     metavar="DATE", help=cap("Acquired on or after this day (YYYY-MM-DD).")),
        click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     metavar="DATE", help=cap("Acquired on or before this day (YYYY-MM-DD).")),
        click.option("--max-cloud", type=click.FloatRange(0, 100), default=None,
                     metavar="PCT", help=cap(
                         "Cloud cover at most PCT % (Sentinel-1 is kept; an optical "
                         "product whose cover is not known is left out).")),
    ]

    def decorate(f: FC) -> FC:
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


def catalogue(store: Store, tiles: tuple[str, ...], sensor: str | None, since: dt.datetime | None,
              until: dt.datetime | None, max_cloud: float | None) -> pa.Table:
    """The products `catalogue_options` choose (`Store.products`, oldest first)."""
    import datetime as dt

    if since and until and until < since:
        raise click.BadParameter(f"{until:%Y-%m-%d} is before --since {since:%Y-%m-%d}",
                                 param_hint="'--until'")
    # MGRS tiles are stored without the "T" of the product names
    wanted = [t[1:] if len(t) == 6 and t[0] in "Tt" else t for t in split_ids(tiles)]
    return store.products(tiles=[w.upper() for w in wanted], sensor=sensor, since=since,
                          before=until + dt.timedelta(days=1) if until else None,
                          max_cloud=max_cloud)


def ray_address_option(param: str = "ray_address", note: str = "") -> Callable[[FC], FC]:
    """`--ray-address` of the commands that run a job on Ray (`param`: the function's
    argument; `note`: what else to say). $EOMINER_RAY_ADDRESS is its default: set it
    once (say to `auto` after `ray start --head`) and every job joins that Ray instead of
    starting and stopping one of its own (6 s of a 10 s extract on 2 cores)."""
    names = ("--ray-address",) if param == "ray_address" else ("--ray-address", "--address",
                                                                 param)
    return click.option(
        *names, envvar="EOMINER_RAY_ADDRESS", default=None, metavar="ADDR",
        help="Join this Ray cluster (host:port, ray://host:10001 or auto)" + note
        + ". Default: $EOMINER_RAY_ADDRESS, else a local Ray for this command.")


def ray_address_for(in_process: bool, address: str | None,
                    param: str = "ray_address") -> str | None:
    """The Ray address a command's job joins: none when it runs in this process and the
    address came from $EOMINER_RAY_ADDRESS (asked for this process, the variable does
    not apply; an address given as an option still conflicts, and the job says so)."""
    source = click.get_current_context().get_parameter_source(param)
    if in_process and source == click.core.ParameterSource.ENVIRONMENT:
        return None
    return address


workers_option = click.option(
    "--workers", type=click.IntRange(0), default=None,
    help="Ray worker processes (default: start in this process, and move the rest to "
    "a local Ray of one worker per CPU once the first tasks show that Ray's start-up "
    "pays off; with --ray-address, one per CPU of the cluster); 0: every task in this "
    "process, without Ray (a machine where Ray cannot start). Either way a re-run "
    "resumes.")

def workers_or_no_ray(no_ray: bool, workers: int | None) -> int | None:
    """The evals' `--no-ray` is `--workers 0` (its older spelling, kept)."""
    if no_ray and workers not in (None, 0):
        raise click.UsageError("--no-ray is --workers 0: give one of them")
    return 0 if no_ray else workers


db_option = click.option(
    "--db", "db", envvar="EOMINER_DB", default=None, metavar="URL",
    help="duckdb:///path/file.duckdb (or the bare path file.duckdb) or "
    "monetdb://user:password@host:port/database (default: $EOMINER_DB, else "
    "$EOMINER_HOME/eominer.duckdb).",
)
