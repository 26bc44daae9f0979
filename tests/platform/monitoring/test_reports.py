"""The reports server sends monitoring reports and nothing else of the data root."""

import http.client

import requests

from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.monitoring.server import report_url, serve_in_background


def _tree(root):
    report = root / "credit_risk" / "monitoring" / "drift_report" / "ds=2026-10-15"
    report.mkdir(parents=True)
    (report / "report.html").write_text("<html><body>drift</body></html>")
    (report / "secret.db").write_text("no")
    (root / "mlflow").mkdir()
    (root / "mlflow" / "mlflow.db").write_text("no")
    (root / "credit_risk" / "lakehouse").mkdir()
    (root / "credit_risk" / "lakehouse" / "x.html").write_text("no")
    return report / "report.html"


def test_a_report_opens_and_nothing_else_does(tmp_path):
    html = _tree(tmp_path)
    server = serve_in_background(tmp_path)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        link = report_url(base, tmp_path, html)
        assert link == f"{base}/credit_risk/monitoring/drift_report/ds%3D2026-10-15/report.html"
        answer = requests.get(link, timeout=5)
        assert answer.status_code == 200 and "drift" in answer.text
        for path in ("/mlflow/mlflow.db", "/credit_risk/lakehouse/x.html",
                     "/credit_risk/monitoring/drift_report/ds=2026-10-15/secret.db",
                     "/credit_risk/monitoring/%2e%2e/%2e%2e/mlflow/mlflow.db",
                     "/credit_risk/monitoring/drift_report/missing.html", "/"):
            assert requests.get(base + path, timeout=5).status_code == 404, path
    finally:
        server.shutdown()


def _raw_status(port: int, path: str) -> int:
    """GET ``path`` exactly as written (requests would normalise ``..`` away first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_no_way_out_of_the_monitoring_tree(tmp_path):
    html = _tree(tmp_path)
    monitoring = html.parents[2]
    (monitoring / "escape.html").symlink_to(tmp_path / "credit_risk" / "lakehouse" / "x.html")
    (monitoring / "fine.html").symlink_to(html)  # a link that stays inside is served
    server = serve_in_background(tmp_path)
    port = server.server_address[1]
    try:
        assert _raw_status(port, "/credit_risk/monitoring/fine.html") == 200
        for path in ("/credit_risk/monitoring/escape.html",
                     "/credit_risk/monitoring/../lakehouse/x.html",
                     "/credit_risk/monitoring/%2e%2e/lakehouse/x.html",
                     "/credit_risk/monitoring/drift_report/..%2f..%2flakehouse/x.html",
                     "/credit_risk/monitoring/%00.html"):
            assert _raw_status(port, path) == 404, path
        assert _raw_status(port, "/credit_risk/monitoring/fine.html") == 200  # still serving
    finally:
        server.shutdown()


def test_report_metadata_is_a_link_inside_the_data_root_and_a_path_outside(tmp_path):
    html = _tree(tmp_path)
    lakehouse = LakehouseResource(data_root=str(tmp_path), reports_url="http://127.0.0.1:8765")
    assert lakehouse.report_link(html).value.startswith("http://127.0.0.1:8765/credit_risk/")
    outside = tmp_path.parent / "elsewhere.html"
    assert lakehouse.report_link(outside).value == str(outside)
