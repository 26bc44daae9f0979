"""The request log is written through: a record is in its file when append returns, so a
server killed right after answering loses nothing; a reader skips only a line still being
written."""

import json
import multiprocessing
import os
import signal

from lakeloop.deployment.seldon.request_log import RequestLog, complete_lines


def _record(i: int, ds: str = "2026-09-01") -> dict:
    return {"request_id": f"r{i}", "row": 0, "ds": ds, "probability": i / 1000}


def _serve_then_die(directory: str, answered, count: int) -> None:
    log = RequestLog(directory, "model")
    for i in range(count):
        log.append(_record(i))
        answered.value = i + 1  # "the answer is sent" only after the record is written
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no flush, no close


def _logged(directory) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("ds=*/*.jsonl"))
            for line in complete_lines(path)]


def test_every_answered_record_survives_a_sigkill(tmp_path):
    answered = multiprocessing.Value("i", 0)
    process = multiprocessing.get_context("fork").Process(
        target=_serve_then_die, args=(str(tmp_path), answered, 1_234))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    logged = _logged(tmp_path)
    assert answered.value == 1_234
    assert [r["request_id"] for r in logged] == [f"r{i}" for i in range(1_234)]


def test_a_request_with_rows_on_several_days_lands_in_each_days_file(tmp_path):
    log = RequestLog(str(tmp_path), "model")
    log.append(_record(1, "2026-09-01"), _record(2, "2026-09-02"), _record(3, "2026-09-01"))
    assert sorted(p.parent.name for p in tmp_path.glob("ds=*/*.jsonl")) == [
        "ds=2026-09-01", "ds=2026-09-02"]
    assert [r["request_id"] for r in _logged(tmp_path)] == ["r1", "r3", "r2"]
    log.close()


def test_a_full_file_rolls_over_and_nothing_is_lost(tmp_path):
    log = RequestLog(str(tmp_path), "model", max_file_bytes=1_234)
    for i in range(300):
        log.append(_record(i))
    files = list(tmp_path.glob("ds=*/*.jsonl"))
    assert len(files) > 5 and all(f.stat().st_size <= 1_234 for f in files)
    assert sorted(r["request_id"] for r in _logged(tmp_path)) == sorted(
        f"r{i}" for i in range(300))
    log.close()


def test_a_reader_skips_only_the_line_still_being_written(tmp_path):
    path = tmp_path / "part.jsonl"
    path.write_text('{"request_id":"a"}\n{"request_id":"b"}\n{"request_')
    assert [json.loads(line)["request_id"] for line in complete_lines(path)] == ["a", "b"]
