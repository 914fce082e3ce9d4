"""`pose3d batch --ray` against a local Ray instance on 127.0.0.1: same outputs and resume rules as a local
run, and a clip whose worker process is killed is run again by Ray."""

from __future__ import annotations

import json
import os
import sys

import pytest

from pipeline.batch.clip import FAULT_ENV
from pipeline.batch.plan import BatchConfig, plan_batch
from pipeline.batch.ray import RayOptions, ray_engine
from pipeline.batch.runner import run_batch
from pipeline.run import load_run_config
from tests.support.clips import fast_config, mixed_folder

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A private Ray on this machine, listening on 127.0.0.1 only, two CPUs, no dashboard."""
    marker = tmp_path_factory.mktemp("fault") / "first-attempt"
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",   # single-machine mode: loopback addresses only
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",        # workers use this interpreter, not a rebuilt uv env
           FAULT_ENV: f"a.mp4={marker}"}               # workers inherit it: a.mp4's first worker dies
    if "ray" in sys.modules:
        pytest.fail("ray was imported before this fixture could set its single-machine mode")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20)
    try:
        yield ray, marker
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_ray_batch_retries_a_killed_worker_and_resumes(local_ray, tmp_path):
    ray, marker = local_ray
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    src, out = tmp_path / "in", tmp_path / "out"
    expected = mixed_folder(src)
    run_cfg = load_run_config(fast_config(tmp_path))
    engine = ray_engine(RayOptions("local", retries=2))
    config = BatchConfig(exports=("json",))
    summary = run_batch(plan_batch(src, out, run_cfg, config), config, engine=engine)
    by_name = {r.name: r for r in summary.results}
    assert {r.name: r.status for r in summary.results} == expected
    assert marker.exists() and marker.read_text() != by_name["a.mp4"].worker   # died once, then ran elsewhere
    assert by_name["a.mp4"].attempts == 2 and by_name["a.mp4"].frames == 12
    assert by_name["broken.mp4"].reason.startswith("truncated or corrupt") and summary.failed
    for stem in ("a", "nested/c_no_suffix", "nested/deeper/b"):
        assert (out / f"{stem}.mp4").stat().st_size > 0 and json.loads((out / f"{stem}.json").read_text())["tracks"] == []

    again = plan_batch(src, out, run_cfg, config)
    assert again.jobs == () and run_batch(again, config, engine=engine).count("skipped") == 3

    # A run killed before c_no_suffix's record was written: its record is gone, a partial file is left.
    (out / "nested" / ".c_no_suffix.record.json").unlink()
    (out / "nested" / ".c_no_suffix.partial-dead.mp4").write_bytes(b"half")
    resumed = run_batch(plan_batch(src, out, run_cfg, config), config, engine=engine)
    assert [r.name for r in resumed.results if r.status == "done"] == ["nested/c_no_suffix"]
    assert not list(out.rglob("*.partial-*"))
