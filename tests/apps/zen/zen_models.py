"""A hydra-zen app's task, in a module of its own (issue 22)."""

import os


def train(lr: float = 0.1, layers: int = 2) -> dict[str, float]:
    with open(os.environ["EXCA_TEST_LOG"], "a") as f:
        f.write(f"train lr={lr} layers={layers}\n")
    return {"loss": lr * layers}
