"""benchmarks/train_step.py: ``--beside`` times a second variant in the same rotation (here the
fused bf16 update beside the default bf16 step), read back from the files it writes."""

from __future__ import annotations

import json

from benchmarks import train_step


def test_beside_times_a_second_variant_in_the_same_rotation(tmp_path):
    code = train_step.main(["--case", "quickstart:16", "--variant", "bf16-fused", "--beside",
                            "bf16", "--threads", "1", "--warmup", "1", "--repeats", "3",
                            "--quick", "--out", str(tmp_path), "--tag=-t"])
    assert code == 0
    report = json.loads((tmp_path / "quick-cpu-t.json").read_text())
    (r,) = report["results"]
    assert r["variant"] == "bf16-fused" and r["overrides"][-1] == "train.fused_update=true"
    b = r["beside"]
    assert b["variant"] == "bf16" and len(b["times_s"]) == len(r["plain_times_s"]) == 3
    ours = sorted(x / y for x, y in zip(r["hierot_times_s"], b["times_s"]))
    assert b["ours_over_it_paired"] == ours[1]  # the median of three pairs
    table = (tmp_path / "quick-cpu-t.md").read_text()
    assert "bf16-fused beside bf16 in the same rotation" in table
