"""Benchmark of the one-map view with many products, in Debian's Chromium (headless).

    python bench/bench_map.py [--home DIR] [--products 20] [--size 2048] [--level 16]
                              [--pans 3]

A session over PRODUCTS synthetic products (SIZE x SIZE px, 3 bands, 10 m, in a grid of
neighbouring UTM 33N positions, each tiled at LEVEL px: 20 x 2048 px at 16 px is 327,680
patches with 64 random float32 features), served by `eominer serve` on 127.0.0.1 and
opened by its link (`/?session=ID`). Figures (browser timestamps, `performance.now()`
and the pointer event's `timeStamp`):
- first paint: page load -> every product's image on the map (the map canvas painted
  and the image source holding all products);
- pan: pointer up after dragging the map 300 px -> the images re-read for the new view
  are on the canvas (the server bumps `.eom-base-version` after it re-drew them, and the
  canvas changed). The DESIGN.md asks the map to "stay responsive": reported against
  the label-click target (0.5 s) as a yardstick.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ui import write_synthetic_cog  # noqa: E402
from harness import JS_HELPERS, free_port, local_page, start_server, stop_server  # noqa: E402

YARDSTICK_S = 0.5

JS_MAP = """
() => {
  // deep, versionOf and the canvas hash come from harness.JS_HELPERS (run first)
  const deep = window.__eomDeep, versionOf = window.__eomVersionOf, hashOf = window.__eomHash
  window.__eomUp = null
  document.addEventListener('pointerup', e => { window.__eomUp = e.timeStamp }, true)
  window.__eomProducts = () => {
    const m = Bokeh.documents.length ? Bokeh.documents[0].get_model_by_name('eom-base') : null
    if (!m) return 0
    const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data
    return (d.product || []).length
  }
  window.__eomWatchBase = (timeout) => {
    const el = deep(document, '.eom-base-version', [])[0]
    const v0 = versionOf(el), h0 = hashOf()
    window.__eomBaseDone = new Promise(res => {
      const t0 = performance.now()
      const poll = () => {
        if (versionOf(el) > v0 && hashOf() !== h0) return res(performance.now())
        if (performance.now() - t0 > timeout) return res(null)
        requestAnimationFrame(poll)
      }
      requestAnimationFrame(poll)
    })
  }
}
"""


def build_store(home: Path, n: int, size: int, level: int, dims: int = 64) -> tuple[str, str]:
    """`n` products side by side (5 per row) and a session over all of them."""
    from rasterio.crs import CRS

    from eominer.grid import patch_grid
    from eominer.ingest import footprint_wkt
    from eominer.learning.session import Session
    from eominer.learning.taxonomy import ensure_taxonomy
    from eominer.store import Product, open_store

    db = home / "bench_map.duckdb"
    url = f"duckdb:///{db}"
    if db.exists():  # built by an earlier run (--home): its newest session
        with open_store(url) as store:
            (sid,), = store.query("SELECT session_id FROM sessions ORDER BY created DESC "
                                  "LIMIT 1")
        return url, str(sid)
    crs = CRS.from_epsg(32633).to_wkt()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with open_store(url) as store:
        ensure_taxonomy(store)
        cols = [f"r{j:02d}" for j in range(dims)]
        fs = store.register_feature_set("bench_random", 1, {"dims": dims, "seed": 0}, cols,
                                        "S2")
        ids = []
        for k in range(n):
            pid = f"SYNTHETIC_S2_MAP_{k:02d}"
            ard = home / "ard" / f"{pid}.tif"
            ard.parent.mkdir(parents=True, exist_ok=True)
            x0 = 300000.0 + (k % 5) * size * 10.0
            y0 = 5900040.0 - (k // 5) * size * 10.0
            transform = [10.0, 0.0, x0, 0.0, -10.0, y0]
            write_synthetic_cog(ard, size, seed=k, transform=transform)
            patches = patch_grid(size, size, transform, crs, np.ones((size, size), bool),
                                 (level,), pid, store.next_patch_id())
            store.add_product(Product.create(
                product_id=pid, sensor="S2", platform="synthetic",
                processing_level="synthetic", tile_id="33UUU",
                acquired=dt.datetime(2020, 6, 1, 10), crs=crs,
                footprint_wkt=footprint_wkt(crs, transform, size, size),
                source_path=str(ard), ard_path=str(ard), width=size, height=size,
                bands=["B02", "B03", "B04"], transform=transform, source_hash=f"synthetic{k}",
            ), patches)
            pids = patches["patch_id"].to_numpy().astype(np.int64)
            store.write_features(fs, pids, rng.standard_normal((len(pids), dims), np.float32))
            ids.append(pid)
        s = Session.create(store, "bench map", owner=getpass.getuser(),
                           concept="arable_land", product_ids=ids, level=level,
                           feature_set_ids=[fs.feature_set_id])
        sid = s.session_id
        n_patches = s.data.n
    print(f"  {n} products of {size} x {size} px, {n_patches:,} patches in the session, "
          f"built in {time.perf_counter() - t0:.1f} s")
    return url, sid


def run_browser(base: str, sid: str, n: int, pans: int) -> dict:
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    out: dict = {}
    with sync_playwright() as p:
        b, page = local_page(p, refused, (JS_HELPERS, JS_MAP))
        try:
            page.goto(f"{base}/?session={sid}", timeout=300_000)
            page.wait_for_function(f"() => window.__eomProducts() === {n}", timeout=300_000,
                                   polling=50)
            painted = page.evaluate("() => window.__eomPainted(120000)")
            if painted is None:
                raise RuntimeError("the map never painted")
            out["first_paint_s"] = painted / 1000.0
            page.wait_for_timeout(1500)
            box = page.evaluate("""() => {
              const deep = (root, sel, out) => {
                root.querySelectorAll(sel).forEach(e => out.push(e))
                root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, sel, out) })
                if (root.shadowRoot) deep(root.shadowRoot, sel, out)
                return out
              }
              const c = deep(deep(document, '.eom-map', [])[0], 'canvas', [])[0]
              const r = c.getBoundingClientRect()
              return {x: r.x, y: r.y, w: r.width, h: r.height}
            }""")
            cx, cy = box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
            times = []
            for i in range(pans):
                page.evaluate("() => window.__eomWatchBase(30000)")
                dx = 300 if i % 2 == 0 else -300
                page.mouse.move(cx, cy)
                page.mouse.down()
                page.mouse.move(cx + dx / 2, cy + 40, steps=4)
                page.mouse.move(cx + dx, cy + 80, steps=4)
                page.mouse.up()
                done = page.evaluate("() => window.__eomBaseDone")
                up = page.evaluate("() => window.__eomUp")
                if done is None:
                    raise RuntimeError(f"pan {i + 1}: the images were not re-drawn")
                times.append((done - up) / 1000.0)
                page.wait_for_timeout(1000)
            out["pan_s"] = times
        finally:
            b.close()
    if refused:
        raise RuntimeError(f"the app tried to leave 127.0.0.1: {refused}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--products", type=int, default=20)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--level", type=int, default=16)
    ap.add_argument("--pans", type=int, default=3)
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="eominer-bench-map-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["EOMINER_HOME"] = str(home)
    print(f"bench_map: {args.products} synthetic products of {args.size} x {args.size} px at "
          f"level {args.level}, one session, one map")
    proc = None
    try:
        url, sid = build_store(home, args.products, args.size, args.level)
        port = free_port()
        proc = start_server(home, url, port, wait_s=600.0)
        r = run_browser(f"http://127.0.0.1:{port}", sid, args.products, args.pans)
    finally:
        stop_server(proc)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    pans = np.asarray(r["pan_s"])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} during the "
          "run (server, Chromium and anything else share them)")
    print(f"first paint, {args.products} products on one map: {r['first_paint_s']:.2f} s "
          "from page load (session reopened by its link; reported)")
    print(f"pan -> images re-drawn: median {np.median(pans):.3f} s (each: "
          f"{', '.join(f'{v:.3f}' for v in pans)}), yardstick {YARDSTICK_S} s, ratio "
          f"{np.median(pans) / YARDSTICK_S:.2f}")


if __name__ == "__main__":
    main()
