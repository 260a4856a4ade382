"""`eominer encoder`: train and list the patch encoders (the autoencoder behind the
`encoder` feature set, the self-supervised VICReg encoder behind `ssl`)."""

from __future__ import annotations

import click
import pyarrow as pa

from eominer.cli import db_option, ray_address_option, split_ids
from eominer.cli.output import render
from eominer.features.encoder import BANDS


@click.group()
def encoder() -> None:
    """The learned patch encoders: the autoencoder (feature set `encoder`) and the
    self-supervised VICReg encoder (feature set `ssl`)."""


@encoder.command()
@click.option("--products", "products", multiple=True, metavar="IDS",
              help="Train on these product ids (comma-separated or repeated; default: every "
              "Sentinel-2 product).")
@click.option("--method", type=click.Choice(["ssl", "autoencoder"]), default="ssl",
              show_default=True, help="ssl: VICReg on augmented views (feature set `ssl`; "
              "ahead of the autoencoder out of fold, docs/learning.md); autoencoder: "
              "reconstruction (feature set `encoder`).")
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--dim", type=click.IntRange(2, 512), default=None,
              help="Embedding size (columns of the feature set; default 32 for the "
              "autoencoder, 64 for ssl).")
@click.option("--max-patches", type=click.IntRange(10), default=20000, show_default=True,
              help="Patches sampled for training (level 32, else the nearest level).")
@click.option("--bands", default=",".join(BANDS), show_default=True, metavar="B[,B...]",
              help="The Sentinel-2 bands the encoder sees, in this order (any L2A bands; "
              "20 m bands are read from the 10 m ARD). Recorded with the model; `extract` "
              "then needs them in every product.")
@click.option("--seed", type=int, default=0, show_default=True)
@ray_address_option("address")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs of a local Ray (one task: it runs here, no local Ray starts).")
@click.option("--no-ray", is_flag=True, default=False,
              help="Train in this process outside the runner (no `jobs` record; the same "
              "training). Without it the runner task runs here too, unless --ray-address "
              "names a cluster.")
@click.option("--progress-log", type=click.Path(dir_okay=False), default=None,
              help="Also append a JSON line to this file when the training task finishes.")
@db_option
def train(products: tuple[str, ...], method: str, epochs: int, dim: int | None,
          max_patches: int, bands: str, seed: int, address: str | None,
          num_cpus: int | None, no_ray: bool, progress_log: str | None,
          db: str | None) -> None:
    """Train on the ingested patches (no labels, no downloads) as a runner task (in this
    process, with all its threads; on a cluster's GPU worker with --ray-address) and save <workspace>/models/ssl-v<N>.keras (or
    encoder-v<N>.keras with --method autoencoder); `eominer extract --features ssl` (or
    `encoder`) uses the newest one."""
    from compute.encoder import train as run
    from compute.progress import job_progress
    from eominer.features.encoder_train import train_encoder
    from eominer.features.ssl import train_ssl
    from eominer.store import open_store

    ids = split_ids(products) or None
    use = [b for b in bands.split(",") if b.strip()]
    from eominer.features import encoder as autoencoder_set
    from eominer.features import ssl as ssl_set

    dim = dim or (ssl_set.DIM if method == "ssl" else autoencoder_set.DIM)
    with open_store(db) as store:
        if no_ray:
            fit = train_ssl if method == "ssl" else train_encoder
            row = fit(store, ids, epochs=epochs, dim=dim, max_patches=max_patches,
                      seed=seed, log=lambda m: click.echo(m, err=True), bands=use)
            if progress_log:
                import json

                with open(progress_log, "a", encoding="utf-8") as log:
                    log.write(json.dumps({"model_id": row["model_id"], "done": 1,
                                          "of": 1}) + "\n")
        else:
            with job_progress(f"{method} training", progress_log) as bar:
                row = run(store, method, ids, epochs=epochs, dim=dim,
                          max_patches=max_patches, seed=seed, bands=use, address=address,
                          num_cpus=num_cpus, progress=bar.print, on_start=bar.on_start,
                          on_task=bar.on_task)
    m = row["metrics"]
    click.echo(f"{row['model_id']}  {row['path']}  loss {m['loss']:.4f}  "
               f"{m['patches']} patches  {m['train_patches_per_s']:.0f} patches/s")


@encoder.command(name="list")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def list_models(db: str | None, fmt: str) -> None:
    """Trained encoders (both kinds), newest last: what each sees and how it was trained
    (`eominer extract --param ssl.model_id=...` picks one)."""
    from eominer.features.encoder import model_bands
    from eominer.store import open_store

    with open_store(db) as store:
        rows = sorted(store.models("encoder") + store.models("ssl"),
                      key=lambda r: (r["created"], r["model_id"]))
    cols = ["model_id", "kind", "bands", "dim", "epochs", "seed", "loss", "patches",
            "created", "path"]
    data = {c: [] for c in cols}
    for r in rows:
        p, m = r["params"], r["metrics"]
        for c, v in zip(cols, (r["model_id"], r["kind"], ",".join(model_bands(p)), p["dim"],
                               p.get("epochs"), p.get("seed"), m["loss"], m["patches"],
                               r["created"], r["path"]), strict=True):
            data[c].append(v)
    click.echo(render(pa.table({c: pa.array(v) for c, v in data.items()}) if rows
                      else pa.table({c: [] for c in cols}), fmt, title="encoders"))
