"""`eominer fusion`: pair S1/S2 products, build fused features, train and apply the network."""

from __future__ import annotations

import click

from eominer.cli import db_option, ray_address_for, ray_address_option


def _weights(text: str) -> tuple[float, float]:
    try:
        w2, w1 = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"expected 'S2,S1' weights like 1,1, got {text!r}",
                                 param_hint="--weights") from exc
    return w2, w1


@click.group()
def fusion() -> None:
    """Sentinel-1 / Sentinel-2 fusion for land-cover classification."""


@fusion.command()
@db_option
@click.option("--s2", "s2_id", default=None, help="Pair this S2 product (with --s1).")
@click.option("--s1", "s1_id", default=None, help="...with this S1 product.")
@click.option("--max-days", default=3.0, show_default=True, type=click.FloatRange(0),
              help="Largest time gap.")
@click.option("--min-overlap", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Smallest share of the S2 footprint the S1 product must cover.")
@click.option("--s1-scale", type=click.Choice(["auto", "db", "linear"]), default="auto",
              show_default=True, help="Scale of the S1 ARD: auto detects (and converts linear).")
@click.option("--level", type=int, default=None,
              help="Also build the fused feature set at this grid level.")
@click.option("--weights", default="1,1", show_default=True, help="S2,S1 feature weights.")
def pair(db: str | None, s2_id: str | None, s1_id: str | None, max_days: float,
         min_overlap: float, s1_scale: str, level: int | None, weights: str) -> None:
    """Pair S2 products with the S1 product covering the same place (within --max-days),
    resample S1 onto the S2 grid, record the pairs; optionally build fused features."""
    from eominer.fusion.featureset import build_fused_features
    from eominer.fusion.pairing import pair_products
    from eominer.store import open_store

    w = _weights(weights)
    with open_store(db) as store:
        pairs, unpaired = pair_products(store, s2_id, s1_id, max_days, min_overlap, s1_scale,
                                        progress=click.echo)
        click.echo(f"{len(pairs)} pairs recorded"
                   + (f"; unpaired: {', '.join(unpaired)}" if unpaired else ""))
        if level:
            fs, n = build_fused_features(store, level, w, pairs=pairs)
            click.echo(f"feature set {fs.feature_set_id}: {n} fused rows at level {level}")


@fusion.command()
@db_option
@click.option("--level", type=int, required=True, help="Grid level (patch size in px).")
@click.option("--weights", default="1,1", show_default=True, help="S2,S1 feature weights.")
@click.option("--from-sets", nargs=2, default=None, metavar="S2_SET S1_SET",
              help="Fuse two existing feature sets (e.g. spectral and sar) instead.")
def features(db: str | None, level: int, weights: str, from_sets: tuple[str, str] | None) -> None:
    """Build the fused S1+S2 feature set of every recorded pair (usable in a session)."""
    from eominer.fusion.featureset import build_fused_features, fuse_feature_sets
    from eominer.store import open_store

    w = _weights(weights)
    with open_store(db) as store:
        if from_sets:
            fs, n = fuse_feature_sets(store, from_sets[0], from_sets[1], level, w)
        else:
            fs, n = build_fused_features(store, level, w, progress=click.echo)
    click.echo(f"feature set {fs.feature_set_id}: {n} fused rows at level {level}")


@fusion.command()
@db_option
@click.option("--data", "data_root", required=True, type=click.Path(exists=True),
              help="BigEarthNet folder (v1 GeoTIFF folders and/or v2 LMDB).")
@click.option("--vocabulary", type=click.Choice(["present", "ben19"]), default="present",
              show_default=True, help="Labels present in the data, or all 19 classes.")
@click.option("--epochs", default=30, show_default=True)
@click.option("--seed", default=0, show_default=True)
@ray_address_option("address")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs of a local Ray (one task: it runs here, no local Ray starts).")
@click.option("--no-ray", is_flag=True, default=False,
              help="Train in this process, never on Ray (the default too, unless "
              "--ray-address or $EOMINER_RAY_ADDRESS names a cluster); the same model row.")
def train(db: str | None, data_root: str, vocabulary: str, epochs: int, seed: int,
          address: str | None, num_cpus: int | None, no_ray: bool) -> None:
    """Train the two-branch S1/S2 network as a runner task: in this process, or on a
    cluster's worker with --ray-address (a GPU one when the cluster has one)."""
    from compute.fusion import train as run
    from eominer.store import open_store

    address = ray_address_for(no_ray, address, "address")
    if no_ray and address:
        raise click.UsageError("--no-ray trains in this process: drop --ray-address")
    with open_store(db) as store:
        row = run(store, data_root, vocabulary=vocabulary, epochs=epochs, seed=seed,
                  address=address, num_cpus=num_cpus, progress=click.echo,
                  in_process=no_ray)
    m = row["metrics"]
    click.echo(f"model {row['model_id']}: {m['n_patches']} patches, {m['epochs']} epochs, "
               f"micro F1 on its own training data {m['train_micro_f1']:.3f} "
               f"(not an accuracy: see `eominer eval fusion`); saved to {row['path']}")


@fusion.command()
@db_option
@click.option("--model", default=None, help="Model id or .keras path (default: latest).")
@click.option("--level", type=int, default=None,
              help="Grid level (default: the patch size the model was trained on).")
@click.option("--threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Probability at or above which a label is given.")
@click.option("--labels", default=None,
              help="Comma-separated label vocabulary to require (refused if the model was "
                   "trained with another one).")
def classify(db: str | None, model: str | None, level: int | None, threshold: float,
             labels: str | None) -> None:
    """Classify every S2 patch of the paired products; results become annotations."""
    from eominer.fusion.classify import classify as run
    from eominer.fusion.labels import Vocabulary
    from eominer.store import open_store

    vocab = Vocabulary(tuple(s.strip() for s in labels.split(";" if ";" in labels else ",")
                             )) if labels else None
    with open_store(db) as store:
        r = run(store, model, level, threshold, vocab, progress=click.echo)
    click.echo(f"{r['patches']} patches x {r['labels']} labels annotated as session "
               f"{r['session_id']} ({r['positives']} positive; {r['s1_only']} patches cloudy: "
               "scored from S1 alone)")
