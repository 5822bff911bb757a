"""recipes/demo/run.sh (the main job): what can be checked without running it for 14 minutes."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("job_min", ["abc", "-3", "14min"])
def test_bad_job_min_fails_before_any_work(job_min, tmp_path):
    env = {**os.environ, "JOB_MIN": job_min, "DATA": str(tmp_path / "data"), "RUN": str(tmp_path / "run")}
    out = subprocess.run(["bash", str(ROOT / "recipes" / "demo" / "run.sh")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"run.sh: JOB_MIN={job_min}: expected the job's minutes, "
                                               f"e.g. JOB_MIN=14 (0: no time budget)"]
    assert not (tmp_path / "data").exists()  # nothing set up, synthesized or written
