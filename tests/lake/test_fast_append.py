"""The fast append writes what deltalake would: its own reader reads the rows back, and the add actions
carry the statistics write_deltalake computes for the same rows (timestamps aside: exact to the
microsecond on purpose, where delta-rs keeps milliseconds)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from pipeline.errors import LakeWriteError
from pipeline.lake import compression, fast_append, writer
from pipeline.lake.file_stats import STATS_TEXT_BYTES, truncate_max, truncate_min
from pipeline.lake.location import Lake
from pipeline.lake.tables import SILVER_CANDLES, SILVER_QUOTE_BARS, SILVER_TRADES, TableSpec

T0 = dt.datetime(2026, 8, 12, 0, 0, 0, 123999, tzinfo=dt.UTC)
LONG = {  # strings around the 64 bytes delta-rs keeps of a min/max, some with characters that cannot be raised
    "ascii70": "!" * 70,
    "tilde70": "~" * 70,  # '~' raised is DEL: still one byte
    "del_at_cut": "a" * 63 + "\x7f" + "b" * 5,  # DEL raised would take two bytes: the 'a' before it is raised
    "exact64": "z" * 64,
    "over64": "z" * 65,
    "e_acute40": "é" * 40,  # 80 bytes: the cut falls inside a character
    "emoji20": "\U0001f600" * 20,
    "max_code_points": "\U0010ffff" * 20,  # nothing can be raised: delta-rs keeps the whole max
    "cjk30": "漢" * 30,
    "short": "BTC-USDT-SWAP",
}


def _trades(n: int, days: tuple[int, ...] = (0,)) -> pl.DataFrame:
    rows = []
    for d in days:
        for i in range(n):
            ts = T0 + dt.timedelta(days=d, seconds=i, microseconds=7 * i)
            rows.append(
                {
                    "venue": "okx",
                    "market": "swap",
                    "instrument": list(LONG.values())[i % len(LONG)],
                    "trade_id": f"{d}-{i}" + ("~" * 70 if i == 1 else ""),
                    "price": [0.0, -0.0, 1.5, math.nan, 2.0, math.inf][i % 6],
                    "size": 1.0 + i,
                    "side": "buy" if i % 2 else "sell",
                    "exchange_ts": ts,
                    "receive_ts": ts + dt.timedelta(microseconds=999),
                    "source": "ws",
                    "seq": None if i == 2 else d * 1000 + i,
                    "trade_count": 1,
                    "index_price": None,
                    "mark_price": None,
                    "iv": math.nan if i == 0 else None,
                    "liquidation": None,
                    "date": ts.date(),
                }
            )
    return fast_append.conform(pl.DataFrame(rows, schema=fast_append.polars_schema(SILVER_TRADES)), SILVER_TRADES)


def _candles(n: int) -> pl.DataFrame:
    t = T0.replace(microsecond=0)
    return fast_append.conform(
        pl.DataFrame(
            {
                "venue": ["okx"] * n,
                "market": ["swap"] * n,
                "instrument": [f"C{i % 3}-USDT-SWAP" for i in range(n)],
                "timeframe": ["1m" if i % 2 else "1h" for i in range(n)],
                "open_time": [t + dt.timedelta(minutes=i) for i in range(n)],
                "close_time": [t + dt.timedelta(minutes=i + 1) for i in range(n)],
                "open": [1.0 + i for i in range(n)],
                "high": [2.0 + i for i in range(n)],
                "low": [0.5] * n,
                "close": [1.5] * n,
                "volume": [0.0] * n,
                "quote_volume": [None] * n,
                "trade_count": list(range(n)),
                "vwap": [None] * n,
                "buy_volume": [1.0] * n,
                "sell_volume": [-0.0] * n,
                "source": ["trades"] * n,
                "date": [t.date()] * n,
            },
            strict=False,
        ),
        SILVER_CANDLES,
    )


def _quote_bars(n: int) -> pl.DataFrame:
    t = T0.replace(microsecond=0)
    cols = ["mid_open", "mid_high", "mid_low", "mid_close", "spread_mean", "mark_price", "mark_iv"]
    return fast_append.conform(
        pl.DataFrame(
            {
                "venue": ["deribit"] * n,
                "market": ["option"] * n,
                "instrument": [LONG["emoji20"]] * n,
                "open_time": [t + dt.timedelta(minutes=i) for i in range(n)],
                "close_time": [t + dt.timedelta(minutes=i + 1) for i in range(n)],
                **{c: [None if c == "mark_iv" else float(i) for i in range(n)] for c in cols},
                "quote_count": [i + 1 for i in range(n)],
                "date": [t.date()] * n,
            },
            strict=False,
        ),
        SILVER_QUOTE_BARS,
    )


def _actions(uri: str, spec: TableSpec) -> list[dict[str, object]]:
    actions = pl.from_arrow(pa.table(DeltaTable(uri).get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    stats = [c for c in actions.columns if c.startswith(("num_records", "null_count.", "min.", "max.", "partition."))]
    return actions.select(sorted(stats)).sort([f"partition.{p}" for p in spec.partition_by]).to_dicts()


def _floor_ms(value: object) -> object:
    return value.replace(microsecond=value.microsecond // 1000 * 1000) if isinstance(value, dt.datetime) else value


@pytest.mark.parametrize(
    ("spec", "rows"),
    [
        (SILVER_TRADES, _trades(30, days=(0, 1))),
        (SILVER_CANDLES, _candles(12)),
        (SILVER_QUOTE_BARS, _quote_bars(5)),
    ],
    ids=["trades", "candles", "quote_bars"],
)
def test_rows_and_statistics_are_deltalake_s(lake: Lake, tmp_path, spec: TableSpec, rows: pl.DataFrame) -> None:
    assert fast_append.append(lake, spec, rows, handle=None) == rows.height
    ours = lake.table_uri(spec.layer, spec.name)
    theirs = str(tmp_path / "write_deltalake")
    write_deltalake(theirs, rows.to_arrow().cast(spec.schema), partition_by=list(spec.partition_by))

    back = pl.from_arrow(DeltaTable(ours).to_pyarrow_table())
    assert isinstance(back, pl.DataFrame)
    key = [
        c
        for c in spec.schema.names
        if rows.schema[c] in (pl.String, pl.Date) or isinstance(rows.schema[c], pl.Datetime)
    ]
    assert back.select(rows.columns).sort(key).equals(rows.sort(key))

    mine, reference = _actions(ours, spec), _actions(theirs, spec)
    assert len(mine) == len(reference) == len(rows.select(spec.partition_by).unique())
    timestamps = {c for c, t in rows.schema.items() if isinstance(t, pl.Datetime)}
    checked = 0
    for a, b in zip(mine, reference, strict=True):
        assert a.keys() == b.keys()
        for name, value in a.items():
            column = name.split(".", 1)[-1]
            if column in timestamps and name.startswith(("min.", "max.")):
                # ours: the exact first/last instant of the file; delta-rs': the same cut to milliseconds
                part = rows.filter(*(pl.col(p) == a[f"partition.{p}"] for p in spec.partition_by))
                exact = part[column].min() if name.startswith("min.") else part[column].max()
                assert value == exact and _floor_ms(value) == b[name], name
            else:
                assert value == b[name], (
                    name,
                    value,
                    b[name],
                )  # == also holds for 0.0 and -0.0, as the log may sign either
            checked += 1
    assert checked > 20 * len(mine)


def test_long_strings_are_cut_as_delta_rs_cuts_them(lake: Lake, tmp_path) -> None:
    spec = TableSpec("test", "strings", pa.schema([("k", pa.string()), ("s", pa.string())]), ("k",))
    rows = pl.DataFrame({"k": list(LONG), "s": list(LONG.values())})
    fast_append.append(lake, spec, rows, handle=None)
    write_deltalake(str(tmp_path / "ref"), rows.to_arrow(), partition_by=["k"])
    mine, reference = _actions(lake.table_uri("test", "strings"), spec), _actions(str(tmp_path / "ref"), spec)
    assert mine == reference
    for a in mine:
        value = LONG[str(a["partition.k"])]
        assert a["min.s"] == truncate_min(value) and a["max.s"] == truncate_max(value)
        assert str(a["min.s"]) <= value <= str(a["max.s"])  # bounds, as pruning needs
        assert len(str(a["min.s"]).encode()) <= STATS_TEXT_BYTES
    assert truncate_max(LONG["max_code_points"]) == LONG["max_code_points"]  # the case that keeps it whole


def test_all_null_columns_have_counts_and_no_range(lake: Lake) -> None:
    rows = _trades(4)
    fast_append.append(lake, SILVER_TRADES, rows, handle=None)
    (a,) = _actions(lake.table_uri("silver", "trades"), SILVER_TRADES)
    for c in ("index_price", "mark_price", "liquidation"):
        assert a[f"null_count.{c}"] == 4 and a[f"min.{c}"] is None and a[f"max.{c}"] is None


def test_appends_through_an_open_handle_and_a_lazy_batch(lake: Lake) -> None:
    first, second = _trades(5, days=(0,)), _trades(5, days=(1, 2))
    assert fast_append.append(lake, SILVER_TRADES, first, handle=None) == 5
    table = writer.open_table(lake, SILVER_TRADES)
    assert table is not None
    assert fast_append.append(lake, SILVER_TRADES, second.lazy(), handle=table) == 10
    now = DeltaTable(lake.table_uri("silver", "trades"))
    assert now.version() == 1 and len(now.file_uris()) == 3
    assert all(p.endswith(f".{compression.SUFFIX}.parquet") for p in now.file_uris())
    back = pl.from_arrow(now.to_pyarrow_table())
    assert isinstance(back, pl.DataFrame) and back.height == 15
    assert fast_append.append(lake, SILVER_TRADES, first.head(0).lazy(), handle=table) == 0  # nothing, no commit
    assert DeltaTable(lake.table_uri("silver", "trades")).version() == 1


def test_a_partition_value_that_needs_escaping_goes_through_delta_rs(lake: Lake) -> None:
    rows = _trades(3).with_columns(venue=pl.lit("a venue/with slash"))
    assert fast_append.append(lake, SILVER_TRADES, rows, handle=None) == 3
    back = pl.from_arrow(DeltaTable(lake.table_uri("silver", "trades")).to_pyarrow_table())
    assert isinstance(back, pl.DataFrame) and back["venue"].unique().to_list() == ["a venue/with slash"]


def test_a_failed_commit_raises_and_leaves_no_file_behind(lake: Lake) -> None:
    fast_append.append(lake, SILVER_TRADES, _trades(2), handle=None)
    table = writer.open_table(lake, SILVER_TRADES)
    assert table is not None
    root = Path(lake.table_uri("silver", "trades").removeprefix("file://"))
    before = sorted(root.rglob("*.parquet"))
    (root / "_delta_log" / f"{1:020d}.json").mkdir()  # the next commit's file cannot be written
    with pytest.raises(LakeWriteError, match="append to silver/trades failed"):
        fast_append.append(lake, SILVER_TRADES, _trades(3, days=(1,)), handle=table)
    assert sorted(root.rglob("*.parquet")) == before
