"""The stream against the simulator over 127.0.0.1: reconcile bronze with the simulator's ground truth."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import ConfigError
from pipeline.ingest.stream import run_stream
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_QUOTES, BRONZE_REJECTS, BRONZE_TRADES
from pipeline.simulator import SimulatorThread
from tests.ingest.streamkit import (
    FAST,
    bronze_key,
    bronze_trades,
    covered_by_gap,
    gaps_for,
    ground_truth,
    sim_config,
    stream_config,
)


def _stream(lake, sim: SimulatorThread, tmp_path: Path, seconds: float, config=None, **kw):
    return asyncio.run(
        run_stream(
            lake,
            config or stream_config(),
            sim_ws_url=f"ws://127.0.0.1:{sim.port}",
            seconds=seconds,
            spool_dir=tmp_path / "spool",
            handle_signals=False,
            **kw,
        )
    )


def _reconcile(lake, sim, venue: str, instrument: str) -> tuple[set[str], set[str], pl.DataFrame]:
    """(missing, extra) keys of bronze vs truth over the window bronze saw, plus the bronze rows."""
    df = bronze_trades(lake, venue, instrument)
    assert df.height > 0, f"no {venue} {instrument} trades captured"
    first = int(df["exchange_ts"].min().timestamp() * 1000)
    last = int(df["exchange_ts"].max().timestamp() * 1000)
    truth = ground_truth(sim, venue, instrument, first, last)
    got = set(bronze_key(df, venue).to_list())
    return set(truth) - got, got - set(truth), df


def test_every_published_trade_lands_once_and_quotes_arrive(lake, tmp_path: Path) -> None:
    with SimulatorThread(sim_config()) as sim:
        run = _stream(lake, sim, tmp_path, seconds=3.0)
        for venue, instruments in (("okx", ("BTC-USDT", "ETH-USDT-SWAP")), ("deribit", ("ETH-PERPETUAL",))):
            for instrument in instruments:
                missing, extra, df = _reconcile(lake, sim, venue, instrument)
                assert missing == set() and extra == set()
                assert df.height == len(set(bronze_key(df, venue).to_list())), "duplicates without a duplicate fault"
                # Prices and sides are the simulator's own, not just the ids.
                truth = {
                    str(t.trade_id if venue == "okx" else t.seq): t
                    for t in sim.call(lambda v=venue, i=instrument: sim.market.trades(v, i, limit=None))
                }
                row = df.row(0, named=True)
                t = truth[row["trade_id"] if venue == "okx" else str(row["seq"])]
                assert (row["price"], row["size"], row["side"]) == (t.price, t.size, t.side)
    assert run.stats.trades == sum(
        bronze_trades(lake, v, i).height
        for v, i in (("okx", "BTC-USDT"), ("okx", "ETH-USDT-SWAP"), ("deribit", "ETH-PERPETUAL"))
    )
    quotes = writer.read(lake, BRONZE_QUOTES)
    assert set(quotes["channel"].unique().to_list()) >= {"books5", "ticker"}
    assert (
        quotes.filter(pl.col("bid_px").is_not_null() & pl.col("ask_px").is_not_null())
        .select((pl.col("bid_px") < pl.col("ask_px")).all())
        .item()
    )
    assert run.stats.commits >= 2


def test_malformed_frames_land_in_rejects_one_for_one(lake, tmp_path: Path) -> None:
    with SimulatorThread(sim_config(malformed_rate=0.05)) as sim:
        _stream(lake, sim, tmp_path, seconds=3.0)
        sent = sim.call(lambda: sim.ctx.counters["malformed_sent"])
    rejects = writer.read(lake, BRONZE_REJECTS)
    assert sent > 0
    assert rejects.height == sent
    assert rejects["reason"].str.len_chars().min() > 5 and rejects["frame"].str.len_chars().min() > 0


def test_drops_duplicates_and_reordering_lose_nothing_silently(lake, tmp_path: Path) -> None:
    faults = dict(drop_every_s=1.2, duplicate_rate=0.05, out_of_order_rate=0.05)
    with SimulatorThread(sim_config(**faults)) as sim:
        run = _stream(lake, sim, tmp_path, seconds=5.0)
        assert run.stats.reconnects >= 2
        for venue, instrument in (("okx", "BTC-USDT"), ("okx", "ETH-USDT-SWAP"), ("deribit", "ETH-PERPETUAL")):
            missing, extra, _ = _reconcile(lake, sim, venue, instrument)
            assert extra == set()
            gaps = gaps_for(lake, venue, instrument)
            assert "reconnect" in set(gaps["kind"].to_list())
            df = bronze_trades(lake, venue, instrument)
            first = int(df["exchange_ts"].min().timestamp() * 1000)
            last = int(df["exchange_ts"].max().timestamp() * 1000)
            truth = ground_truth(sim, venue, instrument, first, last)
            unexplained = [k for k in missing if not covered_by_gap(gaps, truth[k], k)]
            assert unexplained == [], f"{venue} {instrument}: trades lost without a gap record"


def test_silence_is_detected_as_stale_and_the_stream_reconnects(lake, tmp_path: Path) -> None:
    settings = replace(FAST, stale_after_secs=0.8, idle_ping_secs=0.4)
    with SimulatorThread(sim_config(silence_every_s=1.0, silence_for_s=2.0)) as sim:
        run = _stream(lake, sim, tmp_path, seconds=4.0, config=stream_config(settings, deribit=()))
    assert run.stats.stale >= 1 and run.stats.reconnects >= 1


def test_an_unwritable_lake_spools_and_recovers_without_loss(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the lake's parent folder should be: every write fails")
    lake = resolve_lake(str(blocker / "lake"))
    with SimulatorThread(sim_config()) as sim:
        threading.Timer(1.5, blocker.unlink).start()  # storage comes back while the stream runs
        run = _stream(lake, sim, tmp_path, seconds=4.0, config=stream_config(deribit=()))
        assert run.stats.spooled_rows > 0 and run.stats.replayed_rows == run.stats.spooled_rows
        assert not any((tmp_path / "spool").glob("0*/*.arrow"))
        for instrument in ("BTC-USDT", "ETH-USDT-SWAP"):
            missing, extra, _ = _reconcile(lake, sim, "okx", instrument)
            assert missing == set() and extra == set()


@pytest.mark.parametrize(
    ("venue", "names", "bad"),
    [
        ("okx", ("BTC-USDT", "NOPE-USDT"), "NOPE-USDT"),
        ("deribit", ("ETH-PERPETUAL", "ETH-1JAN20-1-C"), "ETH-1JAN20-1-C"),
        ("okx", ("BTC/USDT",), "BTC/USDT"),
    ],
)
def test_unknown_instruments_are_a_config_error_before_subscribing(lake, tmp_path: Path, venue, names, bad) -> None:
    cfg = stream_config(okx=names if venue == "okx" else (), deribit=names if venue == "deribit" else ())
    with SimulatorThread(sim_config()) as sim, pytest.raises(ConfigError) as err:
        _stream(lake, sim, tmp_path, seconds=1.0, config=cfg)
    assert bad in str(err.value) and f"stream.{venue}.instruments" in str(err.value)
    assert writer.open_table(lake, BRONZE_TRADES) is None  # nothing was streamed


def test_options_selection_lists_the_venue_options(tmp_path: Path) -> None:
    from pipeline.config import VenueStreamConfig
    from pipeline.ingest.instruments import resolve_instruments

    with SimulatorThread(sim_config()) as sim:
        names = resolve_instruments(
            VenueStreamConfig("deribit", "sim", "options:ETH", ("ETH-PERPETUAL",)), f"ws://127.0.0.1:{sim.port}"
        )
        expected = sorted(i.inst_id for i in sim.market.instruments("deribit") if i.market == "option")
    assert names == expected + ["ETH-PERPETUAL"]


def test_a_quiet_client_keeps_its_connection_by_pinging(lake, tmp_path: Path) -> None:
    """The simulator (like OKX) closes connections whose client sent nothing for idle_timeout_s, even while
    data flows; the collector's timer ping must keep the one connection alive for the whole run."""
    settings = replace(FAST, idle_ping_secs=0.5, stale_after_secs=5.0)
    with SimulatorThread(sim_config().with_changes(idle_timeout_s=1.5)) as sim:
        run = _stream(lake, sim, tmp_path, seconds=4.0, config=stream_config(settings, deribit=()))
    assert run.stats.reconnects == 0
    assert bronze_trades(lake, "okx", "BTC-USDT").height > 0


def test_830_deribit_options_times_two_channels_subscribe_and_stream(lake, tmp_path: Path) -> None:
    from pipeline.config import StreamConfig, VenueStreamConfig

    settings = replace(FAST, channels_per_connection=500, flush_interval_secs=1.0)
    config = StreamConfig(
        "test", settings, {"deribit": VenueStreamConfig("deribit", "sim", "options:ETH", (), ("trades", "quotes"))}
    )
    sim_cfg = sim_config().with_changes(deribit_options=830, trade_rate_per_instrument_per_s=10)
    with SimulatorThread(sim_cfg) as sim:
        seen: dict = {}

        def on_stats(stats, line) -> None:  # noqa: ANN001 - sample the venue's view while connected
            seen.update(sim.call(lambda: sim.ctx.hubs["deribit"].state()))

        run = _stream(
            lake,
            sim,
            tmp_path,
            seconds=5.0,
            config=replace(config, settings=replace(settings, stats_interval_secs=3.0)),
            on_stats=on_stats,
        )
    assert len(run.instruments["deribit"]) == 830 and run.connections == 4
    assert seen["channels"] == 1660 and seen["connections"] == 4
    trades = writer.read(lake, BRONZE_TRADES)
    quotes = writer.read(lake, BRONZE_QUOTES)
    assert trades["instrument"].n_unique() > 50 and set(trades["market"].unique().to_list()) == {"option"}
    assert quotes["instrument"].n_unique() == 830
    assert run.stats.venue_errors == 0 and run.stats.rejects == 0
