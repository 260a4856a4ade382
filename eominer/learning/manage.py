"""A user's sessions: which they may see, and rename, share, archive, delete, duplicate.

A session belongs to its owner; others see it only when it is shared (the team's
sessions). Archived sessions leave the default list but keep their labels and rounds;
only an archived session can be deleted, and then its labels and rounds go with it.
The app's Sessions tab and `eominer session` both go through here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from eominer.errors import SessionError
from eominer.store.records import SessionRecord, naive_datetime

if TYPE_CHECKING:
    from eominer.learning.session import Session
    from eominer.store import Store


@dataclass(frozen=True)
class SessionSummary:
    """One row of a user's session list."""

    record: SessionRecord
    labels: int
    rounds: int
    last_activity: dt.datetime

    @property
    def shared(self) -> bool:
        return self.record.params.shared


def can_see(record: SessionRecord, user: str) -> bool:
    return record.owner == user or record.params.shared


def visible_session(store: Store, session_id: str, user: str) -> SessionRecord:
    """The session `session_id` if `user` may open it; else a SessionError that says why
    (unknown id, or another user's private session)."""
    record = store.session(session_id)
    if record is None:
        raise SessionError(f"no session {session_id!r}: it may have been deleted, or the link "
                           "points to another workspace; pick one in the Sessions tab")
    if not can_see(record, user):
        raise SessionError(f"session {session_id} belongs to {record.owner} and is not shared; "
                           f"ask {record.owner} to share it")
    return record


def session_summaries(store: Store, user: str, *, archived: bool = False,
                      ) -> list[SessionSummary]:
    """The sessions `user` may see (theirs and the shared ones), latest activity first;
    archived ones only when asked."""
    activity = store.session_activity()
    out = []
    for r in store.session_list():
        if not can_see(r, user) or (r.status == "archived") != archived:
            continue
        n_labels, n_rounds, last_label = activity.get(r.session_id, (0, 0, None))
        last = max([t for t in (r.updated, _naive(last_label)) if t is not None])
        out.append(SessionSummary(r, n_labels, n_rounds, last))
    return sorted(out, key=lambda s: (s.last_activity, s.record.session_id), reverse=True)


def private_of_others(store: Store, user: str, *, archived: bool = False) -> dict[str, int]:
    """Owner -> count of the sessions `user` may not see (other users', not shared): what
    an empty Sessions list hides, e.g. sessions made on the CLI with another --owner."""
    out: dict[str, int] = {}
    for r in store.session_list():
        if not can_see(r, user) and (r.status == "archived") == archived:
            out[r.owner] = out.get(r.owner, 0) + 1
    return out


def _naive(value: Any) -> dt.datetime | None:
    return naive_datetime(value) if value is not None else None


def _own(store: Store, session_id: str, user: str) -> SessionRecord:
    record = visible_session(store, session_id, user)
    if record.owner != user:
        raise SessionError(f"session {session_id} belongs to {record.owner}: only its owner "
                           "renames, shares, archives or deletes it (duplicate it to work on "
                           "a copy)")
    return record


def rename(store: Store, session_id: str, user: str, name: str) -> None:
    name = name.strip()
    if not name:
        raise SessionError("a session name cannot be empty")
    _own(store, session_id, user)
    store.update_session(session_id, name=name)


def share(store: Store, session_id: str, user: str, shared: bool = True) -> None:
    record = _own(store, session_id, user)
    store.update_session(session_id, params=replace(record.params, shared=bool(shared)))


def archive(store: Store, session_id: str, user: str, archived: bool = True) -> None:
    """Archive (or bring back, as closed) a session; its labels and rounds stay."""
    _own(store, session_id, user)
    store.update_session(session_id, status="archived" if archived else "closed")


def delete(store: Store, session_id: str, user: str) -> dict[str, int]:
    """Delete an archived session of `user` with its labels (everyone's, if it was
    shared), rounds and published annotations; returns the rows deleted per table. Only
    an archived session: archiving first is the step that can be undone."""
    record = _own(store, session_id, user)
    if record.status != "archived":
        raise SessionError(f"session {session_id} ({record.name}) is not archived: archive "
                           f"it first (eominer session archive {session_id} --user {user}), "
                           "then delete it")
    return store.delete_session(session_id)


def duplicate(store: Store, session_id: str, user: str, name: str | None = None, *,
              feature_set_ids: Sequence[str] | None = None, model_kind: str | None = None,
              strategy: str | None = None) -> Session:
    """A new session of `user` on the same scope and labels (everyone's training labels,
    as the source's rounds used them), with other feature sets or another model. Rounds
    are not copied: the copy's first round fits its own model."""
    from eominer.learning.session import Session

    src = visible_session(store, session_id, user)
    copy = Session.create(
        store, name or f"{src.name} (copy)", user, src.concept, list(src.product_ids),
        src.level, list(feature_set_ids or src.feature_set_ids),
        model_kind=model_kind or src.model_kind, strategy=strategy or src.strategy,
        params=replace(src.params, shared=False),
    )
    labels = store.session_labels(session_id).to_pylist()
    inside = set(copy.data.patch_ids.tolist())
    for row in labels:
        if row["purpose"] == "train" and int(row["patch_id"]) in inside:
            store.put_label(copy.session_id, int(row["patch_id"]), row["user_name"],
                            int(row["label"]), 0, "train", at=_naive(row["labelled_at"]))
    return copy


def refine(store: Store, session_id: str, user: str, level: int, *,
           threshold: float | None = None, name: str | None = None) -> Session:
    """The cascade's next step ("refine to level N"): publish the owner's session and
    start a session of `user` at the finer `level` over the patches under its positives."""
    from eominer.learning.cascade import cascade
    from eominer.learning.session import Session

    record = visible_session(store, session_id, user)
    if record.owner != user:
        raise SessionError(f"session {session_id} belongs to {record.owner}: refining publishes "
                           "it, which only its owner does (duplicate it to refine a copy)")
    coarse = Session.open(store, session_id)
    if not coarse.rounds():
        raise SessionError(f"session {session_id} has no round yet: label and run a round "
                           "before refining (its ranking is what the finer level keeps)")
    return cascade(coarse, int(level), name=name, owner=user, threshold=threshold)
