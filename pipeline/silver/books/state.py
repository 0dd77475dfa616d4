"""silver/book_state: each chain's book where the last run left it, and the bronze version it reflects.

One row per chain (venue, instrument, channel, session), the whole table replaced in one commit after the
run's snapshots and segments are written, so the state and its ``bronze_version`` (the run's watermark of
bronze/book_deltas) change together: a run that dies before that commit is redone from the old state, and
its keyed writes of snapshots and segments find nothing to change.

The table stays small: a chain's full book is kept only while its segment is open and the chain is the
newest of its (venue, instrument, channel); older chains keep their position (a late message of theirs is
found and replayed from the session's start), not their levels.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

import polars as pl

from pipeline.lake.fast_append import polars_schema
from pipeline.lake.tables import SILVER_BOOK_STATE
from pipeline.silver import writes
from pipeline.silver.books.rebuild import CHAIN, STATE_SCHEMA, empty_states
from pipeline.silver.handles import Handles


def read_state(tables: Handles) -> tuple[pl.DataFrame, int | None]:
    """(the chains' states in ``STATE_SCHEMA``, the bronze/book_deltas version they reflect or None)."""
    table = tables.table(SILVER_BOOK_STATE)
    if table is None:
        return empty_states(), None
    df = pl.DataFrame(table.to_pyarrow_table())
    version = df["bronze_version"].max() if df.height else None
    return df.select(STATE_SCHEMA.names()).cast(STATE_SCHEMA), int(cast(int, version)) if version is not None else None


def retire(states: pl.DataFrame) -> pl.DataFrame:
    """Chains superseded by a newer session of the same (venue, instrument, channel) keep no levels; their
    ``valid`` becomes null where their book was open (``step`` replays such a chain if it ever continues)."""
    if states.height == 0:
        return states
    newest = pl.col("position_ts") == pl.col("position_ts").max().over("venue", "instrument", "channel")
    keep = newest | pl.col("position_ts").is_null()
    empty = pl.lit([], pl.List(pl.Float64))
    # valid null: the book was open but not kept; a later message of that chain replays its session
    return states.with_columns(
        valid=pl.when(keep)
        .then("valid")
        .when(pl.col("valid").fill_null(True))
        .then(pl.lit(None, pl.Boolean))
        .otherwise(False),
        **{c: pl.when(keep).then(pl.col(c)).otherwise(empty) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")},
    )


def write_state(tables: Handles, states: pl.DataFrame, version: int | None, now: dt.datetime) -> None:
    """Replace silver/book_state with ``states`` at ``version``, in one commit."""
    df = states.sort(CHAIN).with_columns(
        bronze_version=pl.lit(version, pl.Int64), updated_ts=pl.lit(now, pl.Datetime("us", "UTC"))
    )
    df = df.select(polars_schema(SILVER_BOOK_STATE).names()).cast(polars_schema(SILVER_BOOK_STATE))
    writes.overwrite(tables, SILVER_BOOK_STATE, df)
