"""The gold flow: publish silver/candles as Qlib datasets, then read a sample back through Qlib.

Two coarse tasks per run (publish, read back per dataset). A contract failure before writing, or a
read-back that differs from silver, fails the run and raises ``cryptolake.contract.failed``.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.alerts import emit_contract_failure
from pipeline.backtest.config import load_workflow
from pipeline.gold import GoldContractError, PublishReport, publish_qlib, read_back
from pipeline.gold.calendar import ALL_FREQS
from pipeline.gold.report import publish_rows
from pipeline.lake.location import resolve_lake


@task(name="publish-qlib")
def publish_task(
    lake: str | None, datasets: list[str] | None, freqs: list[str], gold_dir: str | None, full: bool, keep_versions: int
) -> PublishReport:
    return publish_qlib(
        resolve_lake(lake), datasets=datasets, freqs=freqs, gold_dir=gold_dir, full=full, keep_versions=keep_versions
    )


@task(name="read-back")
def read_back_task(
    lake: str | None, report: PublishReport, sample_instruments: int, sample_bars: int
) -> list[dict[str, object]]:
    """Compare a spread of instruments over the last slots of every frequency with silver."""
    from pipeline.gold.state import Manifest

    target = resolve_lake(lake)
    results = []
    for d in report.datasets:
        manifest = Manifest.load(d.version_dir)
        if manifest is None:
            continue
        everyone = sorted({n for s in manifest.freqs.values() for n in s.series})
        step = max(1, len(everyone) // max(1, sample_instruments))
        chosen = everyone[::step][:sample_instruments]
        res = read_back(
            target,
            d.path,
            dataset=d.dataset,
            venue=manifest.venue,
            market=manifest.market,
            freqs=tuple(manifest.freqs),
            instruments=chosen,
            last_bars=sample_bars,
        )
        if not res.ok:
            emit_contract_failure(
                table=f"gold/qlib/{d.dataset}",
                rule="read back through Qlib equals silver",
                failed_rows=res.mismatched,
                total_rows=res.checked_bars,
                sample=res.sample,
                fatal=True,
            )
            raise GoldContractError(
                f"gold/qlib/{d.dataset}", {"read back equals silver": res.mismatched}, res.checked_bars, res.sample
            )
        results.append({"dataset": d.dataset, "checked_bars": res.checked_bars, "instruments": len(chosen)})
    return results


@flow(name="gold", log_prints=True)
def gold_flow(
    lake: str | None = None,
    datasets: list[str] | None = None,
    freqs: list[str] | None = None,
    gold_dir: str | None = None,
    full: bool = False,
    workflow_path: str | None = None,
) -> dict[str, object]:
    """Publish every (or the named) venue-market dataset; incremental when the live version allows."""
    logger = get_run_logger()
    gold_cfg = load_workflow(workflow_path).get("gold", {})
    freqs = freqs or list(gold_cfg.get("freqs", ALL_FREQS))
    try:
        report = publish_task(lake, datasets, freqs, gold_dir, full, int(gold_cfg.get("keep_versions", 3)))
    except GoldContractError as exc:
        for rule, count in exc.rules.items():
            emit_contract_failure(
                table=exc.table, rule=rule, failed_rows=count, total_rows=exc.total_rows, sample=exc.sample, fatal=True
            )
        raise
    logger.info("published:\n%s", report.summary())
    checked = read_back_task(
        lake, report, int(gold_cfg.get("sample_instruments", 5)), int(gold_cfg.get("sample_bars", 2000))
    )
    create_table_artifact(
        key="gold-publish",
        table=publish_rows(report, checked),
        description=f"gold publish of silver v{report.silver_version}: datasets, bars, calendars, provider_uri, "
        "and the sample read back through Qlib (a mismatch fails the run before this table)",
    )
    return {
        "silver_version": report.silver_version,
        "datasets": [d.dataset for d in report.datasets],
        "modes": {d.dataset: d.mode for d in report.datasets},
        "read_back": checked,
    }
