"""Incremental publishes: byte-identical to a full rebuild, holes aligned, atomic versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.gold import publish_qlib
from pipeline.gold.verify import qlib_init
from tests.gold.gold_synthetic import candles, write


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _first_history(lake):
    write(
        lake,
        candles("BTC-USDT-SWAP", "1d", range(0, 10), seed=1),
        candles("ETH-USDT-SWAP", "1d", range(0, 7), seed=2),  # trailing hole before the next day
        candles("BTC-USDT-SWAP", "1m", range(0, 60), seed=3),
        candles("ETH-USDT-SWAP", "1m", [0, 1, 2, 30], seed=4),
        candles("BTC-USDT-SWAP", "1h", range(0, 24), seed=5),
    )


def _next_bars(lake):
    write(
        lake,
        candles("BTC-USDT-SWAP", "1d", [10], seed=11),
        candles("ETH-USDT-SWAP", "1d", [10, 11], seed=12),  # resumes after a 3-day hole
        candles("BTC-USDT-SWAP", "1m", range(60, 120), seed=13),
        candles("ETH-USDT-SWAP", "1m", [119], seed=14),
        candles("SOL-USDT-SWAP", "1m", [100, 101], seed=15),  # listed today
        candles("BTC-USDT-SWAP", "1h", [24, 25], seed=16),
    )


def test_incremental_equals_full_rebuild_byte_for_byte(lake, tmp_path):
    _first_history(lake)
    first = publish_qlib(lake, gold_dir=tmp_path / "inc").datasets[0]
    _next_bars(lake)
    second = publish_qlib(lake, gold_dir=tmp_path / "inc").datasets[0]
    rebuilt = publish_qlib(lake, gold_dir=tmp_path / "full").datasets[0]
    assert (first.mode, second.mode, rebuilt.mode) == ("full", "incremental", "full")
    assert second.bars == {"day": 3, "1min": 63, "60min": 2}  # only the new bars were read
    inc, full = _tree(second.path.resolve()), _tree(rebuilt.path.resolve())
    assert inc.keys() == full.keys()
    assert [k for k in inc if inc[k] != full[k]] == []
    # Holes stay aligned: ETH day resumes at slot 10 after NaN padding for 7, 8, 9.
    eth = np.frombuffer(inc["features/eth-usdt-swap/close.day.bin"], dtype="<f4")
    assert eth[0] == 0 and len(eth) == 1 + 12 and np.isnan(eth[1 + 7 : 1 + 10]).all() and not np.isnan(eth[1 + 10])
    # Nothing new: no new version.
    assert publish_qlib(lake, gold_dir=tmp_path / "inc").datasets[0].mode == "unchanged"


def test_old_version_keeps_reading_its_own_data(lake, tmp_path):
    from qlib.data import D

    _first_history(lake)
    first = publish_qlib(lake, gold_dir=tmp_path).datasets[0]
    qlib_init(first.path)  # resolves the symlink: this reader is pinned to version 1
    before = D.features(["BTC-USDT-SWAP", "ETH-USDT-SWAP"], ["$close"], freq="1min")
    _next_bars(lake)
    second = publish_qlib(lake, gold_dir=tmp_path).datasets[0]
    assert second.version_dir != first.version_dir and first.version_dir.is_dir()
    # The live link points to the new version; the pinned reader still sees exactly the old dataset.
    assert first.path.resolve() == second.version_dir
    from qlib.data.cache import H

    H.clear()
    again = D.features(["BTC-USDT-SWAP", "ETH-USDT-SWAP"], ["$close"], freq="1min")
    assert again.equals(before) and len(before) == 60 + 31


def test_leftovers_of_an_interrupted_publish_do_not_leak(lake, tmp_path):
    _first_history(lake)
    live = publish_qlib(lake, gold_dir=tmp_path / "inc").datasets[0].version_dir
    # A crash after appending to a shared file leaves bytes past the live calendar, and a tmp folder.
    with open(live / "features" / "btc-usdt-swap" / "close.1min.bin", "ab") as fp:
        fp.write(np.arange(7, dtype="<f4").tobytes())
    (live.parent / ".v000002.tmp").mkdir()
    _next_bars(lake)
    second = publish_qlib(lake, gold_dir=tmp_path / "inc").datasets[0]
    rebuilt = publish_qlib(lake, gold_dir=tmp_path / "full").datasets[0]
    assert _tree(second.version_dir) == _tree(rebuilt.version_dir)
    assert not (live.parent / ".v000002.tmp").exists()


def test_late_bars_force_a_full_rebuild(lake, tmp_path):
    _first_history(lake)
    publish_qlib(lake, gold_dir=tmp_path / "g")
    write(lake, candles("ETH-USDT-SWAP", "1m", [10], seed=21))  # a bar inside published history
    late = publish_qlib(lake, gold_dir=tmp_path / "g").datasets[0]
    assert late.mode == "full"
    close = np.frombuffer((late.version_dir / "features/eth-usdt-swap/close.1min.bin").read_bytes(), dtype="<f4")
    assert close[1 + 10] == np.float32(candles("ETH-USDT-SWAP", "1m", [10], seed=21).column("close")[0].as_py())
