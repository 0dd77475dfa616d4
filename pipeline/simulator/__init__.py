"""Exchange simulator: real OKX v5 and Deribit v2 protocols on one loopback port.

from pipeline.simulator import SimConfig, SimulatorThread, start_simulator, run_simulator
"""

from pipeline.simulator.config import SimConfig
from pipeline.simulator.faults import Counters, Faults, FaultSettings
from pipeline.simulator.market import Market
from pipeline.simulator.records import SimInstrument, SimQuote, SimTrade
from pipeline.simulator.server import RunningSimulator, SimulatorThread, run_simulator, start_simulator

__all__ = [
    "Counters",
    "FaultSettings",
    "Faults",
    "Market",
    "RunningSimulator",
    "SimConfig",
    "SimInstrument",
    "SimQuote",
    "SimTrade",
    "SimulatorThread",
    "run_simulator",
    "start_simulator",
]
