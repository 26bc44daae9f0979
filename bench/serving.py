"""Serving: the deployed endpoint against in-process prediction, in the same run.

Set-up: the graph materialised on small generated data up to the SeldonDeployment (one
Spark run), so the endpoint serves a real registered model with real Feast features.
Measured, for one applicant: p50/p99 latency at concurrency 1 and requests per second at
concurrency 8, for (a) the whole graph (executor -> feature transformer with its Feast
lookup -> model), (b) the model microservice alone (feature row in, no lookup) and
(c) in-process `inplace_predict` on the same row (the peer). Targets: the model wrapper adds
under 2 ms p50 at concurrency 1; at least 500 requests/s at concurrency 8, model alone; the
whole graph at most 3.5 ms p50 and 7 ms p99, at least 400 requests/s at concurrency 8, beside
its floor: one process reading Feast's online store (SDK) and calling ``inplace_predict``.
Reason codes (a request with ``meta.tags.explain``): the p50 they add to the model alone
(explained and plain requests sent in turns), beside XGBoost's own in-process
``pred_contribs`` on the same row; target under 1 ms.
Runtimes side by side (``serving.runtime``): the same version served by ONNX Runtime on its
ONNX export, the model alone and the whole graph (its own executor), measured in turns with
the XGBoost runtime's (latencies request by request, throughput in alternating slices), and
in-process ONNX Runtime beside in-process ``inplace_predict``.
The online lookup side by side: the graph whose transformer reads the SQLite online store in
its own process (the local default) against the same graph asking Feast's feature server
(what it does with Redis and on Kubernetes), in turns.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from common import ROOT, Result

sys.path.insert(0, str(ROOT))

EXTRA: dict = {}
SECONDS = 8.0
WORKERS = 2  # one gunicorn worker per core here
FLOOR = "one process: Feast SDK read + inplace_predict"
HTTP_LOOKUP = "the graph asking Feast's feature server (Redis, Kubernetes)"


def _latencies(fn, n: int = 600) -> tuple[float, float]:
    for _ in range(30):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _interleaved(fn_a, fn_b, n: int = 1500) -> tuple[tuple[float, float], tuple[float, float]]:
    """p50/p99 of two calls measured in turns (a, b, a, b, ...): a drift of the machine's
    load while they run moves both alike, so their difference is the calls' own."""
    for _ in range(30):
        fn_a()
        fn_b()
    a, b = [], []
    for _ in range(n):
        for fn, samples in ((fn_a, a), (fn_b, b)):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    out = []
    for samples in (a, b):
        ms = np.array(samples) * 1000
        out.append((float(np.percentile(ms, 50)), float(np.percentile(ms, 99))))
    return out[0], out[1]


def _throughput(make_call, concurrency: int = 8, seconds: float = SECONDS) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * concurrency
    errors = [0] * concurrency

    def loop(i):
        call = make_call()
        while time.perf_counter() < stop:
            if call():
                counts[i] += 1
            else:
                errors[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(errors):
        raise RuntimeError(f"{sum(errors)} requests failed during the throughput run")
    return sum(counts) / (time.perf_counter() - started)


def _setup(root: Path):
    import dagster as dg

    from lakeloop import keys
    from lakeloop.definitions import build_definitions
    from lakeloop.settings import Settings
    from tests.conftest import free_port, free_port_pair, write_use_case
    from tests.support.demo_data import DemoSpec, generate

    use_cases = write_use_case(root / "use_cases", free_port_pair(),
                               **{r"^sensitive: true$": "sensitive: false"}).parent
    settings = Settings.from_env({}).replace(data_root=root,
                                   use_case_dirs=(use_cases,), feature_server_port=free_port())
    spec = DemoSpec(days=30, rows_per_day=300, drift_day=None, seed=3)
    generate(root / "landing", spec)
    days = [(spec.start + dt.timedelta(d)).isoformat() for d in range(spec.days)]
    defs = build_definitions(settings)
    uc_name = "credit_risk"
    target = dg.AssetKey([uc_name, keys.DEPLOYMENT, "seldon_deployment"])
    selection = dg.AssetSelection.assets(target).upstream().required_multi_asset_neighbors()
    result = dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                            resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                            run_config={"loggers": {"console": {"config": {
                                "log_level": "ERROR"}}}},
                            tags={"dagster/asset_partition_range_start": days[0],
                                  "dagster/asset_partition_range_end": days[-1]})
    mat = next(e.event_specific_data.materialization for e in result.all_events
               if e.event_type_value == "ASSET_MATERIALIZATION"
               and e.event_specific_data.materialization.asset_key == target)
    return defs, mat.metadata


def run() -> list[Result]:
    from lakeloop.deployment.runtime import (
        Runtime,
        load_booster,
        model_files,
        onnx_export,
        route,
        start_predictor,
    )
    from lakeloop.tracking import CHALLENGER, CHAMPION
    from lakeloop.usecase import load_use_cases

    root = Path(tempfile.mkdtemp(prefix="lakeloop-bench-serving-"))
    defs, meta = _setup(root)
    r = defs.resources
    try:
        uc = load_use_cases((root / "use_cases",))[0]
        version = str(meta["model_version"].value)
        # The bench serves with one gunicorn worker per core.
        serving = r["serving"].model_copy(update={"workers": WORKERS})
        rt = Runtime(uc, serving, r["mlflow"], r["lakehouse"], r["feast"])
        predictor = start_predictor(rt, version, CHAMPION)
        endpoint = route(rt, [(predictor, 100)])
        instance = meta["sample_request"].value
        booster, config = load_booster(r["mlflow"], uc.name, version)
        booster.set_param({"nthread": 1})
        transformed = requests.post(f"{predictor.transformer.url}/transform-input",
                                    json={"jsonData": instance}, timeout=5).json()
        row = transformed["data"]["ndarray"][0]
        names = config["features"]
        # the model's own columns (categories one-hot), as the model server builds them
        x = np.asarray(config["encoding"].encode_rows([row]), dtype=np.float32)
        graph_body = {"jsonData": instance}
        model_body = {"data": {"names": names, "ndarray": [row]}}

        def poster(url, body):
            def make():
                session = requests.Session()
                return lambda: session.post(url, json=body, timeout=5).status_code == 200
            return make

        # The floor for the whole graph: one process reading Feast's online store through
        # its SDK and scoring the row itself, with no hop between them.
        store = r["feast"].store()
        service = store.get_feature_service(config["feature_service"])
        key = uc.entity.join_key

        def floor():
            online = store.get_online_features(features=service,
                                               entity_rows=[{key: instance[key]}]).to_dict()
            row = [instance[f] if f in instance else online[f][0] for f in config["features"]]
            return booster.inplace_predict(
                np.asarray(config["encoding"].encode_rows([row]), dtype=np.float32))

        assert np.allclose(floor(), booster.inplace_predict(x)), "the floor scores another row"
        floor_latency = _latencies(floor, 1000)
        floor_rps = _throughput(lambda: (lambda: floor() is not None))
        in_process = _latencies(lambda: booster.inplace_predict(x), 3000)
        model_url = f"{predictor.model.url}/api/v1.0/predictions"
        model_alone = _latencies(poster(model_url, model_body)())
        graph = _latencies(poster(endpoint.predictions_url, graph_body)())
        model_rps = _throughput(poster(model_url, model_body))
        graph_rps = _throughput(poster(endpoint.predictions_url, graph_body))
        in_rps = _throughput(lambda: (lambda: booster.inplace_predict(x) is not None))
        import xgboost as xgb

        explain_body = {**model_body, "meta": {"tags": {"explain": 3}}}
        # Reasons' cost: explained and plain requests in turns, on one connection each.
        plain, explained = _interleaved(poster(model_url, model_body)(),
                                        poster(model_url, explain_body)())
        names = booster.feature_names  # the row's columns are the booster's, named
        contribs = _latencies(lambda: booster.predict(xgb.DMatrix(x, feature_names=names),
                                                      pred_contribs=True), 3000)
        reasons_added = explained[0] - plain[0]
        wrapper = model_alone[0] - in_process[0]

        # The same version on the ONNX runtime, in the challenger's slot.
        import onnxruntime as ort

        onnx_uc = uc.model_copy(update={"serving": uc.serving.model_copy(
            update={"runtime": "onnx"})})
        onnx_rt = Runtime(onnx_uc, serving, r["mlflow"], r["lakehouse"], r["feast"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(onnx_export(uc, version, model_files(r["mlflow"], uc.name, version)[0])),
            options, providers=["CPUExecutionProvider"])
        onnx_in = session.get_inputs()[0].name
        onnx_out = session.get_outputs()[1].name
        onnx_in_process = _latencies(lambda: session.run([onnx_out], {onnx_in: x}), 3000)
        onnx_predictor = start_predictor(onnx_rt, version, CHALLENGER)
        onnx_model_url = f"{onnx_predictor.model.url}/api/v1.0/predictions"
        # its own executor beside the champion's, so that both graphs answer at once and
        # every runtime figure is measured in turns with the XGBoost one (a drift of the
        # machine's load moves both alike)
        from tests.conftest import free_port

        onnx_endpoint = serving.start_executor(
            f"{uc.name}-onnx", {"name": uc.name, "model_name": uc.name, "shadow": None,
                                "predictors": [onnx_predictor.route(100)]}, free_port())
        xgb_alone, onnx_alone = _interleaved(poster(model_url, model_body)(),
                                             poster(onnx_model_url, model_body)())
        xgb_graph, onnx_graph = _interleaved(poster(endpoint.predictions_url, graph_body)(),
                                             poster(onnx_endpoint.predictions_url,
                                                    graph_body)())
        rates: dict[str, list[float]] = {}
        for _ in range(2):  # in turns, half the time each
            for name, url, body in (("xgb_model", model_url, model_body),
                                    ("onnx_model", onnx_model_url, model_body),
                                    ("xgb_graph", endpoint.predictions_url, graph_body),
                                    ("onnx_graph", onnx_endpoint.predictions_url, graph_body)):
                rates.setdefault(name, []).append(
                    _throughput(poster(url, body), seconds=SECONDS / 2))
        rate = {name: float(np.mean(values)) for name, values in rates.items()}
        serving.stop(f"{uc.name}-onnx")

        # The same graph with the transformer asking Feast's feature server (what it does
        # with Redis, and on Kubernetes), in the challenger's slot, measured in turns with
        # the in-process read.
        import lakeloop.deployment.runtime as runtime_module

        spec = runtime_module.serving_spec
        runtime_module.serving_spec = lambda *_: None
        try:
            http_predictor = start_predictor(rt, version, CHALLENGER)
        finally:
            runtime_module.serving_spec = spec
        http_endpoint = serving.start_executor(
            f"{uc.name}-http", {"name": uc.name, "model_name": uc.name, "shadow": None,
                                "predictors": [http_predictor.route(100)]}, free_port())
        local_graph, http_graph = _interleaved(poster(endpoint.predictions_url, graph_body)(),
                                               poster(http_endpoint.predictions_url,
                                                      graph_body)())
        lookup_rates: dict[str, list[float]] = {"local": [], "http": []}
        for _ in range(2):
            for name, url in (("local", endpoint.predictions_url),
                              ("http", http_endpoint.predictions_url)):
                lookup_rates[name].append(_throughput(poster(url, graph_body),
                                                      seconds=SECONDS / 2))
        lookup_rate = {name: float(np.mean(v)) for name, v in lookup_rates.items()}
        EXTRA.update({"model_version": version, "workers": WORKERS,
                      "in_process_p50_p99_ms": in_process, "model_alone_p50_p99_ms": model_alone,
                      "graph_p50_p99_ms": graph, "floor_p50_p99_ms": floor_latency,
                      "floor_rps_c8": floor_rps, "model_alone_rps_c8": model_rps,
                      "graph_rps_c8": graph_rps, "in_process_rps_c8": in_rps,
                      "explained_p50_p99_ms": explained, "plain_in_turns_p50_p99_ms": plain,
                      "in_process_pred_contribs_p50_p99_ms": contribs,
                      "onnx_in_process_p50_p99_ms": onnx_in_process,
                      "in_turns_model_alone_p50_p99_ms": {"xgboost": xgb_alone,
                                                          "onnx": onnx_alone},
                      "in_turns_graph_p50_p99_ms": {"xgboost": xgb_graph, "onnx": onnx_graph},
                      "in_turns_rps_c8": rate,
                      "lookup_in_turns_p50_p99_ms": {"in_process": local_graph,
                                                     "feature_server": http_graph},
                      "lookup_in_turns_rps_c8": lookup_rate})
        return [
            Result("serving", "model alone p50, c=1", "ms", model_alone[0],
                   "in-process predict", in_process[0],
                   "wrapper adds < 2 ms", wrapper < 2.0),
            Result("serving", "model alone p99, c=1", "ms", model_alone[1],
                   "in-process predict", in_process[1]),
            Result("serving", "graph (transformer + Feast + model) p50, c=1", "ms", graph[0],
                   FLOOR, floor_latency[0], "<= 3.5 ms", graph[0] <= 3.5),
            Result("serving", "graph p99, c=1", "ms", graph[1], FLOOR, floor_latency[1],
                   "<= 7 ms", graph[1] <= 7.0),
            Result("serving", "model alone req/s, c=8", "req/s", model_rps,
                   "in-process predict", in_rps, ">= 500 req/s", model_rps >= 500),
            Result("serving", "graph req/s, c=8", "req/s", graph_rps, FLOOR, floor_rps,
                   ">= 400 req/s", graph_rps >= 400),
            Result("serving", "reason codes added p50, c=1 (model alone, top 3)", "ms",
                   reasons_added, "in-process pred_contribs", contribs[0], "< 1 ms",
                   reasons_added < 1.0),
            Result("serving", "ONNX runtime: in-process p50", "ms", onnx_in_process[0],
                   "in-process inplace_predict", in_process[0]),
            Result("serving", "ONNX runtime: model alone p50, c=1 (in turns)", "ms",
                   onnx_alone[0], "XGBoost runtime, model alone", xgb_alone[0]),
            Result("serving", "ONNX runtime: model alone p99, c=1 (in turns)", "ms",
                   onnx_alone[1], "XGBoost runtime, model alone", xgb_alone[1]),
            Result("serving", "ONNX runtime: model alone req/s, c=8 (in turns)", "req/s",
                   rate["onnx_model"], "XGBoost runtime, model alone", rate["xgb_model"]),
            Result("serving", "ONNX runtime: graph p50, c=1 (in turns)", "ms", onnx_graph[0],
                   "XGBoost runtime, graph", xgb_graph[0]),
            Result("serving", "ONNX runtime: graph p99, c=1 (in turns)", "ms", onnx_graph[1],
                   "XGBoost runtime, graph", xgb_graph[1]),
            Result("serving", "ONNX runtime: graph req/s, c=8 (in turns)", "req/s",
                   rate["onnx_graph"], "XGBoost runtime, graph", rate["xgb_graph"]),
            Result("serving", "graph p50, c=1, in-process online read (in turns)", "ms",
                   local_graph[0], HTTP_LOOKUP, http_graph[0]),
            Result("serving", "graph p99, c=1, in-process online read (in turns)", "ms",
                   local_graph[1], HTTP_LOOKUP, http_graph[1]),
            Result("serving", "graph req/s, c=8, in-process online read (in turns)", "req/s",
                   lookup_rate["local"], HTTP_LOOKUP, lookup_rate["http"]),
        ]
    finally:
        r["serving"].stop_all()
        r["feast"].stop_feature_server()
        shutil.rmtree(root, ignore_errors=True)
