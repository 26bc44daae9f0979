"""The seldon-core launcher's metrics shortcut (lakeloop.deployment.seldon.serve): a request
that reports no custom metrics costs no round trip to the metrics Manager's process, and what
/metrics exposes is what seldon-core's own update would have exposed, for any mix of
requests with and without custom metrics. Runs in the serving environment, where
seldon-core lives."""

from __future__ import annotations

import json
import os
import subprocess

from lakeloop.settings import PROJECT_ROOT, Settings

PROBE = r"""
import copy, json, sys
from seldon_core.metrics import SeldonMetrics
theirs_update = SeldonMetrics.update
import lakeloop.deployment.seldon.serve  # noqa: F401  (the launcher patches on import)

class Counting:
    def __init__(self, lock): self.lock, self.taken = lock, 0
    def __enter__(self): self.taken += 1; return self.lock.__enter__()
    def __exit__(self, *exc): return self.lock.__exit__(*exc)

theirs, ours = SeldonMetrics(), SeldonMetrics()
ours._lock = Counting(ours._lock)
requests = json.loads(sys.argv[1])
taken = []
for metrics in requests:
    before = ours._lock.taken
    theirs_update(theirs, copy.deepcopy(metrics), "predict")
    ours.update(copy.deepcopy(metrics), "predict")
    taken.append(ours._lock.taken - before)
def exposed(m):  # the /metrics text (both objects live in this process: one worker id)
    text = m.generate_metrics()[0]
    return (text if isinstance(text, str) else text.decode()).splitlines()
print(json.dumps({"taken": taken, "theirs": exposed(theirs), "ours": exposed(ours)}))
"""

REQUESTS = [[], [{"type": "COUNTER", "key": "scored", "value": 1}], [], [],
            [{"type": "GAUGE", "key": "queue", "value": 3, "tags": {"k": "v"}}],
            [{"type": "TIMER", "key": "lookup_ms", "value": 20.5}], [],
            [{"type": "COUNTER", "key": "scored", "value": 2}], []]


def test_requests_without_custom_metrics_skip_the_manager_and_metrics_stay_seldons():
    python = Settings.from_env({}).serving_python
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")},
           "PYTHONPATH": str(PROJECT_ROOT / "platform")}
    done = subprocess.run([str(python), "-c", PROBE, json.dumps(REQUESTS)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # seldon-core's update takes the Manager's lock twice; ours only when there is something
    assert out["taken"] == [0 if not m else 2 for m in REQUESTS]
    assert out["ours"] == out["theirs"]
    samples = {line.split("{")[0] for line in out["ours"] if not line.startswith("#")}
    assert {"scored_total", "queue", "lookup_ms_count"} <= samples
    assert any(line.startswith("scored_total{") and line.endswith(" 3.0")
               for line in out["ours"])
