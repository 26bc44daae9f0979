"""serving.image: per_version for real: a registered version (a real MLflow registry, its
ONNX export beside the booster) built into its own image on top of the built serving image,
labelled with its run and data, then started as a model node with no model storage mounted:
the model it answers with is the one inside the image, on either runtime."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pytest
import requests
import xgboost as xgb

from assets.deployment import promotion
from lakeloop import keys
from lakeloop.deployment import images
from lakeloop.deployment.manifests import MODEL_CLASSES, seldon_parameters
from lakeloop.deployment.serving import ServingResource
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.tracking import CHALLENGER, MlflowResource
from lakeloop.training.onnx_export import to_onnx
from lakeloop.usecase import load_use_case
from tests.images.conftest import SERVING, _buildah, entrypoint, serving

pytestmark = pytest.mark.images
SELDON = "http://127.0.0.1:9000"
FEATURES = ["income", "loan_amount"]


def _register(tmp_path, booster) -> tuple[MlflowResource, str]:
    """A version registered as Lakeloop registers one, with the parity gate's export."""
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow/mlflow.db",
                            artifact_root=str(tmp_path / "artifacts"))
    ml = mlflow.setup()
    with ml.start_run(experiment_id=mlflow.experiment("credit_risk")):
        ml.set_tags({"lakeloop.git_commit": "0123abc",
                     "lakeloop.source_versions": '{"silver_applications": 3}'})
        info = ml.xgboost.log_model(booster, name="model", model_format="ubj",
                                    registered_model_name="credit_risk")
    version = str(info.registered_model_version)
    client = mlflow.client()
    for tag, value in {"features": json.dumps(FEATURES), "threshold": "0.5",
                       "training_set_version": "2", "model_sha256": "ab" * 32}.items():
        client.set_model_version_tag("credit_risk", version, tag, value)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(to_onnx(booster, len(FEATURES)))
    source = client.get_model_version("credit_risk", version).source
    client.log_model_artifact(source.removeprefix("models:/"), str(onnx))
    return mlflow, version


def test_a_version_image_answers_with_the_model_baked_into_it(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.random((300, 2))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(x, label=x[:, 0] > 0.4), num_boost_round=6)
    mlflow, version = _register(tmp_path, booster)
    mlflow.client().set_registered_model_alias("credit_risk", CHALLENGER, version)
    base = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
    use_case = base.model_copy(update={"serving": base.serving.model_copy(
        update={"image": "per_version"})})
    resource = ServingResource(python="python", state_dir=str(tmp_path), image=SERVING,
                               image_builder="buildah")
    [asset] = [a for a in promotion.build(use_case) if isinstance(a, dg.AssetsDefinition)
               and a.key == keys.key(use_case, keys.DEPLOYMENT, "serving_image")]
    result = dg.materialize([asset], resources={"mlflow": mlflow, "serving": resource},
                            instance=dg.DagsterInstance.ephemeral())
    [done] = result.asset_materializations_for_node(asset.op.name)
    built = images.Built(done.metadata["image"].value, done.metadata["image_id"].value, {},
                         0.0, done.metadata["pushed"].value)
    try:
        assert done.metadata["model_version"].value == int(version)
        assert "io.lakeloop.mlflow.run_id" in done.metadata["labels"].value
        assert built.ref == f"localhost/lakeloop-model-credit-risk:v{version}"
        assert not built.pushed  # no registry configured: nothing leaves the machine
        image_id, labels = images.inspect(built.ref, "buildah")
        assert image_id == built.image_id
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.revision"] == "0123abc"
        assert labels["io.lakeloop.data.delta_versions"] == '{"silver_applications": 3}'
        assert labels["io.lakeloop.mlflow.run_id"] == \
            mlflow.client().get_model_version("credit_risk", version).run_id
        recorded = json.loads(mlflow.client().get_model_version("credit_risk", version)
                              .tags[images.IMAGE_TAG])
        assert recorded == {"ref": built.ref, "image_id": built.image_id, "pushed": False}
        rows = [[0.9, 0.1], [0.1, 0.8], [0.5, 0.5]]
        want = booster.inplace_predict(np.array(rows)).tolist()
        for runtime, tolerance in (("xgboost", 1e-6), ("onnx", 1e-5)):
            onnx = {"onnx_path": "/models/model.onnx"} if runtime == "onnx" else {}
            env = {"MODEL_NAME": MODEL_CLASSES[runtime], "SERVICE_TYPE": "MODEL",
                   "PREDICTIVE_UNIT_PARAMETERS": json.dumps(seldon_parameters({
                       "model_path": "/models/model.ubj", **onnx,
                       "features": json.dumps(FEATURES), "threshold": 0.5,
                       "model_name": "credit_risk", "model_version": version}))}
            # no volume at all: the model files come from the image
            with serving(built.ref, entrypoint(built.ref), f"{SELDON}/health/ping", env):
                answer = requests.post(f"{SELDON}/predict", timeout=10,
                                       json={"data": {"names": FEATURES, "ndarray": rows}})
            assert answer.status_code == 200, answer.text
            got = [p for p, _ in answer.json()["data"]["ndarray"]]
            assert np.allclose(got, want, rtol=0, atol=tolerance), (runtime, got, want)
    finally:
        _buildah("rmi", built.ref, check=False)
