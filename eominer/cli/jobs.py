"""`eominer jobs`: the batch jobs of the database (extract, apply, index, change, ingest,
training) as the runner recorded them, and why a task failed."""

from __future__ import annotations

import click
import pyarrow as pa

from eominer.cli import db_option
from eominer.cli.output import render

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
                      default="table")


@click.group(invoke_without_command=True)
@click.option("--last", type=click.IntRange(1), default=20, show_default=True,
              help="How many of the latest jobs.")
@click.option("--kind", default=None, help="Only this kind: extract, apply, index, change, "
              "ingest...")
@FORMAT
@db_option
@click.pass_context
def jobs(ctx: click.Context, last: int, kind: str | None, fmt: str, db: str | None) -> None:
    """List the latest batch jobs, oldest first: their state (done, at work, stopped,
    killed, failed), tasks done, failed, running, pending, stopped, the patches written,
    when. `eominer jobs show JOB_ID` says why tasks failed; `eominer jobs resume JOB_ID`
    runs the job's command again, which resumes it."""
    if ctx.invoked_subcommand is not None:
        return
    from compute.runner import died_in_process, job_state, killed_how
    from eominer.store import open_store

    with open_store(db) as store:
        table = store.job_list(last, kind)
        died = died_in_process(store) if sum(table["running"].to_pylist()) else []
        left, stuck, states = [], 0, []
        for r in table.to_pylist():
            driver = store.job_driver(r["job_id"]) if r["running"] or r["pending"] else None
            r["driver"], r["driver_started"], r["driver_seen"] = driver or (None, None, None)
            states.append(state := job_state(r))
            if state in ("killed", "stopped", "failed"):
                left.append((r["job_id"], store.job_command(r["job_id"]), killed_how(
                    r["driver"], r["driver_seen"]) if state == "killed" else None))
            elif state == "at work or killed":  # of before schema 10: not known
                stuck += r["running"]
    table = table.add_column(2, "state", pa.array(states, pa.string()))
    click.echo(render(table, fmt))
    for job_id, recorded, killed in left:  # stopped, killed, out of retries: what resumes it
        said = f"was killed ({killed}) with tasks left" if killed else "has tasks left"
        click.echo(f"note: job {job_id} {said}: " + (
            f"eominer jobs resume {job_id} runs `{recorded.command}` again" if recorded else
            "its command, run again, resumes it (not recorded: started from Python, by "
            "eominer demo, or before eominer recorded commands)"), err=True)
    if stuck:
        click.echo(f"note: {stuck} task(s) marked running: a job at work now, or one that "
                   "was killed; its command, run again, resumes it", err=True)
    for task_id, worker in died:
        click.echo(f"note: task {task_id} was running in the job's own process ({worker}), "
                   "which has died with it (a crash, or stopped for its memory): the job's "
                   "command, run again, sends it to Ray's worker processes", err=True)


@jobs.command("show")
@click.argument("job_id")
@click.option("--all", "every", is_flag=True, help="Every task, not only the failed ones.")
@FORMAT
@db_option
def show(job_id: str, every: bool, fmt: str, db: str | None) -> None:
    """The tasks of one job that failed (all of them with --all): product, feature set,
    block, attempts, where it ran and the error's last line (--format json: all of it)."""
    from eominer.store import open_store

    with open_store(db) as store:
        t = store.tasks(job_id)
        recorded = store.job_command(job_id)
    if not t.num_rows:
        raise _no_job(job_id)
    if recorded:
        by = f" (by {recorded.user})" if recorded.user else ""
        where = f", in {recorded.folder}" if recorded.folder else ""
        click.echo(f"command: {recorded.command}{by}{where}", err=True)
    rows = [r for r in t.to_pylist() if every or r["status"] == "failed"]
    if fmt != "json":
        for r in rows:  # a traceback's last line is what went wrong
            lines = [ln for ln in (r["error"] or "").splitlines() if ln.strip()]
            r["error"] = lines[-1].strip() if lines else ""
    cols = ["task_id", "status", "product_id", "feature_set_id", "block", "attempts",
            "worker", "error"]
    click.echo(render(pa.Table.from_pylist(rows).select(cols) if rows else
                      pa.table({c: pa.array([], pa.string()) for c in cols}), fmt))
    if not every:
        n = sum(1 for r in t.to_pylist() if r["status"] == "failed")
        click.echo(f"{n} of {t.num_rows} task(s) failed" + (
            "; fix what the errors say and run the job's command again: the done tasks "
            "are kept" if n else ""), err=True)


def _no_job(job_id: str) -> click.BadParameter:
    return click.BadParameter(f"no job {job_id!r} in this database: `eominer jobs` lists "
                              "them", param_hint="'JOB_ID'")


@jobs.command("resume")
@click.argument("job_id")
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Passed on to the job's command where it takes one (the app's log).")
@click.option("--force", is_flag=True,
              help="Run it again even while its process says it is at work.")
@db_option
def resume(job_id: str, progress_log: str | None, force: bool, db: str | None) -> None:
    """Run the command that started JOB_ID again (recorded with the job, without its
    --db): the job resumes where it stopped, its finished tasks kept. For a job stopped
    by Ctrl-C, SIGTERM or the app's Stop, killed, or one whose tasks failed; a job at
    work is refused (a second run would do its tasks twice)."""
    import os
    import shlex

    from compute.runner import job_state
    from eominer.cli import cli
    from eominer.store import open_store
    from eominer.workspace import set_command

    with open_store(db) as store:
        statuses = store.tasks(job_id)["status"].to_pylist()
        recorded = store.job_command(job_id)
        job = next((j for j in store.unended_jobs() if j["job_id"] == job_id), None)
    if not statuses:
        raise _no_job(job_id)
    if job is not None and job_state(job) == "at work" and not force:
        raise click.ClickException(
            f"job {job_id} is at work: its process {job['driver']} lives (or said so "
            "within the last minutes), and a second run would do its tasks twice. Stop it "
            "(Ctrl-C in its terminal, the app's Stop it, or kill its pid on its machine), "
            "or wait for it; --force runs it again all the same")
    if recorded is None:
        raise click.ClickException(
            f"job {job_id} has no recorded command (started from Python, by eominer demo, or "
            "before eominer recorded commands): run its command again by hand, it resumes "
            "the same way")
    left = sum(s != "done" for s in statuses)
    if not left:
        click.echo(f"nothing to resume: the {len(statuses)} task(s) of job {job_id} are done",
                   err=True)
        return
    here = os.getcwd()
    folder = recorded.folder if recorded.folder and os.path.isdir(recorded.folder) else here
    click.echo(f"resuming job {job_id} ({left} of {len(statuses)} task(s) left): "
               f"{recorded.command}" + (f", in {folder}" if folder != here else ""), err=True)
    if recorded.folder and folder != recorded.folder:
        click.echo(f"note: it ran in {recorded.folder}, which is gone: its relative paths are "
                   f"taken from {here}", err=True)
    args = shlex.split(recorded.command)[1:] + (["--db", db] if db else [])
    if progress_log and _takes(cli, args, "progress_log"):  # absolute: the chdir below
        args += ["--progress-log", os.path.abspath(progress_log)]
    set_command(args)
    os.chdir(folder)  # its relative paths
    try:
        cli.main(args=args, standalone_mode=False)
    finally:
        os.chdir(here)


def _takes(group: click.Group, args: list[str], param: str) -> bool:
    """The command that `args` name under `group` has the option `param`."""
    command: click.Command | None = group
    for word in args:
        if not isinstance(command, click.Group):
            break
        command = command.get_command(click.Context(command), word)
    return command is not None and any(p.name == param for p in command.params)
