"""What the browser benchmarks share (bench_ui.py, bench_map.py): `eominer serve` on
127.0.0.1 in a subprocess, Debian's Chromium through Playwright on a page that may reach
nothing but 127.0.0.1, and the page-side timing helpers (`JS_HELPERS`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright, Route

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")


# ---- the server ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, url: str, port: int, wait_s: float = 120.0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "eominer", "serve", "--db", url, "--port", str(port),
           "--address", "127.0.0.1", "--no-show"]
    env = dict(os.environ, EOMINER_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while time.time() - t0 < wait_s:
        if proc.poll() is not None:
            raise RuntimeError(f"eominer serve exited: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=wait_s / 2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"eominer serve did not answer in {wait_s:.0f} s")


# ---- in the browser -----------------------------------------------------------------
# Panel renders every component in its own shadow root: look through them all.
JS_HELPERS = """
() => {
  const deep = (root, sel, out) => {
    root.querySelectorAll(sel).forEach(e => out.push(e))
    root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, sel, out) })
    if (root.shadowRoot) deep(root.shadowRoot, sel, out)
    return out
  }
  const canvases = () => {
    const m = deep(document, '.eom-map', [])[0]
    return m ? deep(m, 'canvas', []).filter(c => c.width > 0 && c.height > 0) : []
  }
  // a hash of sampled pixels, and their spread (a blank canvas has none)
  const look = (cs) => {
    let hash = 0, n = 0, sum = 0, sq = 0
    for (const c of cs) {
      const ctx = c.getContext('2d')
      if (!ctx) continue
      const d = ctx.getImageData(0, 0, c.width, c.height).data
      for (let i = 0; i < d.length; i += 4 * 97) {
        hash = (hash * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) % 2147483647
        const v = d[i] + d[i + 1] + d[i + 2]
        sum += v; sq += v * v; n += 1
      }
    }
    const mean = n ? sum / n : 0
    return {hash, std: n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : 0}
  }
  const versionOf = (e) => {
    const m = e ? (e.shadowRoot ? e.shadowRoot.innerHTML : e.innerHTML).match(/data-v="(\\d+)"/) : null
    return m ? Number(m[1]) : 0
  }
  // for the other benchmarks' page scripts (bench_map.py)
  window.__eomDeep = deep
  window.__eomVersionOf = versionOf
  window.__eomHash = () => look(canvases()).hash
  window.__eomClick = null
  document.addEventListener('click', e => { window.__eomClick = e.timeStamp }, true)
  // polls stay cheap (the page shares 2 cores with the server): elements are looked up
  // once, and pixels are read only when there is something new to see
  window.__eomPainted = (timeout) => new Promise(res => {
    const t0 = performance.now()
    let cs = [], tries = 0
    const poll = () => {
      if (!cs.length || tries++ % 10 === 0) cs = canvases()
      if (cs.length && look(cs).std > 20) return res(performance.now())
      if (performance.now() - t0 > timeout) return res(null)
      requestAnimationFrame(poll)
    }
    requestAnimationFrame(poll)
  })
  window.__eomWatch = (timeout) => {
    const cs = canvases(), vEl = deep(document, '.eom-overlay-version', [])[0]
    const v0 = versionOf(vEl), h0 = look(cs).hash
    window.__eomDone = new Promise(res => {
      const t0 = performance.now()
      // `frame`: the start of the animation frame whose callback reads the pixels: they
      // were on the canvas then (reading them back takes ~25 ms on its own)
      const poll = (frame) => {
        if (versionOf(vEl) > v0 && look(cs).hash !== h0) return res(frame)
        if (performance.now() - t0 > timeout) return res(null)
        requestAnimationFrame(poll)
      }
      requestAnimationFrame(poll)
    })
  }
}
"""



def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def local_page(p: Playwright, refused: list[str], scripts: tuple[str, ...] = (JS_HELPERS,)
               ) -> tuple[Browser, Page]:
    """(browser, page): headless Chromium, a 1600 x 1000 page whose requests outside
    127.0.0.1 are refused (and listed in `refused`), with `scripts` run in every
    document. Close the browser when done."""
    b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    page = b.new_page(viewport={"width": 1600, "height": 1000})

    def route(r: Route) -> None:
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    for js in scripts:
        page.add_init_script(f"({js})()")
    return b, page
