"""Removing products from the app (Scope tab): the products ticked in the table, after
the account of what would go that `eominer products remove` gives before it asks
(eominer.removal.describe), confirmed with a second button. Refused, nothing removed,
while a session's scope holds one of them or a session uses a set computed from their
pixels: the status line names the sessions. The catalogue is read again afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from eominer.ui.state import AppState

WHAT = "remove products"  # the status line's name of the action


class RemoveProductsView(Viewer):
    state = param.ClassSelector(class_=AppState)

    def __init__(self, selected: Callable[[], list[str]], reload: Callable[[], None],
                 **params: Any) -> None:
        super().__init__(**params)
        self._selected, self._reload = selected, reload
        self._pending: list[str] = []  # the products the shown account is of
        self._ask = pn.widgets.Button(label="Remove the ticked products...",
                                      color="danger", variant="outline",
                                      width=230, css_classes=["eom-remove"])
        self._confirm = pn.widgets.Button(label="Remove them", color="danger",
                                          width=140, visible=False,
                                          css_classes=["eom-remove-confirm"])
        self._cancel = pn.widgets.Button(label="Cancel", width=100, visible=False,
                                         css_classes=["eom-remove-cancel"])
        self._account = pn.pane.Alert("", alert_type="warning", visible=False,
                                      sizing_mode="stretch_width",
                                      css_classes=["eom-remove-account"])
        self._ask.on_click(lambda _: self.ask())
        self._confirm.on_click(lambda _: self.confirm())
        self._cancel.on_click(lambda _: self.cancel())

    def ask(self) -> None:
        """What removing the ticked products would take, with the buttons to go on."""
        from eominer.removal import describe, remove_products

        self.cancel()
        ids = self._selected()
        if not ids:
            self.state.say(f"{WHAT}: tick the products to remove in the table first", "error")
            return
        with self.state.work(WHAT):
            lines = [line for r in remove_products(self.state.store, ids, dry_run=True)
                     for line in describe(r, dry_run=True)]
            self._show(f"**Remove {len(ids)} product(s)?** This is what would go (ingest a "
                       "product again to have it back):", lines, "warning")
            self._pending = ids
            self._confirm.visible = self._cancel.visible = True
            self.state.say(f"{WHAT}: {', '.join(ids)} would go: confirm below the table, "
                           "or cancel", "warning")

    def confirm(self) -> None:
        """Remove the products of the account shown (checked again: a session may have
        taken one meanwhile)."""
        from eominer.removal import describe, remove_products

        ids, self._pending = self._pending, []
        self._confirm.visible = self._cancel.visible = False
        if not ids:
            return
        self._account.visible = False  # a refusal now leaves no account of what "would go"
        with self.state.work(WHAT):
            lines = [line for r in remove_products(self.state.store, ids)
                     for line in describe(r)]
            self._show(f"**Removed {len(ids)} product(s).**", lines, "success")
            self._reload()
            self.state.say(f"{WHAT}: removed {', '.join(ids)}", "success")

    def cancel(self) -> None:
        self._pending = []
        self._confirm.visible = self._cancel.visible = False
        self._account.visible = False

    def _show(self, head: str, lines: list[str], kind: str) -> None:
        self._account.object = head + "\n\n" + "\n".join(f"- {line}" for line in lines)
        self._account.alert_type = kind
        self._account.visible = True

    def __panel__(self) -> pn.Column:
        return pn.Column(pn.Row(self._ask, self._confirm, self._cancel), self._account,
                         sizing_mode="stretch_width")
