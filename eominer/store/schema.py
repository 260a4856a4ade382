"""The public schema: one DDL for DuckDB and MonetDB.

Portable SQL only (types both engines share; no sequences, no engine-specific
defaults). Documented for users in docs/schema.md; change both together and bump
SCHEMA_VERSION. Feature values live in one table per feature set (`fs_<id>`,
created by `create_feature_table`), so a changed parameter set never mixes rows.
"""

from __future__ import annotations

SCHEMA_VERSION = 13

# Sentinel-2 product metadata columns (schema version 2), all nullable: NULL for S1,
# stacks and products ingested by version 1.
PRODUCT_METADATA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("processing_baseline", "VARCHAR(8)"),
    ("cloud_cover", "DOUBLE"),
    ("relative_orbit", "INTEGER"),
    ("orbit_direction", "VARCHAR(16)"),
    ("reflectance_offsets", "VARCHAR(1000)"),
    ("quantification", "DOUBLE"),
)

# Cloud mask columns (schema version 3), all nullable. products.cloud_mask names the mask a
# product's patches were measured with ('SCL', 'MSK_CLASSI', 'MSK_CLOUDS_GML',
# 's2cloudless'; NULL: none, as for S1); sun_zenith / sun_azimuth are the mean solar
# angles (degrees) of the granule's MTD_TL.xml (NULL without one). The patches' fractions are NULL where
# the mask does not observe the class (S1, no mask; shadow from a mask without shadows).
PRODUCT_CLOUD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cloud_mask", "VARCHAR(32)"),
    ("sun_zenith", "DOUBLE"),
    ("sun_azimuth", "DOUBLE"),
)
PATCH_MASK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("shadow_fraction", "REAL"),
    ("snow_fraction", "REAL"),
    ("water_fraction", "REAL"),
)

# The quality check of a round (schema version 5), all nullable: NULL until the round is
# verified (learning/verification.py). `precision_estimate` (version 1) holds the point
# estimate of precision; these hold its interval, recall, the threshold that defines the
# current positives, the number of sampled patches answered and the estimated positives.
ROUND_VERIFY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("verify_threshold", "DOUBLE"),
    ("precision_low", "DOUBLE"),
    ("precision_high", "DOUBLE"),
    ("recall_estimate", "DOUBLE"),
    ("recall_low", "DOUBLE"),
    ("recall_high", "DOUBLE"),
    ("verified_n", "INTEGER"),
    ("positives_estimate", "DOUBLE"),
)

# Upgrades of an existing database: version -> the statements that bring version - 1 to
# it. Portable DDL only (ALTER TABLE ... ADD COLUMN runs on DuckDB and MonetDB), skipped
# where the column is there (a table that was missing is made with today's columns); run
# by `init_schema` in one transaction with the new schema_version row.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: tuple(f"ALTER TABLE products ADD COLUMN {name} {kind}"
             for name, kind in PRODUCT_METADATA_COLUMNS),
    3: tuple(f"ALTER TABLE products ADD COLUMN {name} {kind}"
             for name, kind in PRODUCT_CLOUD_COLUMNS)
    + tuple(f"ALTER TABLE patches ADD COLUMN {name} {kind}"
            for name, kind in PATCH_MASK_COLUMNS),
    # version 4 adds the tables `searches` and `search_results` (created as missing
    # tables) and the view `scope_rows` (VIEWS, created after the migrations): no ALTER
    4: (),
    5: tuple(f"ALTER TABLE rounds ADD COLUMN {name} {kind}"
             for name, kind in ROUND_VERIFY_COLUMNS),
    # version 6 adds the table `feature_ranges` (created as a missing table), filled from
    # the features already stored by DATA_MIGRATIONS
    6: (),
    # version 7 adds the table `database_paths` (created as a missing table; its first
    # row is written when the database is next opened)
    7: (),
    # version 8 adds the table `feature_set_sources` (created as a missing table), filled
    # from the product ids that the sets' params name by DATA_MIGRATIONS
    8: (),
    # version 9 adds the table `job_commands` (created as a missing table; jobs of before
    # have no row: their command was not recorded)
    9: (),
    # version 10 adds the table `job_drivers` (created as a missing table; jobs of before
    # have no row: whether their process lives is not known)
    10: (),
    # version 11: when a job's process last said it lives (its runs of before: NULL)
    11: ("ALTER TABLE job_drivers ADD COLUMN seen TIMESTAMP",),
    # version 12: the archive's change sets (eominer.store.archive), filled from the
    # pairs recorded before by DATA_MIGRATIONS
    12: (),
    # version 13 adds the table `feature_row_sources` (created as a missing table), filled
    # from the pairs that wrote the rows of the sets kept per product by DATA_MIGRATIONS
    13: (),
}
# Upgrades that compute rows from the data (a Store method, run by `init_schema` after
# the DDL of that version, in the same transaction).
DATA_MIGRATIONS: dict[int, str] = {6: "backfill_feature_ranges",
                                   8: "backfill_feature_set_sources",
                                   12: "backfill_archive_sets",
                                   13: "backfill_feature_row_sources"}

# Patch ids per block of `feature_ranges` (2**16): a 10M-patch scope is ~150 blocks.
RANGE_BLOCK_BITS = 16

TABLES: dict[str, str] = {
    "schema_version": """
        CREATE TABLE schema_version (
            version INTEGER NOT NULL,
            eominer_version VARCHAR(32) NOT NULL,
            created TIMESTAMP NOT NULL
        )""",
    # Where a database file has been opened (schema version 7): a row when it is first
    # opened at a path. A copy (`cp`) brings its original's rows, so the newest row's path
    # is not where it is opened now: the files its rows name until then are shared with
    # the original while the original exists (Store.copied_from).
    "database_paths": """
        CREATE TABLE database_paths (
            path VARCHAR(2000) NOT NULL,
            since TIMESTAMP NOT NULL
        )""",
    "products": """
        CREATE TABLE products (
            product_id VARCHAR(200) PRIMARY KEY,
            sensor VARCHAR(16) NOT NULL,
            platform VARCHAR(16),
            processing_level VARCHAR(16),
            tile_id VARCHAR(32),
            acquired TIMESTAMP,
            crs VARCHAR(2000) NOT NULL,
            footprint_wkt VARCHAR(100000) NOT NULL,
            source_path VARCHAR(2000) NOT NULL,
            ard_path VARCHAR(2000) NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            bands VARCHAR(500) NOT NULL,
            transform VARCHAR(500) NOT NULL,
            source_hash VARCHAR(64) NOT NULL,
            ingested TIMESTAMP NOT NULL,
            processing_baseline VARCHAR(8),
            cloud_cover DOUBLE,
            relative_orbit INTEGER,
            orbit_direction VARCHAR(16),
            reflectance_offsets VARCHAR(1000),
            quantification DOUBLE,
            cloud_mask VARCHAR(32),
            sun_zenith DOUBLE,
            sun_azimuth DOUBLE
        )""",
    "patches": """
        CREATE TABLE patches (
            patch_id BIGINT PRIMARY KEY,
            product_id VARCHAR(200) NOT NULL,
            level INTEGER NOT NULL,
            size_px INTEGER NOT NULL,
            row INTEGER NOT NULL,
            col INTEGER NOT NULL,
            x_off INTEGER NOT NULL,
            y_off INTEGER NOT NULL,
            min_x DOUBLE NOT NULL,
            min_y DOUBLE NOT NULL,
            max_x DOUBLE NOT NULL,
            max_y DOUBLE NOT NULL,
            min_lon DOUBLE NOT NULL,
            min_lat DOUBLE NOT NULL,
            max_lon DOUBLE NOT NULL,
            max_lat DOUBLE NOT NULL,
            valid_fraction REAL NOT NULL,
            cloud_fraction REAL,
            parent_id BIGINT,
            shadow_fraction REAL,
            snow_fraction REAL,
            water_fraction REAL
        )""",
    "feature_sets": """
        CREATE TABLE feature_sets (
            feature_set_id VARCHAR(64) PRIMARY KEY,
            name VARCHAR(64) NOT NULL,
            version INTEGER NOT NULL,
            params VARCHAR(10000) NOT NULL,
            columns VARCHAR(100000) NOT NULL,
            dims INTEGER NOT NULL,
            table_name VARCHAR(128) NOT NULL,
            sensor VARCHAR(16),
            created TIMESTAMP NOT NULL
        )""",
    "models": """
        CREATE TABLE models (
            model_id VARCHAR(64) PRIMARY KEY,
            kind VARCHAR(32) NOT NULL,
            path VARCHAR(2000) NOT NULL,
            params VARCHAR(10000) NOT NULL,
            metrics VARCHAR(10000) NOT NULL,
            trained_on VARCHAR(100000) NOT NULL,
            created TIMESTAMP NOT NULL
        )""",
    "jobs": """
        CREATE TABLE jobs (
            task_id VARCHAR(200) PRIMARY KEY,
            job_id VARCHAR(64) NOT NULL,
            kind VARCHAR(32) NOT NULL,
            product_id VARCHAR(200),
            feature_set_id VARCHAR(64),
            block INTEGER,
            n_items INTEGER,
            status VARCHAR(16) NOT NULL,
            attempts INTEGER NOT NULL,
            error VARCHAR(10000),
            worker VARCHAR(200),
            started TIMESTAMP,
            finished TIMESTAMP
        )""",
    # The command line that started a job (schema version 9), without its --db (it may
    # hold a password) and the app's --progress-log, and the folder it ran in (relative
    # paths): `eominer jobs resume JOB_ID` runs it again. NULL user: not known. Jobs
    # started from Python (not the CLI) have no row.
    "job_commands": """
        CREATE TABLE job_commands (
            job_id VARCHAR(64) PRIMARY KEY,
            command VARCHAR(4000) NOT NULL,
            folder VARCHAR(4000),
            user_name VARCHAR(128),
            recorded TIMESTAMP NOT NULL
        )""",
    # The process that ran a job's run (schema version 10), "host:pid", when it scheduled
    # the tasks, and when it last said it lives (`seen`, version 11; every
    # compute.runner.HEARTBEAT_S): a run whose process is gone without marking its tasks
    # stopped (kill -9, the system stopping it for memory, a crash) is told from one at
    # work, by its pid on its own machine and by its silence from any other.
    "job_drivers": """
        CREATE TABLE job_drivers (
            job_id VARCHAR(64) PRIMARY KEY,
            driver VARCHAR(300) NOT NULL,
            started TIMESTAMP NOT NULL,
            seen TIMESTAMP
        )""",
    "taxonomy": """
        CREATE TABLE taxonomy (
            label_name VARCHAR(128) PRIMARY KEY,
            parent VARCHAR(128),
            level INTEGER NOT NULL,
            title VARCHAR(500) NOT NULL,
            description VARCHAR(2000),
            created_by VARCHAR(128)
        )""",
    "sessions": """
        CREATE TABLE sessions (
            session_id VARCHAR(64) PRIMARY KEY,
            name VARCHAR(200) NOT NULL,
            owner VARCHAR(128) NOT NULL,
            concept VARCHAR(128) NOT NULL,
            level INTEGER NOT NULL,
            product_ids VARCHAR(100000) NOT NULL,
            feature_set_ids VARCHAR(10000) NOT NULL,
            feature_signature VARCHAR(64) NOT NULL,
            model_kind VARCHAR(32) NOT NULL,
            strategy VARCHAR(32) NOT NULL,
            params VARCHAR(10000) NOT NULL,
            status VARCHAR(16) NOT NULL,
            created TIMESTAMP NOT NULL,
            updated TIMESTAMP NOT NULL
        )""",
    "labels": """
        CREATE TABLE labels (
            session_id VARCHAR(64) NOT NULL,
            patch_id BIGINT NOT NULL,
            user_name VARCHAR(128) NOT NULL,
            label SMALLINT NOT NULL,
            round INTEGER NOT NULL,
            purpose VARCHAR(16) NOT NULL,
            labelled_at TIMESTAMP NOT NULL,
            PRIMARY KEY (session_id, patch_id, user_name)
        )""",
    "rounds": """
        CREATE TABLE rounds (
            session_id VARCHAR(64) NOT NULL,
            round INTEGER NOT NULL,
            model_kind VARCHAR(32) NOT NULL,
            strategy VARCHAR(32) NOT NULL,
            params VARCHAR(10000) NOT NULL,
            n_labels INTEGER NOT NULL,
            n_positive INTEGER NOT NULL,
            n_negative INTEGER NOT NULL,
            seconds DOUBLE NOT NULL,
            ranking_change DOUBLE,
            precision_estimate DOUBLE,
            queried VARCHAR(100000) NOT NULL,
            created TIMESTAMP NOT NULL,
            verify_threshold DOUBLE,
            precision_low DOUBLE,
            precision_high DOUBLE,
            recall_estimate DOUBLE,
            recall_low DOUBLE,
            recall_high DOUBLE,
            verified_n INTEGER,
            positives_estimate DOUBLE,
            PRIMARY KEY (session_id, round)
        )""",
    "annotations": """
        CREATE TABLE annotations (
            patch_id BIGINT NOT NULL,
            label_name VARCHAR(128) NOT NULL,
            session_id VARCHAR(64) NOT NULL,
            score REAL NOT NULL,
            positive BOOLEAN NOT NULL,
            model_version VARCHAR(64) NOT NULL,
            source VARCHAR(32) NOT NULL,
            created TIMESTAMP NOT NULL,
            PRIMARY KEY (patch_id, label_name, session_id)
        )""",
    "searches": """
        CREATE TABLE searches (
            search_id VARCHAR(64) PRIMARY KEY,
            owner VARCHAR(128),
            level INTEGER NOT NULL,
            feature_set_ids VARCHAR(10000) NOT NULL,
            like_ids VARCHAR(100000) NOT NULL,
            where_sql VARCHAR(10000),
            aoi_wkt VARCHAR(100000),
            top INTEGER NOT NULL,
            n_candidates INTEGER NOT NULL,
            created TIMESTAMP NOT NULL
        )""",
    "search_results": """
        CREATE TABLE search_results (
            search_id VARCHAR(64) NOT NULL,
            rank INTEGER NOT NULL,
            patch_id BIGINT NOT NULL,
            distance DOUBLE NOT NULL,
            similarity DOUBLE NOT NULL,
            PRIMARY KEY (search_id, rank)
        )""",
    # per feature set, block of patch ids (patch_id >> RANGE_BLOCK_BITS) and column, the
    # smallest and largest finite value written (NULL: none), kept by every write: a
    # session's load takes its int8 scales from here, not from a pass over the features
    "feature_ranges": """
        CREATE TABLE feature_ranges (
            feature_set_id VARCHAR(64) NOT NULL,
            id_block BIGINT NOT NULL,
            col_index INTEGER NOT NULL,
            min_value DOUBLE,
            max_value DOUBLE,
            PRIMARY KEY (feature_set_id, id_block, col_index)
        )""",
    # the products whose pixels a feature set was computed from, when they are not only
    # the products of its rows (a change pair's second date, a time series' stack):
    # removing one of them drops the set (eominer.removal)
    "feature_set_sources": """
        CREATE TABLE feature_set_sources (
            feature_set_id VARCHAR(64) NOT NULL,
            product_id VARCHAR(200) NOT NULL,
            PRIMARY KEY (feature_set_id, product_id)
        )""",
    # of a set kept per product (a fused S1+S2 set, the archive's change sets, the
    # features of both dates): the products whose pixels one product's rows were computed
    # from besides its own (an S2 product's S1 partners, its change pair's other dates).
    # Removing a source takes out those rows only; the set stays (Store.thinned_rows_from)
    "feature_row_sources": """
        CREATE TABLE feature_row_sources (
            feature_set_id VARCHAR(64) NOT NULL,
            product_id VARCHAR(200) NOT NULL,
            source_id VARCHAR(200) NOT NULL,
            PRIMARY KEY (feature_set_id, product_id, source_id)
        )""",
    "product_pairs": """
        CREATE TABLE product_pairs (
            pair_id VARCHAR(64) PRIMARY KEY,
            kind VARCHAR(16) NOT NULL,
            first_id VARCHAR(200) NOT NULL,
            second_id VARCHAR(200) NOT NULL,
            days_apart DOUBLE,
            overlap_fraction DOUBLE,
            layer_path VARCHAR(2000),
            params VARCHAR(10000) NOT NULL,
            created TIMESTAMP NOT NULL
        )""",
}

# The relation a scope's or a search's WHERE sees (docs/schema.md, "scope_rows"): every
# patch with the facts of its product that a filter needs (not the product's paths, CRS
# or footprint). Views are created after the migrations: they name columns of version 3.
SCOPE_ROWS_COLUMNS: tuple[str, ...] = (
    "patch_id", "product_id", "level", "size_px", "row", "col", "x_off", "y_off",
    "min_x", "min_y", "max_x", "max_y", "min_lon", "min_lat", "max_lon", "max_lat",
    "valid_fraction", "cloud_fraction", "shadow_fraction", "snow_fraction",
    "water_fraction", "parent_id",
)
SCOPE_ROWS_PRODUCT_COLUMNS: tuple[str, ...] = (
    "sensor", "platform", "processing_level", "tile_id", "acquired", "cloud_cover",
    "relative_orbit", "orbit_direction", "processing_baseline", "cloud_mask", "sun_zenith",
    "sun_azimuth",
)
VIEWS: dict[str, str] = {
    "scope_rows": "CREATE VIEW scope_rows AS SELECT "
    + ", ".join(f"p.{c}" for c in SCOPE_ROWS_COLUMNS) + ", "
    + ", ".join(f"pr.{c}" for c in SCOPE_ROWS_PRODUCT_COLUMNS)
    + " FROM patches p JOIN products pr ON pr.product_id = p.product_id",
}

INDEXES: tuple[str, ...] = (
    "CREATE INDEX patches_product_level ON patches (product_id, level)",
    "CREATE INDEX annotations_label ON annotations (label_name)",
)


def feature_table_ddl(table_name: str, columns: list[str]) -> str:
    """DDL of one feature set's table: patch_id plus one REAL column per feature.

    Names come from descriptor registries (checked identifiers), never from users.
    """
    for name in [table_name, *columns]:
        if not name.replace("_", "").isalnum() or not name[0].isalpha():
            raise ValueError(f"not a safe SQL identifier: {name!r}")
    cols = ",\n    ".join(f"{c} REAL" for c in columns)
    return f"CREATE TABLE {table_name} (\n    patch_id BIGINT PRIMARY KEY,\n    {cols}\n)"
