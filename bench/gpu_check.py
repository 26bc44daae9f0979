"""GPU check: the same XGBoost model on CUDA and on the CPU, timed, with prediction agreement.

Standalone on purpose (numpy, pandas and xgboost only), so it runs on a GPU machine without the
rest of the platform: `python bench/gpu_check.py [--rows 1000000] [--rounds 400] [--save]`.

The CPU baseline runs on every core this host lets the process use (XGBoost's ``nthread``
is the size of the process's CPU set, normally ``os.cpu_count()``), so the speed-up is the
GPU against the whole CPU of the same machine, never against a laptop's two cores; the
output says how many threads that was. It reads back the device each booster actually used
(XGBoost falls back to the CPU silently when CUDA is missing) and prints one JSON line: CPU
and CUDA seconds, the speed-up, how closely the two models agree (max |probability
difference|, share of equal decisions at 0.5), the machine and the commit. ``--save`` also
writes it to bench/results/gpu_check.json (for ``bench/report.py``).

Where CUDA trained, it then runs the training asset's own code (``lakeloop.training.fit``,
which imports only numpy and pandas) on the same rows: ``resolve_device("auto")`` must pick
CUDA, and the model's UBJ bytes (what the registry stores) must predict the same in a process
that sees no GPU, as the serving image does.
Exit status: 0 when CUDA trained, the platform's path held and the speed-up target (>= 3x)
was met, 1 when CUDA trained but the target was missed, 2 when no CUDA device was usable
here, 3 when the platform's path failed one of its checks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import describe, stamp, usable_cores, write_result

TARGET = 3.0
PLATFORM = Path(__file__).resolve().parents[1] / "platform"
# The CUDA model read back on a CPU predicts what it predicted on the GPU, up to float32
# sums of the same leaf values taken in another order on the two devices.
SERVED_TOLERANCE = 1e-5
# Loads the saved model where no GPU is visible and predicts: argv model, rows in, scores out.
CPU_ONLY_SERVING = """
import sys, numpy as np, xgboost as xgb
booster = xgb.Booster(params={"device": "cpu"}, model_file=sys.argv[1])
np.save(sys.argv[3], booster.inplace_predict(np.load(sys.argv[2])))
"""


def data(rows: int, features: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    w = rng.normal(scale=0.6, size=features)
    logits = x @ w + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1] - 1.6
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return x, y


def used_device(booster) -> str:
    config = json.loads(booster.save_config())
    return config["learner"]["generic_param"].get("device", "cpu")


def train(x, y, device: str, threads: int, rounds: int):
    import xgboost as xgb

    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 4,
              "learning_rate": 0.08, "subsample": 0.9, "colsample_bytree": 0.9,
              "min_child_weight": 2, "seed": 42, "device": device, "nthread": threads,
              "eval_metric": "auc"}
    cut = int(len(x) * 0.85)
    if device == "cuda":  # QuantileDMatrix builds on the GPU; same bins as the CPU's
        train_m = xgb.QuantileDMatrix(x[:cut], label=y[:cut])
        valid_m = xgb.QuantileDMatrix(x[cut:], label=y[cut:], ref=train_m)
    else:
        train_m = xgb.DMatrix(x[:cut], label=y[:cut], nthread=threads)
        valid_m = xgb.DMatrix(x[cut:], label=y[cut:], nthread=threads)
    started = time.perf_counter()
    booster = xgb.train(params, train_m, rounds, evals=[(valid_m, "validation")],
                        early_stopping_rounds=30, verbose_eval=False)
    booster.inplace_predict(x[:10])  # the work is done once a prediction comes back
    return time.perf_counter() - started, booster


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--save", action="store_true",
                        help="also write bench/results/gpu_check.json")
    args = parser.parse_args(argv)
    import xgboost as xgb

    threads = usable_cores()  # the CPU baseline gets the whole host, like the CUDA run
    x, y = data(args.rows)
    train(x[:20_000], y[:20_000], "cpu", threads, 5)  # warm the library
    cpu_seconds, cpu = train(x, y, "cpu", threads, args.rounds)
    provenance = stamp()
    report = {"rows": args.rows, "features": x.shape[1], "rounds": args.rounds,
              "xgboost": xgb.__version__, "cpu_threads": threads,
              "cpu_baseline": f"XGBoost nthread={threads}: every core this process may use "
                              f"({provenance['machine']['cores_logical']} logical on the host)",
              "cpu_seconds": round(cpu_seconds, 3), "cpu_rounds": cpu.num_boosted_rounds()}
    try:
        train(x[:20_000], y[:20_000], "cuda", threads, 5)  # CUDA context
        cuda_seconds, gpu = train(x, y, "cuda", threads, args.rounds)
    except xgb.core.XGBoostError as exc:
        report.update(cuda=False, reason=str(exc).splitlines()[0])
        return _finish(report, provenance, args.save, 2)
    if not used_device(gpu).startswith("cuda"):
        report.update(cuda=False, reason=f"XGBoost fell back to {used_device(gpu)}")
        return _finish(report, provenance, args.save, 2)
    p_cpu, p_gpu = cpu.inplace_predict(x), gpu.inplace_predict(x)
    speedup = cpu_seconds / cuda_seconds
    report.update(cuda=True, cuda_seconds=round(cuda_seconds, 3),
                  cuda_rounds=gpu.num_boosted_rounds(), speedup=round(speedup, 2),
                  target=f">= {TARGET}x", met=speedup >= TARGET,
                  max_abs_probability_diff=float(np.max(np.abs(p_cpu - p_gpu))),
                  decision_agreement=float(np.mean((p_cpu >= 0.5) == (p_gpu >= 0.5))))
    report["platform"] = platform_path(x, y, threads, args.rounds)
    if report["platform"]["failed"]:
        return _finish(report, provenance, args.save, 3)
    return _finish(report, provenance, args.save, 0 if speedup >= TARGET else 1)


def platform_path(x, y, threads: int, rounds: int) -> dict:
    """The training asset's code on both devices: the device ``auto`` resolves to, each
    device's time and best iteration, and the CUDA model served from its bytes on a CPU."""
    sys.path.insert(0, str(PLATFORM))
    import pandas as pd

    from lakeloop.training import fit
    from lakeloop.training.encoding import Encoding

    names = [f"f{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names).assign(
        label=y.astype(int), t=pd.date_range("2026-01-01", periods=len(x), freq="s"))
    split = fit.time_split(frame, "t", 0.1, 0.05)
    encoding = Encoding(tuple(names))
    params = {"max_depth": 4, "learning_rate": 0.08, "subsample": 0.9,
              "colsample_bytree": 0.9, "min_child_weight": 2, "nthread": threads}
    out: dict = {"device_auto": fit.resolve_device("auto"), "failed": []}
    models = {}
    for device in ("cpu", "cuda"):
        started = time.perf_counter()
        models[device] = fit.train(split, encoding, "label",
                                   fit.booster_params(params, 42, device), rounds, 30)
        out[f"{device}_seconds"] = round(time.perf_counter() - started, 3)
        out[f"{device}_best_iteration"] = models[device].best_iteration
    out["cuda_used"] = used_device(models["cuda"].booster)
    out["speedup"] = round(out["cpu_seconds"] / out["cuda_seconds"], 2)
    p_cpu, p_gpu = (models[d].predict(split.test) for d in ("cpu", "cuda"))
    out["test_decision_agreement"] = float(np.mean((p_cpu >= 0.5) == (p_gpu >= 0.5)))
    served = served_on_cpu(models["cuda"].model_bytes(), encoding.encode_frame(split.test))
    out["served_on_cpu_max_abs_diff"] = float(np.max(np.abs(served - p_gpu)))
    if out["device_auto"] != "cuda":
        out["failed"].append(f"resolve_device('auto') gave {out['device_auto']}")
    if not out["cuda_used"].startswith("cuda"):
        out["failed"].append(f"fit.train fell back to {out['cuda_used']}")
    if out["served_on_cpu_max_abs_diff"] > SERVED_TOLERANCE:
        out["failed"].append("the CUDA model's bytes predict differently without a GPU")
    return out


def served_on_cpu(model: bytes, rows: np.ndarray) -> np.ndarray:
    """Scores from ``model`` loaded in a new process that sees no CUDA device."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, name) for name in ("model.ubj", "rows.npy", "out.npy")]
        Path(paths[0]).write_bytes(model)
        np.save(paths[1], rows)
        subprocess.run([sys.executable, "-c", CPU_ONLY_SERVING, *paths], check=True,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=600)
        return np.load(paths[2])


def _finish(report: dict, provenance: dict, save: bool, status: int) -> int:
    """One JSON line on stdout (the last line: tests read it), and the result file."""
    report.update(machine=describe(provenance["machine"]), commit=provenance["commit"],
                  dirty=provenance["dirty"])
    if save:
        path = write_result("gpu_check", {"quick": False, "gpu_check": report})
        print(f"wrote {path}", file=sys.stderr)
    print(json.dumps(report))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
