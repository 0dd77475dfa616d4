"""OKX's tick-by-tick books need a logged-in connection (issue #15): the credentials come from the environment,
the login is signed as OKX documents it (checked here against an HMAC computed in the test), the stream logs in
only the connections that carry a login channel and subscribes after the login's answer; against the simulator
over 127.0.0.1, a good key streams ``books-l2-tbt`` into bronze/book_deltas, a wrong one is refused by name with
no book rows while the public connection goes on."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import websockets

from pipeline.config import StreamConfig, VenueStreamConfig
from pipeline.errors import ConfigError
from pipeline.ingest.plan import plan_connections
from pipeline.ingest.stream import StreamRun, run_stream
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_TRADES
from pipeline.simulator import SimConfig, SimulatorThread
from pipeline.simulator import okx_login as sim_login
from pipeline.venues import get_venue, okx, okx_login
from pipeline.venues.base import ParsedBatch, Subscription
from tests.ingest.streamkit import FAST

pytestmark = pytest.mark.timeout(120)

TBT, TRADES = "BTC-USDT-SWAP", "ETH-USDT"  # both stream trades and books-l2-tbt


def _set(monkeypatch: pytest.MonkeyPatch, key: str | None, secret: str | None, passphrase: str | None) -> None:
    for name, value in zip(okx_login.ENV_VARS, (key, secret, passphrase), strict=True):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_the_login_request_is_signed_as_okx_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, "k-1", "s3cret", "pass phrase")
    assert okx.login_frame([Subscription("trades", "BTC-USDT"), Subscription("book", "BTC-USDT")]) is None
    frame = json.loads(okx.login_frame([Subscription("book_tbt", TBT)]) or "{}")
    assert frame["op"] == "login" and len(frame["args"]) == 1
    arg = frame["args"][0]
    want = hmac.new(b"s3cret", f"{arg['timestamp']}GET/users/self/verify".encode(), hashlib.sha256).digest()
    assert arg == {"apiKey": "k-1", "passphrase": "pass phrase", "timestamp": arg["timestamp"],
                   "sign": base64.b64encode(want).decode()}  # fmt: skip
    assert arg["timestamp"].isdigit()
    creds = okx_login.credentials_from_env()
    assert creds is not None and "s3cret" not in repr(creds) and "pass phrase" not in repr(creds)
    assert okx.venue_channel(Subscription("book_tbt", TBT)) == "books-l2-tbt"
    # the login channels get connections of their own: a refused login stops only them
    plans = plan_connections(get_venue("okx"), "ws://127.0.0.1:1", [TBT, TRADES], ["trades", "book_tbt"], 100)
    assert {p.name: {s.channel for s in p.subs} for p in plans} == {
        "okx/ws/v5/public#0": {"trades"}, "okx/ws/v5/public+login#1": {"book_tbt"}
    }  # fmt: skip
    # the simulator accepts exactly its own key set
    good = okx_login.Credentials(sim_login.API_KEY, sim_login.SECRET, sim_login.PASSPHRASE)
    assert sim_login.check(json.loads(okx_login.login_request(good))["args"]) is None
    bad = replace(good, secret="other")
    assert sim_login.check(json.loads(okx_login.login_request(bad))["args"]) == ("60007", "Invalid sign")
    late = json.loads(okx_login.login_request(good, now_s=1_000_000))["args"]
    assert sim_login.check(late)[0] == "60004"  # type: ignore[index]


def test_missing_or_partial_credentials_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, None, None, None)
    for channel in ("book_tbt", "book50_tbt"):
        with pytest.raises(ConfigError) as refused:
            okx.subscribe_frames([Subscription(channel, TBT)], 1)
        assert refused.value.key == "stream.okx.channels"
        assert all(name in str(refused.value) for name in okx_login.ENV_VARS) and 'use "book"' in str(refused.value)
    _set(monkeypatch, "k-1", None, "p")
    with pytest.raises(ConfigError) as partial:
        okx.venue_channel(Subscription("book_tbt", TBT))
    assert partial.value.key == "OKX_API_SECRET" and "partly set" in str(partial.value)


def _stream(lake: Lake, sim: SimulatorThread, tmp_path: Path, seconds: float) -> StreamRun:
    okx_venue = VenueStreamConfig("okx", "sim", (TBT, TRADES), (), ("trades", "book_tbt"))
    config = StreamConfig(name="login", settings=FAST, venues={"okx": okx_venue})

    async def main() -> StreamRun:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await run_stream(lake, config, sim_ws_url=f"ws://127.0.0.1:{sim.port}", stop=stop,
                                spool_dir=tmp_path / "spool", handle_signals=False)  # fmt: skip

    return asyncio.run(main())


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    config = SimConfig(port=0, seed=5, okx_instruments=4, deribit_options=2, trade_rate_per_instrument_per_s=5)
    with SimulatorThread(config) as s:
        yield s


def _rows(lake: Lake, spec, channel: str | None = None) -> pl.DataFrame:
    df = writer.read(lake, spec)
    return df if channel is None else df.filter(pl.col("channel") == channel)


def test_with_the_key_the_stream_logs_in_and_keeps_every_tbt_message(
    sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, sim_login.API_KEY, sim_login.SECRET, sim_login.PASSPHRASE)
    lake = Lake(str(tmp_path / "lake"))
    run = _stream(lake, sim, tmp_path, 3.0)
    books = _rows(lake, BRONZE_BOOK_DELTAS, "books-l2-tbt")
    assert set(books["instrument"]) == {TBT, TRADES} and run.stats.venue_errors == 0
    for inst in (TBT, TRADES):  # one chain each, from a snapshot, unbroken: prev_seq is the last message's seq
        seqs = books.filter(pl.col("instrument") == inst).unique(["seq"]).sort("seq").select("seq", "prev_seq")
        assert seqs.height > 1 and seqs["prev_seq"][0] == -1
        assert seqs["prev_seq"].to_list()[1:] == seqs["seq"].to_list()[:-1]
    assert set(_rows(lake, BRONZE_TRADES)["instrument"]) == {TBT, TRADES}


def test_a_wrong_secret_is_refused_by_name_and_the_public_connection_goes_on(
    sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _set(monkeypatch, sim_login.API_KEY, "not-the-secret", sim_login.PASSPHRASE)
    lake = Lake(str(tmp_path / "lake"))
    refused_before = sim.call(lambda: sim.ctx.counters["okx_login_refused"])
    with caplog.at_level(logging.INFO, logger="pipeline"):
        run = _stream(lake, sim, tmp_path, 3.0)
    assert "refused the login: 60007 Invalid sign" in caplog.text
    assert "not-the-secret" not in caplog.text and sim_login.PASSPHRASE not in caplog.text
    assert sim.call(lambda: sim.ctx.counters["okx_login_refused"]) > refused_before
    assert run.stats.venue_errors >= 1
    assert _rows(lake, BRONZE_BOOK_DELTAS).height == 0  # the login connection never subscribed
    assert set(_rows(lake, BRONZE_TRADES)["instrument"]) == {TBT, TRADES}  # on their own public connection


def test_the_simulator_refuses_a_nan_timestamp_and_a_non_ascii_sign() -> None:
    good = json.loads(okx_login.login_request(okx_login.Credentials(sim_login.API_KEY, sim_login.SECRET,
                                                                    sim_login.PASSPHRASE)))["args"][0]  # fmt: skip
    assert sim_login.check([good]) is None
    assert sim_login.check([{**good, "timestamp": "nan"}]) == ("60004", "Invalid timestamp: nan")
    assert sim_login.check([{**good, "sign": "é" + good["sign"][1:]}]) == ("60007", "Invalid sign")
    assert sim_login.check([{**good, "apiKey": "someone-else"}]) == ("60005", "Invalid OK-ACCESS-KEY")


def test_a_login_counts_against_the_hourly_request_limit() -> None:
    """OKX counts login like subscribe: with a limit of 1 request an hour, the subscribe after a login is refused."""
    config = SimConfig(port=0, seed=5, okx_instruments=2, deribit_options=2, subscribe_requests_per_hour=1)
    creds = okx_login.Credentials(sim_login.API_KEY, sim_login.SECRET, sim_login.PASSPHRASE)

    async def main(url: str) -> list[dict]:
        async with asyncio.timeout(30), websockets.connect(url) as ws:
            await ws.send(okx_login.login_request(creds))
            answers = [json.loads(await ws.recv())]
            await ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "books-l2-tbt", "instId": TBT}]}))
            answers.append(json.loads(await ws.recv()))
            return answers

    with SimulatorThread(config) as s:
        login, subscribe = asyncio.run(main(s.okx_ws_url("public")))
    assert login["event"] == "login" and login["code"] == "0"
    assert subscribe["event"] == "error" and subscribe["code"] == "60014"
    # the collector takes that answer to its login as a refusal (then backs off) rather than waiting it out
    control = okx.parse(json.dumps(subscribe), 0, ParsedBatch())
    assert control is not None and okx.login_outcome(control) is False
