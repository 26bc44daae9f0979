"""The Dagster UI over the materialised demo, as a person opens it: a webserver on a free
port, a daemon that ran the sensors for real, and a headless Chromium.

The state it shows is the session's ``materialized`` instance plus two things a person would
look for there: a failed data-contract check (the newest day's row count against a +-10%
contract; the tiny data's last day is 12% above its trailing mean) and real sensor ticks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import requests
import yaml

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.lakehouse import quality
from lakeloop.settings import PROJECT_ROOT
from lakeloop.usecase import load_use_cases
from sensors.drift import sensor_name as drift_sensor_name
from tests.conftest import QUIET, free_port, settings_for, write_use_case

LOCATION = "lakeloop"  # as `make dev` names it (pyproject's [tool.dagster])
REPOSITORY = "__repository__"
VIEWPORT = {"width": 1440, "height": 900}
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
# The demo's use case as the session runs it, with a stricter volume contract on applications:
# each day within +-10% of its trailing mean, and a day outside it blocks what follows.
UI_USE_CASE = {
    r"^sensitive: true$": "sensitive: false",
    r"^    event_time: application_ts$": (
        "    event_time: application_ts\n"
        "    checks: {row_count_min_ratio: 0.9, row_count_max_ratio: 1.1, "
        "row_count_severity: error}"),
}
SERVER_START_S = 120
TICKS_S = 120


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("chromium is not installed; `make setup` installs it from Debian")
    return path


@dataclass
class DagsterUI:
    url: str
    use_case: object
    failed_check: dg.AssetCheckEvaluation
    sensor: str
    screenshots: Path

    def shot(self, page, name: str) -> Path:
        """A full-page screenshot under the test's directory; with
        LAKELOOP_UPDATE_SCREENSHOTS=1 also the README's copy in docs/screenshots/."""
        path = self.screenshots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("LAKELOOP_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / path.name)
        return path


def _failing_volume_check(materialized, use_case_dir: Path) -> dg.AssetCheckEvaluation:
    """The newest day's silver applications again, judged by the stricter contract: the same
    rows are written (a new Delta version), and the row-count check fails with its numbers."""
    defs = build_definitions(settings_for(materialized.root, use_case_dir))
    uc = load_use_cases((use_case_dir,))[0]
    silver = keys.key(uc, keys.LAKEHOUSE, "silver_applications")
    quarantine = keys.key(uc, keys.LAKEHOUSE, "quarantine_applications")
    result = dg.materialize(
        list(defs.assets), selection=[silver, quarantine], resources=defs.resources,
        instance=materialized.instance, run_config=QUIET, raise_on_error=False,
        partition_key=materialized.days[-1])
    checks = {e.event_specific_data.check_name: e.event_specific_data
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    check = checks.get(quality.ROW_COUNT)
    assert check is not None and not check.passed, (
        f"the row-count check should fail on {materialized.days[-1]} under a +-10% contract: "
        f"{check.description if check else sorted(checks)}")
    return check


def _dagster_yaml(home: Path) -> None:
    """What the webserver and the daemon read: no telemetry, and a run queue that launches
    nothing, so the runs the sensors request stay queued (the tests launch theirs in process
    and must not find a retraining running under them)."""
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "run_queue": {"max_concurrent_runs": 0},
    }))


def _workspace(directory: Path) -> Path:
    path = directory / "workspace.yaml"
    path.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "lakeloop.definitions", "location_name": LOCATION,
        "working_directory": str(PROJECT_ROOT)}}]}))
    return path


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        # A session of its own: stopping it stops the code server it spawns too.
        return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited ({proc.returncode}):\n{_tail(log)}")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"dagster-webserver answered no /server_info in {SERVER_START_S}s:\n"
                       f"{_tail(log)}")


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query,
                                                     "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


TICKS = """
query Ticks($selector: InstigationSelector!) {
  instigationStateOrError(instigationSelector: $selector) {
    __typename
    ... on InstigationState { ticks(limit: 5) { status runIds skipReason } }
  }
}"""


def _wait_for_tick(url: str, sensor: str, daemon: subprocess.Popen, log: Path) -> list[dict]:
    """The sensor's finished ticks, once the daemon has recorded at least one."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                "name": sensor}
    deadline = time.monotonic() + TICKS_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}):\n{_tail(log)}")
        state = graphql(url, TICKS, {"selector": selector})["instigationStateOrError"]
        done = [t for t in state.get("ticks", []) if t["status"] != "STARTED"]
        if done:
            return done
        time.sleep(1)
    raise RuntimeError(f"the daemon recorded no finished tick of {sensor} in {TICKS_S}s:\n"
                       f"{_tail(log)}")


@pytest.fixture(scope="module")
def dagster_ui(materialized, tmp_path_factory) -> Iterator[DagsterUI]:
    directory = tmp_path_factory.mktemp("ui")
    serving_port = load_use_cases(materialized.settings.use_case_dirs)[0].serving.port
    use_case_dir = write_use_case(directory / "use_cases", serving_port, **UI_USE_CASE).parent
    uc = load_use_cases((use_case_dir,))[0]
    check = _failing_volume_check(materialized, use_case_dir)

    home = materialized.dagster_home
    _dagster_yaml(home)
    workspace = _workspace(directory)
    env = {**os.environ, "DAGSTER_HOME": str(home), "TZ": "UTC", "DO_NOT_TRACK": "true",
           "MLFLOW_DISABLE_TELEMETRY": "true",
           "LAKELOOP_DATA_ROOT": str(materialized.settings.data_root),
           "LAKELOOP_USE_CASES": str(use_case_dir),
           "LAKELOOP_FEATURE_SERVER_PORT": str(materialized.settings.feature_server_port)}
    bin_dir = Path(sys.executable).parent
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sensor = drift_sensor_name(uc)
    web_log, daemon_log = directory / "webserver.log", directory / "daemon.log"
    webserver = daemon = None
    try:
        daemon = _start([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
                        env, daemon_log)
        webserver = _start([str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p",
                            str(port), "-w", str(workspace)], env, web_log)
        _wait_for_server(url, webserver, web_log)
        _wait_for_tick(url, sensor, daemon, daemon_log)
        _stop(daemon)  # the ticks are recorded; nothing else should happen under the tests
        shots = tmp_path_factory.mktemp("screenshots")
        yield DagsterUI(url, uc, check, sensor, shots)
    finally:
        _stop(daemon)
        _stop(webserver)
        # The runs the sensors requested never left the queue; without them the instance is
        # the session's again for the tests that read its runs (the drift sensor's cursor).
        for record in materialized.instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
            materialized.instance.delete_run(record.dagster_run.run_id)


@pytest.fixture(scope="module")
def browser(dagster_ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                    args=["--no-sandbox"])
        yield browser
        browser.close()


# A person's one-time choices, made before the first page: the community sign-up dialog
# dismissed, and the main navigation collapsed so that the views get the whole width.
FIRST_VISIT = ("localStorage.setItem('communityNux', JSON.stringify('1'));"
               "localStorage.setItem('dagster-nav-collapsed', 'true');")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, timezone_id="UTC", locale="en-US")
    context.add_init_script(FIRST_VISIT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
