"""hierot.run's metrics.csv: the writer extends its header as new columns appear."""

from __future__ import annotations

from hierot.run import MetricsWriter, Run


def test_metrics_writer_extends_its_header(tmp_path):
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path)
    writer.write({"step": 1, "a": 1.0})
    writer.write({"step": 2, "a": 2.0, "val_a": 3.0})
    writer.close()
    MetricsWriter(path).write({"step": 3, "a": 4.0, "val_b": 5.0})
    rows = Run(tmp_path).read_metrics()
    assert rows == [{"step": 1, "a": 1}, {"step": 2, "a": 2, "val_a": 3},
                    {"step": 3, "a": 4, "val_b": 5}]
