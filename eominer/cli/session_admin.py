"""`eominer session rename | share | archive | delete | duplicate`: what the app's Sessions tab
does, from the terminal (eominer.learning.manage)."""

from __future__ import annotations

import click

from eominer.cli import db_option, split_ids, user_option


@click.command("rename")
@click.argument("session_id")
@click.argument("name")
@user_option(help="Who asks (only the owner renames).")
@db_option
def rename(session_id: str, name: str, user: str, db: str | None) -> None:
    """Rename a session."""
    from eominer.learning import manage
    from eominer.store import open_store

    with open_store(db) as store:
        manage.rename(store, session_id, user, name)
    click.echo(f"{session_id} renamed {name.strip()!r}")


@click.command("share")
@click.argument("session_id")
@user_option(help="Who asks (only the owner shares).")
@click.option("--off", is_flag=True, help="Make it private again.")
@db_option
def share(session_id: str, user: str, off: bool, db: str | None) -> None:
    """Share a session with the team (everyone sees it and may duplicate it)."""
    from eominer.learning import manage
    from eominer.store import open_store

    with open_store(db) as store:
        manage.share(store, session_id, user, not off)
    click.echo(f"{session_id} is {'private' if off else 'shared'}")


@click.command("archive")
@click.argument("session_id")
@user_option(help="Who asks (only the owner archives).")
@click.option("--restore", is_flag=True, help="Bring an archived session back.")
@db_option
def archive(session_id: str, user: str, restore: bool, db: str | None) -> None:
    """Archive a session (labels and rounds stay; `session list` hides it)."""
    from eominer.learning import manage
    from eominer.store import open_store

    with open_store(db) as store:
        manage.archive(store, session_id, user, not restore)
    click.echo(f"{session_id} {'restored' if restore else 'archived'}")


@click.command("delete")
@click.argument("session_id")
@user_option(help="Who asks (only the owner deletes).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
def delete(session_id: str, user: str, yes: bool, db: str | None) -> None:
    """Delete an archived session with its labels, rounds and published annotations
    (saved models stay). Archive it first: `eominer session archive`."""
    from eominer.learning import manage
    from eominer.store import open_store

    with open_store(db) as store:
        if not yes:
            record = manage.visible_session(store, session_id, user)
            n = store.session_activity().get(session_id, (0, 0, None))[0]
            click.confirm(f"Delete session {session_id} ({record.name}) and its {n} label(s)?",
                          abort=True)
        n = manage.delete(store, session_id, user)
    click.echo(f"{session_id} deleted: {n['labels']} label(s), {n['rounds']} round(s), "
               f"{n['annotations']} annotation(s)")


@click.command("duplicate")
@click.argument("session_id")
@user_option(help="Owner of the copy.")
@click.option("--name", default=None, help="Name of the copy (default: '<name> (copy)').")
@click.option("--features", "feature_sets", multiple=True,
              help="Other feature set ids (comma-separated or repeated).")
@click.option("--model", "model_kind", default=None, help="Another model kind.")
@db_option
def duplicate(session_id: str, user: str, name: str | None, feature_sets: tuple[str, ...],
              model_kind: str | None, db: str | None) -> None:
    """A copy of a session with its labels, on other feature sets or with another model;
    prints the copy's id."""
    from eominer.learning import manage
    from eominer.store import open_store

    with open_store(db) as store:
        copy = manage.duplicate(store, session_id, user, name,
                                feature_set_ids=split_ids(feature_sets) or None,
                                model_kind=model_kind)
    click.echo(copy.session_id)


@click.command("refine")
@click.argument("session_id")
@user_option(help="Who asks (the owner: refining publishes the session).")
@click.option("--level", type=int, required=True,
              help="The finer grid level (px), e.g. 32 under a 128 px session.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Score above which a coarse patch is kept (default: the session's "
              "publish threshold); lower keeps more of what the coarse model is unsure of.")
@click.option("--name", default=None, help="Name of the new session (default: '<name> @ Npx').")
@db_option
def refine(session_id: str, user: str, level: int, threshold: float | None, name: str | None,
           db: str | None) -> None:
    """Cascade: publish the session and start one at a finer level over the patches under
    its positives; prints the new session's id and scope."""
    from eominer.learning import manage
    from eominer.store import open_store

    with open_store(db) as store:
        fine = manage.refine(store, session_id, user, level, threshold=threshold, name=name)
        click.echo(f"{fine.session_id}  level {fine.level} px  {fine.data.n} patches under "
                   f"the positives of {session_id}")
