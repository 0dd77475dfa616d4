import datetime as dt

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_QUOTES, BRONZE_TRADES


def _trade(i: int, ts_ms: int = 1786540435948) -> tuple:
    return (
        "okx",
        "swap",
        "BTC-USDT-SWAP",
        str(1000 + i),
        63913.5 + i,
        1.5,
        "buy",
        ts_ms + i,
        1786540436000000,
        "ws",
        None,
        1,
        None,
        None,
        None,
        None,
    )


def test_trades_round_trip_with_utc_timestamps_and_date_partition(lake) -> None:
    assert writer.append_rows(lake, BRONZE_TRADES, [_trade(0), _trade(1)]) == 2
    df = writer.read(lake, BRONZE_TRADES).sort("trade_id")
    assert df["trade_id"].to_list() == ["1000", "1001"]
    assert df["price"].to_list() == [63913.5, 63914.5]
    first = df["exchange_ts"][0]
    assert first == dt.datetime.fromtimestamp(1786540435948 / 1000, dt.UTC)
    assert df["date"][0] == dt.date(2026, 8, 12)
    assert df["seq"].null_count() == 2


def test_quote_levels_two_to_five_become_columns(lake) -> None:
    row = (
        "okx",
        "spot",
        "BTC-USDT",
        "books5",
        1786538744703,
        1786538744800000,
        "ws",
        79706756139,
        64073.0,
        0.5,
        64073.1,
        1.0,
        ((64072.7, 0.1), (64072.2, 0.2)),
        ((64073.6, 0.3),),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    writer.append_rows(lake, BRONZE_QUOTES, [row])
    df = writer.read(lake, BRONZE_QUOTES)
    assert df["bid_px_2"][0] == 64072.7 and df["bid_sz_3"][0] == 0.2 and df["bid_px_4"][0] is None
    assert df["ask_px_2"][0] == 64073.6 and df["ask_px_3"][0] is None


def test_application_transactions_are_recorded(lake) -> None:
    assert writer.committed_version(lake, BRONZE_TRADES, "app") is None
    writer.append(lake, BRONZE_TRADES, BRONZE_TRADES.from_rows([_trade(0)]), txn=("app", 7))
    assert writer.committed_version(lake, BRONZE_TRADES, "app") == 7
    assert writer.count_rows(lake, BRONZE_TRADES) == 1


def test_reading_a_missing_table_gives_an_empty_frame_with_the_schema(lake) -> None:
    df = writer.read(lake, BRONZE_TRADES)
    assert df.height == 0 and "exchange_ts" in df.columns
