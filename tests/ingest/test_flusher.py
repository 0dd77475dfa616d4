"""The flusher under storage failure: nothing lost, nothing duplicated, order kept."""

from dataclasses import replace
from pathlib import Path

from pipeline.ingest.flusher import Flusher
from pipeline.ingest.spool import Spool
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_REJECTS, BRONZE_TRADES


def _trades(start: int, n: int) -> list[tuple]:
    return [
        (
            "deribit",
            "option",
            "ETH-27DEC26-3000-C",
            str(i),
            0.05,
            1.0,
            "sell",
            1786540435948 + i,
            1786540436000000,
            "ws",
            i,
            None,
            3000.0,
            0.05,
            60.0,
            None,
        )
        for i in range(start, start + n)
    ]


def _blocked_lake(tmp_path: Path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the lake folder should be: every write fails")
    return resolve_lake(str(blocker / "lake")), blocker


def test_refused_flushes_are_spooled_then_replayed_in_order_exactly_once(tmp_path: Path) -> None:
    lake, blocker = _blocked_lake(tmp_path)
    spool = Spool(tmp_path / "spool")
    flusher = Flusher(lake, spool, app_id="test")
    r1 = flusher.flush({BRONZE_TRADES: _trades(0, 10)})
    r2 = flusher.flush({BRONZE_TRADES: _trades(10, 5)})
    assert r1.spooled_rows == {"bronze/trades": 10} and r2.spooled_rows == {"bronze/trades": 5}
    assert r1.error and spool.files_pending() == 2

    blocker.unlink()  # the storage comes back
    r3 = flusher.flush({BRONZE_TRADES: _trades(15, 3)})
    assert r3.replayed_rows == 15 and r3.committed_rows == {"bronze/trades": 3}
    assert spool.files_pending() == 0
    ids = sorted(int(i) for i in writer.read(lake, BRONZE_TRADES)["trade_id"].to_list())
    assert ids == list(range(18))
    assert writer.committed_version(lake, BRONZE_TRADES, "test") == r3.flush_id


def test_a_spool_file_already_committed_before_a_crash_is_not_written_twice(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    spool = Spool(tmp_path / "spool")
    flusher = Flusher(lake, spool, app_id="test")
    result = flusher.flush({BRONZE_TRADES: _trades(0, 4)})
    # A crash after the commit but before the spool clean-up leaves the same flush in the spool.
    spool.put(result.flush_id, "bronze/trades", BRONZE_TRADES.from_rows(_trades(0, 4)))
    restarted = Flusher(lake, spool, app_id="test")
    again = restarted.flush({BRONZE_TRADES: _trades(4, 1)})
    assert again.replayed_rows == 0 and spool.files_pending() == 0
    assert writer.count_rows(lake, BRONZE_TRADES) == 5
    assert again.flush_id > result.flush_id  # flush numbers keep growing across restarts


def test_unconvertible_rows_go_to_rejects_and_the_rest_lands(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    flusher = Flusher(lake, Spool(tmp_path / "spool"), app_id="test")
    rows = _trades(0, 3)
    bad = list(rows[1])
    bad[4] = "not a price"
    rows[1] = tuple(bad)
    result = flusher.flush({BRONZE_TRADES: rows}, rejects_venue="deribit")
    assert result.unconvertible_rows == 1
    assert sorted(writer.read(lake, BRONZE_TRADES)["trade_id"].to_list()) == ["0", "2"]
    rejects = writer.read(lake, BRONZE_REJECTS)
    assert rejects.height == 1 and "not a price" in rejects["frame"][0]


def test_streamed_tables_checkpoint_often_whoever_created_them(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    interval = dict(BRONZE_TRADES.configuration)["delta.checkpointInterval"]
    # created by the stream's writer: the property comes with the table
    writer.append(lake, BRONZE_TRADES, BRONZE_TRADES.from_rows(_trades(0, 3)))
    assert writer.open_table(lake, BRONZE_TRADES).metadata().configuration["delta.checkpointInterval"] == interval
    # created without it (an older version, another writer): the stream's Flusher sets it once
    bare = replace(BRONZE_REJECTS, configuration=())
    writer.append(lake, bare, BRONZE_REJECTS.from_rows([("okx", 1, "ws", "bad", "{")]))
    assert "delta.checkpointInterval" not in writer.open_table(lake, BRONZE_REJECTS).metadata().configuration
    Flusher(lake, Spool(tmp_path / "spool"), app_id="t")
    assert writer.open_table(lake, BRONZE_REJECTS).metadata().configuration["delta.checkpointInterval"] == interval
