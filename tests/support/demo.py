"""`make demo`: the whole lifecycle on the embedded defaults, told as a story.

1. A source system drops 60 days of loan applications and outcomes (drift from day 45).
2. The first 40 days are backfilled through raw, bronze, silver, gold and Feast.
3. A model is trained, gated, registered and deployed behind a local Seldon endpoint.
4. The next 20 days run as production: traffic, inference log, a drift report per day.
5. The drift sensor reads the reports and launches retraining; the new candidate is gated.
A readable summary ends the run and the same summary lands in <data root>/demo_summary.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class Story:
    def __init__(self):
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def step(self, name: str, what: str):
        print(f"\n\033[1m▶ {what}\033[0m", flush=True)
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 1)
        print(f"  done in {self.timings[name]:.1f}s", flush=True)


def _run_ok(result, what: str) -> None:
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_step_failure]
        raise SystemExit(f"demo stopped: {what} failed\n" + "\n".join(failures[:3]))


def _materializations(result) -> dict[str, dict]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def _checks(result) -> dict[str, dict]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            out[check.check_name] = {"passed": check.passed, "description": check.description}
    return out


def run(days: int, rows_per_day: int, drift_day: int, history_days: int, seed: int,
        keep_serving: bool) -> dict:
    import warnings

    import dagster as dg

    from jobs.use_case_jobs import daily_job_name, promote_job_name, retrain_job_name
    from lakeloop import keys
    from lakeloop.definitions import build_definitions
    from lakeloop.instance import prepare_environment
    from lakeloop.partitions import RANGE_END, RANGE_START
    from lakeloop.profiling import PeakMemory, step_seconds
    from lakeloop.settings import Settings
    from lakeloop.usecase import load_use_cases
    from sensors.drift import sensor_name
    from sensors.performance import sensor_name as performance_sensor_name
    from tests.support.demo_data import DemoSpec, generate

    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    warnings.filterwarnings("ignore", message=".*noload.*")
    settings = Settings.from_env()
    prepare_environment(settings)
    use_case = next((u for u in load_use_cases(settings.use_case_dirs)
                     if u.name == "credit_risk"), None)
    if use_case is None:
        raise SystemExit("the demo tells the credit_risk story: its use-case file is missing")
    spec = DemoSpec(start=use_case.start_date, days=days, rows_per_day=rows_per_day,
                    drift_day=drift_day, seed=seed)
    _reset(settings)
    story = Story()
    summary: dict = {"data_root": str(settings.data_root), "use_case": use_case.name}
    with PeakMemory() as memory:
        with story.step("demo_data", f"Generating {days} days of demo snapshots "
                        f"(drift from {spec.drift_date})"):
            marker = settings.landing_dir(use_case.name, ".demo.json")
            wanted = json.dumps({"spec": repr(spec)})
            if not marker.exists() or marker.read_text() != wanted:
                counts = generate(settings.data_root / "landing", spec, use_case.name)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(wanted)
            else:
                counts = {"note": "already generated"}
            print(f"  {counts}")
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.get()
        all_days = [(spec.start + dt.timedelta(d)).isoformat() for d in range(days)]
        history, production = all_days[:history_days], all_days[history_days:]
        resources = defs.resources
        run_ids: list[str] = []

        with story.step("backfill", f"Backfilling {history[0]} .. {history[-1]} through raw, "
                        "bronze, silver, gold and Feast (one Spark run)"):
            selection = dg.AssetSelection.groups(keys.group(use_case, keys.RAW),
                                                 keys.group(use_case, keys.LAKEHOUSE),
                                                 keys.group(use_case, keys.FEATURES))
            result = dg.materialize(list(defs.assets), selection=selection, resources=resources,
                                    instance=instance, run_config=QUIET,
                                    tags={RANGE_START: history[0], RANGE_END: history[-1]})
            _run_ok(result, "the backfill")
            run_ids.append(result.run_id)

        with story.step("train_deploy", "Training, gating and registering the first model; "
                        "approving it; promoting and deploying it"):
            result = defs.resolve_job_def(retrain_job_name(use_case)).execute_in_process(
                instance=instance, run_config=QUIET, raise_on_error=False)
            _run_ok(result, "training")
            run_ids.append(result.run_id)
            mats, checks = _materializations(result), _checks(result)
            first_model = mats[keys.key(use_case, keys.TRAINING, "candidate_model")
                               .to_user_string()]
            summary["first_model"] = _model_summary(first_model, checks)
            version = first_model["model_version"]
            print(f"  model v{version}: recall {first_model['test_recall']:.3f}, AUC "
                  f"{first_model['test_auc']:.3f}; every gate passed; challenger")
            summary["first_model"]["approval"] = _approve(defs, instance, use_case, version)
            result = defs.resolve_job_def(promote_job_name(use_case)).execute_in_process(
                instance=instance, run_config=QUIET, raise_on_error=False)
            _run_ok(result, "promotion and deployment")
            run_ids.append(result.run_id)
            deployment = _materializations(result)[
                keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment").to_user_string()]
            print(f"  champion v{version} serving at {deployment['endpoint']}")

        with story.step("production", f"Running production days {production[0]} .. "
                        f"{production[-1]}: traffic, inference log, drift, performance and "
                        "fairness reports"):
            before = _latest_storage_id(instance, keys.key(use_case, keys.MONITORING,
                                                           "drift_report"))
            result = defs.resolve_job_def(daily_job_name(use_case)).execute_in_process(
                instance=instance, run_config=QUIET, raise_on_error=False,
                tags={RANGE_START: production[0], RANGE_END: production[-1]})
            _run_ok(result, "the production days")
            run_ids.append(result.run_id)
            drift = _drift_by_day(instance, keys.key(use_case, keys.MONITORING,
                                                     "drift_report"), production)
            drifted = [d for d, v in drift.items() if v["drifted"]]
            summary["drift"] = {"days": len(drift), "drifted_days": drifted,
                                "alpha": use_case.monitoring.drift.alpha,
                                "by_day": drift}
            print(f"  drifted days: {len(drifted)} of {len(drift)}"
                  + (f" (first: {drifted[0]})" if drifted else ""))

        with story.step("retraining", "The drift and performance sensors read the reports; "
                        "a retrained candidate is gated, approved and rolled out as a canary"):
            sensor = defs.resolve_sensor_def(sensor_name(use_case))
            context = dg.build_sensor_context(instance=instance, definitions=defs,
                                              resources=defs.resources,
                                              cursor=json.dumps({"storage_id": before}))
            tick = sensor(context)
            requests = list(tick.run_requests or [])
            summary["retraining"] = {"requested": len(requests), "runs": []}
            for request in requests:
                print(f"  retraining requested: {request.tags.get('lakeloop/reason')}")
                result = defs.resolve_job_def(retrain_job_name(use_case)).execute_in_process(
                    instance=instance, run_config=QUIET, raise_on_error=False,
                    tags={**request.tags, "dagster/sensor_name": sensor.name,
                          "dagster/run_key": request.run_key or ""})
                run_ids.append(result.run_id)
                mats, checks = _materializations(result), _checks(result)
                model = mats.get(keys.key(use_case, keys.TRAINING, "candidate_model")
                                 .to_user_string(), {})
                run_summary = {"run_id": result.run_id, "reason": request.tags.get(
                    "lakeloop/reason"), "success": result.success,
                    **(_model_summary(model, checks) if model else {})}
                summary["retraining"]["runs"].append(run_summary)
                print(f"  retrained model v{model.get('model_version')}: gates "
                      f"{'passed' if run_summary.get('gates_passed') else 'failed'}")
                if result.success and run_summary.get("gates_passed"):
                    version = model["model_version"]
                    run_summary["approval"] = _approve(defs, instance, use_case, version)
                    promoted = defs.resolve_job_def(promote_job_name(use_case)) \
                        .execute_in_process(instance=instance, run_config=QUIET,
                                            raise_on_error=False)
                    run_ids.append(promoted.run_id)
                    run_summary["promoted"] = promoted.success
                    run_summary["rollout"] = _rollout_summary(mlflow_resource(defs), use_case,
                                                              version)
                    checks_text = ", ".join(
                        f"{c['name']} {c['value']:.3g}" for c in
                        run_summary["rollout"].get("checks", []))
                    print(f"  rollout ({use_case.rollout.strategy}, "
                          f"{use_case.rollout.canary_traffic}% of replayed traffic): "
                          f"{checks_text}")
                    print(f"  v{version} validated and promoted to champion"
                          if promoted.success else
                          f"  v{version} was rolled back: {_failure(promoted)}")
            if not requests:
                print(f"  no retraining: {tick.skip_message}")
            perf = defs.resolve_sensor_def(performance_sensor_name(use_case))
            perf_tick = perf(dg.build_sensor_context(instance=instance, definitions=defs,
                                                    resources=defs.resources))
            perf_requests = list(perf_tick.run_requests or [])
            summary["performance_sensor"] = {
                "requested": [r.tags.get("lakeloop/reason") for r in perf_requests],
                "launched": False}
            for r in perf_requests:
                print(f"  the performance sensor also saw: {r.tags.get('lakeloop/reason')}")
            if not perf_requests:
                skip = perf_tick.skip_reason
                print(f"  the performance sensor: {getattr(skip, 'skip_message', skip)}")

        with story.step("summary", "Reading back the tables, the registry and the endpoint"):
            summary.update(_final_state(defs, use_case, resources))
            if not keep_serving:
                summary["stopped_endpoints"] = resources["serving"].stop_all()
                if resources["feast"].stop_feature_server():
                    summary["stopped_endpoints"].append("feature-server")
    summary["timings_s"] = story.timings
    summary["asset_seconds"] = step_seconds(instance, run_ids)
    summary["jvm_starts"] = len(memory.jvm_pids)
    summary["total_s"] = round(time.perf_counter() - story.started, 1)
    summary["peak_memory_gib"] = round(memory.peak_gib, 2)
    out = settings.data_root / "demo_summary.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    _print_summary(summary, out)
    return summary


def _reset(settings) -> None:
    """The demo tells its story from the start every time: running services stop and every
    table, model, report and Dagster run of the data root goes; the landed snapshot files
    (the source system's data), the Dagster instance's configuration and the local secrets
    (the approval-signing key set-up generated) stay."""
    from lakeloop.resources import build_resources

    resources = build_resources(settings)
    resources["serving"].stop_all()
    resources["feast"].stop_feature_server()
    root = settings.data_root
    keep = {root / "landing", root / "secrets", settings.dagster_home / "dagster.yaml"}
    for path in sorted(root.glob("*")):
        if path == settings.dagster_home:
            for inner in path.glob("*"):
                if inner not in keep:
                    shutil.rmtree(inner) if inner.is_dir() else inner.unlink()
        elif path not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"  starting from a clean data root ({root}; landed files kept)")


def mlflow_resource(defs):
    return defs.resources["mlflow"]


def _rollout_summary(mlflow, use_case, version) -> dict:
    tags = mlflow.client().get_model_version(use_case.name, str(version)).tags
    return json.loads(tags["rollout"]) if "rollout" in tags else {}


def _failure(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return str(event.event_specific_data.error.message).strip().splitlines()[-1]
    return "unknown"


def _approve(defs, instance, use_case, version: int) -> dict:
    """A sensitive use case needs a person's approval; the demo records one on your behalf,
    through the same approval job a person launches from the UI."""
    if not use_case.sensitive:
        return {"required": False}
    config = {"ops": {f"{use_case.name}__record_approval": {"config": {
        "version": int(version), "decision": "approved", "by": "demo operator (make demo)",
        "reason": "make demo approves on your behalf; in real life a person reviews the "
                  "model card first"}}}}
    result = defs.resolve_job_def(f"{use_case.name}_approval").execute_in_process(
        instance=instance, run_config={**QUIET, **config}, raise_on_error=False)
    _run_ok(result, "the approval")
    print(f"  v{version} approved by the demo operator (sensitive use case: a recorded "
          "approval is required)")
    return {"required": True, "by": "demo operator (make demo)", "run_id": result.run_id}


GATES = ("performance_gate", "fairness_gate", "no_regression_gate", "reproducibility_gate",
         "onnx_parity_gate")


def _model_summary(model: dict, checks: dict) -> dict:
    gates = {name: check["passed"] for name, check in checks.items() if name in GATES}
    return {
        "model_version": model.get("model_version"),
        "test_recall": model.get("test_recall"),
        "test_auc": model.get("test_auc"),
        "decision_threshold": model.get("decision_threshold"),
        "mlflow_run": model.get("mlflow_run"),
        "gates": {name: checks[name]["description"] for name in gates},
        "gates_passed": len(gates) == len(GATES) and all(gates.values()),
    }


def _latest_storage_id(instance, key) -> int:
    result = instance.fetch_materializations(key, limit=1)
    return result.records[0].storage_id if result.records else 0


def _drift_by_day(instance, key, days: list[str]) -> dict[str, dict]:
    import dagster as dg

    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=days), limit=len(days) * 4)
    out: dict[str, dict] = {}
    for record in sorted(result.records, key=lambda r: r.storage_id):
        mat = record.asset_materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        out[mat.partition] = {"drift_share": meta["drift_share"], "drifted": meta["drifted"],
                              "verdict": meta.get("verdict"),
                              "report": meta.get("report_path")}
    return dict(sorted(out.items()))


def _final_state(defs, use_case, resources) -> dict:
    from lakeloop.deployment.runtime import Runtime, ensure_champion, sample_instance
    from lakeloop.deployment.serving import score
    from lakeloop.lakehouse.tables import is_delta_table, last_commit
    from lakeloop.tracking import CHALLENGER, CHAMPION

    spark = resources["spark"].session()
    lakehouse = resources["lakehouse"]
    tables = []
    for asset_key in sorted(defs.resolve_all_asset_keys(), key=lambda k: k.path):
        path = lakehouse.table(asset_key)
        if asset_key.path[0] == use_case.name and is_delta_table(path):
            rows = spark.read.format("delta").load(str(path)).count()
            tables.append({"table": asset_key.to_user_string(), "rows": rows,
                           "delta_version": last_commit(spark, path).version})
    mlflow = resources["mlflow"]
    aliases = {}
    for alias in (CHAMPION, CHALLENGER):
        version = mlflow.version_by_alias(use_case.name, alias)
        aliases[alias] = int(version.version) if version else None
    endpoint, predictor = ensure_champion(Runtime(use_case, resources["serving"], mlflow,
                                                  lakehouse, resources["feast"]))
    instance = sample_instance(resources["spark"].session(), lakehouse, use_case)
    answer = score(endpoint.url, [instance])
    return {
        "tables": tables,
        "registry": {"model": use_case.name, "aliases": aliases},
        "endpoint": {"url": endpoint.predictions_url, "model_version": endpoint.model_version,
                     "request": instance,
                     "response": answer["data"]},
    }


def _print_summary(summary: dict, path: Path) -> None:
    bold = "\033[1m{}\033[0m".format
    print("\n" + bold("Lakeloop demo summary") + f"  ({summary['total_s']:.0f}s, peak memory "
          f"{summary['peak_memory_gib']:.1f} GiB)")
    print(bold("\nTables (Delta)"))
    for t in summary["tables"]:
        print(f"  {t['table']:<52} {t['rows']:>8} rows   v{t['delta_version']}")
    first = summary["first_model"]
    print(bold("\nFirst model"))
    print(f"  v{first['model_version']}  recall {first['test_recall']:.3f}  AUC "
          f"{first['test_auc']:.3f}  threshold {first['decision_threshold']:.4f}")
    for name, text in first["gates"].items():
        print(f"  {name}: {text}")
    print(bold("\nServing"))
    endpoint = summary["endpoint"]
    prob, pred = endpoint["response"]["ndarray"][0]
    print(f"  {endpoint['url']} (model v{endpoint['model_version']}) answered probability "
          f"{prob:.4f}, prediction {pred}")
    drift = summary["drift"]
    print(bold("\nMonitoring"))
    print(f"  {len(drift['drifted_days'])} of {drift['days']} production days drifted "
          f"(judged at a false-alarm rate of {drift['alpha']:.0%} a day)"
          + (f"; first on {drift['drifted_days'][0]}" if drift["drifted_days"] else ""))
    retraining = summary["retraining"]
    print(bold("\nRetraining"))
    if not retraining["runs"]:
        print("  none requested")
    for run in retraining["runs"]:
        print(f"  launched: {run['reason']}")
        if run.get("model_version"):
            print(f"  candidate v{run['model_version']}: recall {run['test_recall']:.3f}, AUC "
                  f"{run['test_auc']:.3f}, gates {'passed' if run['gates_passed'] else 'failed'}")
        rollout = run.get("rollout") or {}
        if rollout:
            print(f"  rollout ({rollout['strategy']}): "
                  + ", ".join(f"{c['name']} {'ok' if c['passed'] else 'FAILED'}"
                              for c in rollout["checks"])
                  + (" -> promoted to champion" if run.get("promoted") else " -> rolled back"))
    print(bold("\nSlowest assets") + f" (Spark JVMs started: {summary['jvm_starts']})")
    for step, seconds in list(summary["asset_seconds"].items())[:6]:
        print(f"  {step:<52} {seconds:>6.1f}s")
    print(bold("\nRegistry aliases: ") + ", ".join(
        f"{k} = v{v}" if v else f"{k} unset" for k, v in summary["registry"]["aliases"].items()))
    print(f"\nSummary written to {path}\nOpen the Dagster UI on this state with: make dev\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from tests.support.demo_data import DemoSpec

    spec = DemoSpec()
    parser.add_argument("--days", type=int, default=spec.days)
    parser.add_argument("--rows-per-day", type=int, default=spec.rows_per_day)
    parser.add_argument("--drift-day", type=int, default=spec.drift_day)
    parser.add_argument("--history-days", type=int, default=40)
    parser.add_argument("--seed", type=int, default=spec.seed)
    parser.add_argument("--keep-serving", action="store_true",
                        help="leave the endpoints running after the demo")
    args = parser.parse_args(argv)
    if not 0 < args.history_days < args.days:
        parser.error("--history-days must be between 1 and --days - 1")
    run(args.days, args.rows_per_day, args.drift_day, args.history_days, args.seed,
        args.keep_serving)
    return 0


if __name__ == "__main__":
    sys.exit(main())
