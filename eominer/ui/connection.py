"""The page's link to the server: when the websocket closes (the server stopped or
the network went), the page says so at once and takes no more clicks or keys, so that
nothing looks done that the server never received. It then asks the server every few
seconds and reloads the page when it answers (a new browser session; every label
confirmed before is in the database)."""

from __future__ import annotations

import param
from panel.custom import JSComponent

LOST = "Disconnected from the server: reconnecting…"
DETAIL = ("Clicks and keys do nothing until it is back; every label the page showed as "
          "done is saved.")

_ESM = """
export function render({model, el, view}) {
  let offline = false
  const block = (e) => {
    if (!offline) return
    e.stopPropagation()
    e.preventDefault()
  }
  for (const type of ['keydown', 'keypress', 'click', 'pointerdown', 'mousedown'])
    window.addEventListener(type, block, true)

  const banner = (text) => {
    let box = document.querySelector('.eom-offline')
    if (box === null) {
      box = document.createElement('div')
      box.className = 'eom-offline'
      box.setAttribute('role', 'alert')
      box.style.cssText = 'position:fixed;inset:0;z-index:10000;display:flex;' +
        'justify-content:center;align-items:flex-start;background:rgba(255,255,255,0.55)'
      document.body.appendChild(box)
    }
    box.innerHTML = '<div style="margin-top:90px;max-width:560px;padding:12px 18px;' +
      'border-radius:4px;background:#b3261e;color:white;font:14px sans-serif"></div>'
    box.firstChild.textContent = text
  }

  // a static file the page loaded from this server: cheap to ask for, under any prefix
  const script = document.querySelector('script[src*="static/js/bokeh"]')
  const probe_url = script !== null ? script.src : window.location.href
  const probe = async () => {
    try {
      // any HTTP answer means the server is up again; a proxy's 5xx does not
      const r = await fetch(probe_url, {method: 'HEAD', cache: 'no-store'})
      if (r.status < 500) {
        banner('Server is back: reloading…')
        window.location.reload()
        return
      }
    } catch (e) {}
    setTimeout(probe, model.probe_ms)
  }

  view.model.document.on_event('connection_lost', () => {
    if (offline) return
    offline = true
    el.textContent = model.lost_text
    el.style.cssText = 'color:#b3261e;font-weight:bold'
    banner(`${model.lost_text} ${model.detail}`)
    setTimeout(probe, model.probe_ms)
  })
  return () => {
    for (const type of ['keydown', 'keypress', 'click', 'pointerdown', 'mousedown'])
      window.removeEventListener(type, block, true)
  }
}
"""


class ConnectionWatch(JSComponent):
    """Shows `lost_text` in the status line, and with `detail` over the page, once the
    connection to the server is lost; reloads the page when the server answers again."""

    lost_text = param.String(default=LOST, doc="in the status line")
    detail = param.String(default=DETAIL, doc="added over the page")
    probe_ms = param.Integer(default=2000, bounds=(200, None), doc="between server probes")
    _esm = _ESM
