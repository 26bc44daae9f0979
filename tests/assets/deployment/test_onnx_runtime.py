"""serving.runtime: onnx on the live graph: the same registered version, scored by ONNX
Runtime on the export the parity gate logged beside the booster, answers the requests the
XGBoost runtime answers with the same probabilities (within the gate's tolerance) and the
same decisions, through the same transformer, checks and request log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from lakeloop import keys
from lakeloop.deployment.rollout import recent_instances, walk
from lakeloop.deployment.runtime import (
    ONNX_FILE,
    Runtime,
    component_name,
    model_files,
    onnx_export,
    predictor_for,
    render,
    running_predictor,
    start_predictor,
)
from lakeloop.deployment.serving import ServingError
from lakeloop.tracking import CHALLENGER, CHAMPION
from lakeloop.usecase import load_use_cases


def _runtime(materialized, runtime: str) -> Runtime:
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    uc = uc.model_copy(update={"serving": uc.serving.model_copy(update={"runtime": runtime})})
    r = materialized.resources
    return Runtime(uc, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])


@pytest.mark.slow
@pytest.mark.integration
def test_the_onnx_runtime_answers_what_the_xgboost_runtime_answers(materialized, tmp_path):
    xgb_rt, onnx_rt = _runtime(materialized, "xgboost"), _runtime(materialized, "onnx")
    uc, mlflow = xgb_rt.use_case, xgb_rt.mlflow
    version = str(mlflow.version_by_alias(uc.name, CHAMPION).version)
    model_dir, _ = model_files(mlflow, uc.name, version)
    assert (model_dir / ONNX_FILE).is_file(), "the parity gate put no export beside the model"
    log_dir = Path(xgb_rt.lakehouse.path(keys.key(uc, keys.MONITORING, "requests")))
    instances = recent_instances(log_dir, uc, 200)
    assert len(instances) == 200
    tags = {"request_key": "rollout-validation", "predictor": "validation"}
    champion = predictor_for(xgb_rt, version, CHAMPION)
    try:
        onnx = start_predictor(onnx_rt, version, CHALLENGER)
        assert onnx.model.component.endswith(".OnnxModel")
        # the slot runs ONNX now: a use case asking for XGBoost there would restart it
        assert running_predictor(onnx_rt, CHALLENGER) is not None
        assert running_predictor(xgb_rt, CHALLENGER) is None
        http = requests.Session()
        pairs = []
        for instance in instances:
            s1, b1, _ = walk(http, champion, instance, tags)
            s2, b2, _ = walk(http, onnx, instance, tags)
            assert (s1, s2) == (200, 200), (b1, b2)
            pairs.append((*b1["data"]["ndarray"][0], *b2["data"]["ndarray"][0]))
        answers = np.array(pairs, dtype=float)
        assert np.max(np.abs(answers[:, 0] - answers[:, 2])) <= uc.gates.onnx_max_abs_diff
        assert np.array_equal(answers[:, 1], answers[:, 3])
        info = requests.get(f"{onnx.model.url}/api/v1.0/metadata", timeout=5).json()
        assert info["platform"] == "onnx" and info["versions"] == [version]
        # a request the contract refuses is refused alike, before any model sees it
        bad = {**instances[0], "loan_amount": -5.0}
        refused = [walk(http, p, bad, tags)[0] for p in (champion, onnx)]
        assert refused[0] == refused[1] and 400 <= refused[0] < 500
    finally:
        for component in ("model", "transformer"):
            xgb_rt.serving.stop(component_name(uc, CHALLENGER, component))
    manifest = render(onnx_rt, "champion", version)
    [model] = [c for c in manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
               ["containers"] if c["name"] == "model"]
    assert {"name": "MODEL_NAME", "value": "lakeloop.deployment.seldon.model.OnnxModel"} \
        in model["env"]


def test_a_version_without_an_onnx_export_is_refused_with_what_to_do(tmp_path):
    uc = load_use_cases((Path(__file__).parents[3] / "platform/lakeloop/usecases",))[0]
    with pytest.raises(ServingError, match=r"credit_risk v7 has no ONNX export.*"
                                           r"onnx_parity_gate passed"):
        onnx_export(uc, "7", tmp_path)
