"""Commits to local Delta tables go through Lakeloop's log store (LocalLogStore.java), which
publishes a version with a hard link: a version another writer (another JVM) has already
published is refused, never replaced. The store is called here directly, in the suite's own
JVM, with the competing commit placed at a known point; the two-process writes of
test_lakehouse_writes.py are the same guarantee end to end."""

import subprocess
import threading
from pathlib import Path

import pyspark
import pytest
from py4j.protocol import Py4JJavaError

from lakeloop.settings import PROJECT_ROOT
from lakeloop.spark import LOCAL_LOG_STORE, LOCAL_LOG_STORE_JAR

pytestmark = pytest.mark.integration
ALREADY_EXISTS = "java.nio.file.FileAlreadyExistsException"


def _store(spark):
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return jvm.io.lakeloop.delta.LocalLogStore(conf), conf


def _write(spark, store, conf, target, lines: list[str]) -> None:
    jvm = spark.sparkContext._jvm
    actions = jvm.java.util.ArrayList()
    for line in lines:
        actions.add(line)
    store.write(jvm.org.apache.hadoop.fs.Path(target.as_uri()), actions.iterator(), False,
                conf)


def _refused(error: Py4JJavaError) -> bool:
    return error.java_exception.getClass().getName() == ALREADY_EXISTS


def test_local_tables_commit_through_the_store_that_cannot_overwrite(tmp_path, spark):
    ((key, store_class),) = LOCAL_LOG_STORE.items()
    assert spark.conf.get(key) == store_class == "io.lakeloop.delta.LocalLogStore"
    spark.range(3).write.format("delta").save(str(tmp_path / "t"))
    jvm = spark.sparkContext._jvm
    # The store Delta itself resolves for this table's log (a file: path), as it commits.
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession,
                                                           str(tmp_path / "t"))
    first = jvm.org.apache.hadoop.fs.Path((tmp_path / "t" / "_delta_log" / "0.json").as_uri())
    used = log.store().getDelegate(first).logStoreImpl()
    assert used.getClass().getName() == store_class


def test_a_commit_lands_whole_and_reads_back_as_delta_reads_it(tmp_path, spark):
    store, conf = _store(spark)
    target = tmp_path / "_delta_log" / "00000000000000000000.json"
    actions = ['{"commitInfo":{"operation":"WRITE"}}', '{"add":{"path":"ds=2026-09-01/a"}}']
    _write(spark, store, conf, target, actions)
    assert target.read_text() == "".join(f"{a}\n" for a in actions)
    read = store.read(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(target.as_uri()), conf)
    assert [read.next() for _ in actions] == actions
    read.close()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left


def test_a_version_another_writer_published_first_is_refused_and_kept(tmp_path, spark):
    """The fault: the other writer's commit of the same version lands after this writer chose
    the version and before it publishes (here, before the call)."""
    store, conf = _store(spark)
    target = tmp_path / "_delta_log" / "00000000000000000001.json"
    target.parent.mkdir()
    theirs = '{"commitInfo":{"operation":"WRITE","theirs":true}}\n'
    target.write_text(theirs)
    with pytest.raises(Py4JJavaError) as refused:
        _write(spark, store, conf, target, ['{"commitInfo":{"operation":"WRITE"}}'])
    assert _refused(refused.value), refused.value
    assert target.read_text() == theirs  # the first commit stands, byte for byte
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_of_writers_racing_for_one_version_exactly_one_wins(tmp_path, spark):
    """Eight writers commit version 5 at once (each call on its own JVM thread): one lands,
    every other is refused, and the file holds the winner's commit, whoever wins."""
    store, conf = _store(spark)
    target = tmp_path / "_delta_log" / "00000000000000000005.json"
    target.parent.mkdir()
    start, outcomes = threading.Barrier(8), {}

    def commit(writer: int) -> None:
        start.wait()
        try:
            _write(spark, store, conf, target, [f'{{"commitInfo":{{"writer":{writer}}}}}'])
            outcomes[writer] = "landed"
        except Py4JJavaError as error:
            outcomes[writer] = "refused" if _refused(error) else str(error)

    threads = [threading.Thread(target=commit, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (winner,) = [w for w, outcome in outcomes.items() if outcome == "landed"]
    assert sorted(outcomes.values()) == ["landed"] + ["refused"] * 7, outcomes
    assert target.read_text() == f'{{"commitInfo":{{"writer":{winner}}}}}\n'
    assert [p.name for p in target.parent.iterdir()] == [target.name]


NO_LINKS = """
package lakeloop.test;

public class NoLinksLogStore extends io.lakeloop.delta.LocalLogStore {
    public NoLinksLogStore(org.apache.hadoop.conf.Configuration conf) { super(conf); }

    @Override
    protected void publish(java.nio.file.Path target, java.nio.file.Path temp)
            throws java.io.IOException {
        throw new java.nio.file.FileSystemException(
            temp.toString(), target.toString(), "Operation not permitted");
    }
}
"""


def _no_links_store(spark, tmp_path: Path):
    """The store on a file system that refuses hard links as Linux's vfat does (EPERM, a
    plain FileSystemException): a subclass whose publishing step fails so, compiled here
    and loaded into the suite's JVM beside the real store."""
    source = tmp_path / "src" / "NoLinksLogStore.java"
    source.parent.mkdir()
    source.write_text(NO_LINKS)
    jars = PROJECT_ROOT / ".cache" / "jars"
    classpath = [jars / LOCAL_LOG_STORE_JAR, *jars.glob("delta-storage-*.jar"),
                 Path(pyspark.__file__).parent / "jars" / "*"]
    classes = tmp_path / "classes"
    done = subprocess.run(["javac", "--release", "17", "-d", str(classes), "-cp",
                           ":".join(map(str, classpath)), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    real, conf = _store(spark)
    jvm, gateway = spark.sparkContext._jvm, spark.sparkContext._gateway
    urls = gateway.new_array(jvm.java.net.URL, 1)
    urls[0] = jvm.java.io.File(str(classes)).toURI().toURL()
    parent = real.getClass().getClassLoader()
    cls = jvm.java.net.URLClassLoader(urls, parent).loadClass("lakeloop.test.NoLinksLogStore")
    types = gateway.new_array(jvm.java.lang.Class, 1)
    types[0] = jvm.java.lang.Class.forName("org.apache.hadoop.conf.Configuration", True, parent)
    args = gateway.new_array(jvm.java.lang.Object, 1)
    args[0] = conf
    return cls.getConstructor(types).newInstance(args), conf


def test_without_hard_links_a_commit_falls_back_to_deltas_store(tmp_path, spark):
    """The fault: publishing fails as a mount without hard links fails (EPERM). The commit
    lands through Delta's own store, whole, with no temporary file left; a version that
    exists is still refused (Delta's own check) and kept."""
    store, conf = _no_links_store(spark, tmp_path)
    log = tmp_path / "t" / "_delta_log"
    first = log / "00000000000000000000.json"
    actions = ['{"commitInfo":{"operation":"WRITE"}}', '{"add":{"path":"ds=2026-09-01/a"}}']
    _write(spark, store, conf, first, actions)
    assert first.read_text() == "".join(f"{a}\n" for a in actions)
    theirs = '{"commitInfo":{"operation":"WRITE","theirs":true}}\n'
    second = log / "00000000000000000001.json"
    second.write_text(theirs)
    with pytest.raises(Py4JJavaError) as refused:
        _write(spark, store, conf, second, ['{"commitInfo":{"operation":"WRITE"}}'])
    assert _refused(refused.value), refused.value
    assert second.read_text() == theirs
    # Delta's store keeps its checksum files (.crc) beside a commit; no temporary file stays.
    assert sorted(p.name for p in log.iterdir() if not p.name.endswith(".crc")) == [
        first.name, second.name]
