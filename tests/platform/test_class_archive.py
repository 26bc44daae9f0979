"""The local driver's class archive (class-data sharing): recorded once by set-up for this
JDK and classpath, mapped by every later local session, and never used for another."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakeloop.class_archive import class_archive
from lakeloop.settings import Settings
from lakeloop.spark import LOCAL_LOG_STORE_JAR, SparkResource, delta_jars

ROOT = Path(__file__).resolve().parents[2]


def _fake_jars(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar",
                 LOCAL_LOG_STORE_JAR):
        (folder / name).write_bytes(b"PK")
    return folder


def test_a_local_session_puts_delta_on_the_driver_classpath_and_maps_the_archive(tmp_path):
    jars = _fake_jars(tmp_path / "jars")
    resource = SparkResource(jars_dir=str(jars), java_options="-XX:TieredStopAtLevel=1")
    before = resource.session_settings()
    assert before["spark.driver.extraClassPath"].split(os.pathsep) == [
        str(j) for j in delta_jars(jars.resolve())]
    assert "spark.jars" not in before
    assert "SharedArchiveFile" not in before["spark.driver.extraJavaOptions"]  # none yet
    assert before["spark.driver.extraJavaOptions"].endswith("-XX:TieredStopAtLevel=1")

    archive = class_archive(jars, delta_jars(jars))
    archive.parent.mkdir()
    archive.write_bytes(b"recorded")
    options = resource.session_settings()["spark.driver.extraJavaOptions"].split()
    assert f"-XX:SharedArchiveFile={archive}" in options
    recording = resource.session_settings(record_archive=tmp_path / "new.jsa")
    assert f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}" in (
        recording["spark.driver.extraJavaOptions"].split())
    assert "SharedArchiveFile" not in recording["spark.driver.extraJavaOptions"]


def test_a_cluster_session_ships_the_jars_and_no_archive(tmp_path):
    jars = _fake_jars(tmp_path / "jars")
    archive = class_archive(jars, delta_jars(jars))
    archive.parent.mkdir()
    archive.write_bytes(b"recorded")
    settings = SparkResource(master="k8s://https://127.0.0.1:6443",
                             jars_dir=str(jars)).session_settings()
    assert settings["spark.jars"].split(",") == [str(j) for j in delta_jars(jars.resolve())]
    assert "spark.driver.extraClassPath" not in settings
    assert "SharedArchiveFile" not in settings["spark.driver.extraJavaOptions"]


def test_the_archive_is_named_for_its_exact_classpath(tmp_path):
    jars = _fake_jars(tmp_path / "jars")
    first = class_archive(jars, delta_jars(jars))
    assert first == class_archive(jars, delta_jars(jars))  # stable
    (jars / "delta-storage-4.4.0.jar").write_bytes(b"PK, rebuilt")  # another jar, same name
    assert class_archive(jars, delta_jars(jars)) != first
    (jars / "delta-storage-4.4.0.jar").unlink()
    assert class_archive(jars, [*delta_jars(jars), jars / "delta-storage-4.4.0.jar"]) is None


@pytest.mark.integration
def test_set_up_recorded_the_archive_and_a_local_session_maps_it(tmp_path):
    """A fresh JVM (a subprocess, so no session of the suite's is reused) started by the
    resource maps the archive set-up recorded: HotSpot reports the archive in use."""
    jars = Settings.from_env({}).jars_dir
    archive = class_archive(jars, delta_jars(jars))
    assert archive is not None and archive.exists(), (
        f"{archive} is missing: `make setup` records it (python -m lakeloop.spark "
        "record-class-archive .cache/jars)")
    loads = tmp_path / "class-load.log"
    script = (
        "import sys\n"
        "from lakeloop.spark import SparkResource\n"
        "s = SparkResource(jars_dir=sys.argv[1], java_options=sys.argv[2]).session()\n"
        "bean = s._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()\n"
        "print('ARGS', ' '.join(bean.getInputArguments()))\n"
        "print('ROWS', s.range(3).count())\n")
    done = subprocess.run([sys.executable, "-c", script, str(jars),
                           f"-Xlog:class+load=info:file={loads}"], cwd=ROOT, text=True,
                          capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines()
                 if line.startswith(("ARGS", "ROWS")))
    assert f"-XX:SharedArchiveFile={archive}" in lines["ARGS"].split()
    assert lines["ROWS"] == "3"
    # Spark's and Delta's classes came from the archive ("top": the dynamic layer), not jars.
    log = loads.read_text()
    for cls in ("org.apache.spark.SparkContext ", "io.delta.sql.DeltaSparkSessionExtension "):
        assert any(line.split("]")[-1].strip().startswith(cls.strip() + " source: shared "
                   "objects file (top)") for line in log.splitlines()), cls
    assert "[warning][cds]" not in done.stdout + done.stderr  # the archive matched
