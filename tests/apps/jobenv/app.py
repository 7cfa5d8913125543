"""A plain @hydra.main app that records what each job sees of itself: submitit's job environment,
``hydra.job.id``, its folder; in $EXCA_TEST_LOG/<job num>.json. ``action`` picks what it does
then (conf/config.yaml)."""

import json
import os
import time

import hydra
from omegaconf import DictConfig


def fail(x: int) -> None:
    raise ZeroDivisionError(f"x={x} / 0")


def wait_for_release() -> None:
    release = os.environ["EXCA_TEST_RELEASE"]
    open(release + ".waiting", "w").close()
    for _ in range(1200):
        if os.path.exists(release):
            return
        time.sleep(0.1)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    import submitit
    from hydra.core.hydra_config import HydraConfig

    time.sleep(cfg.delay)
    job = HydraConfig.get().job
    print(f"job {job.num} says hello", flush=True)
    env = submitit.JobEnvironment()
    seen = {
        "cluster": env.cluster, "job_id": env.job_id, "stdout": str(env.paths.stdout),
        "stderr": str(env.paths.stderr), "hydra_job_id": job.id, "num": job.num, "cwd": os.getcwd(),
    }  # fmt: skip
    if cfg.action == "sleep":
        time.sleep(600)
    if cfg.action == "fail":
        fail(cfg.x)
    if cfg.action in ("lazy", "code"):
        if cfg.action == "lazy":
            wait_for_release()
        import snap_code  # read from disk now, long after the launch

        seen["code"] = snap_code.VALUE
    folder = os.environ.get("EXCA_TEST_LOG")
    if folder:
        with open(os.path.join(folder, f"{job.num}.json"), "w", encoding="utf8") as f:
            json.dump(seen, f)
    return f"x={cfg.x}"


if __name__ == "__main__":
    main()
