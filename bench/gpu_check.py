"""GPU check: the same XGBoost model on CUDA and on the CPU, timed, with prediction agreement.

Standalone on purpose (numpy and xgboost only), so it runs on a GPU machine without the rest
of the platform: `python bench/gpu_check.py [--rows 1000000] [--rounds 400] [--save]`.

The CPU baseline runs on every core this host lets the process use (XGBoost's ``nthread``
is the size of the process's CPU set, normally ``os.cpu_count()``), so the speed-up is the
GPU against the whole CPU of the same machine, never against a laptop's two cores; the
output says how many threads that was. It reads back the device each booster actually used
(XGBoost falls back to the CPU silently when CUDA is missing) and prints one JSON line: CPU
and CUDA seconds, the speed-up, how closely the two models agree (max |probability
difference|, share of equal decisions at 0.5), the machine and the commit. ``--save`` also
writes it to bench/results/gpu_check.json (for ``bench/report.py``).
Exit status: 0 when CUDA trained and the speed-up target (>= 3x) was met, 1 when CUDA
trained but missed it, 2 when no CUDA device was usable here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from provenance import describe, stamp, usable_cores, write_result

TARGET = 3.0


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
    return _finish(report, provenance, args.save, 0 if speedup >= TARGET else 1)


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
