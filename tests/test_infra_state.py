"""An infra's private state (which method it decorates, the config holding it, a value kept in RAM)
is one typed object that pickling and copying leave behind."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pydantic
import pytest

from exca_hydra import MapInfra, TaskInfra
from exca_hydra.owner import NOTHING, InfraState

CALLS: list[int] = []


class Task(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra(keep_in_ram=True)

    @infra.apply
    def run(self) -> int:
        CALLS.append(self.x)
        return 10 * self.x


class Items(pydantic.BaseModel):
    k: int = 2
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str)
    def run(self, items: list[int]):  # type: ignore[no-untyped-def]
        for item in items:
            yield item * self.k


def test_the_state_is_typed_and_bound_to_its_config() -> None:
    task = Task()
    state = task.infra._state
    assert isinstance(state, InfraState) and state.applied is None
    assert state.binding is not None and state.binding.obj is task and state.binding.name == "infra"
    items = Items()
    assert isinstance(items.infra._state, InfraState) and items.infra._binding().obj is items
    # the class default itself is bound to nothing
    assert Task.model_fields["infra"].default._state.binding is None


def test_pickling_leaves_the_state_behind(tmp_path: Path) -> None:
    CALLS.clear()
    task = Task(x=3, infra={"folder": tmp_path})
    assert task.run() == 30 and task.infra._binding().ram == 30
    back = pickle.loads(pickle.dumps(task))
    binding = back.infra._binding()
    assert binding.obj is back and binding.ram is NOTHING  # bound again, the RAM value not carried
    assert back.run() == 30 and CALLS == [3]  # read from the cache, not recomputed
    alone = pickle.loads(pickle.dumps(task.infra))
    assert alone._binding_or_none() is None
    with pytest.raises(RuntimeError, match="not attached to a config"):
        alone.uid()
    for copied in (copy.copy(task.infra), copy.deepcopy(task.infra), task.infra.model_copy()):
        assert copied._binding_or_none() is None and task.infra._binding().obj is task
    items = pickle.loads(pickle.dumps(Items(k=3)))
    assert items.infra._binding().obj is items and list(items.run([1, 2])) == [3, 6]


def test_applying_twice_or_not_at_all_is_refused() -> None:
    infra = TaskInfra()

    def f(self: object) -> int:
        return 1

    infra.apply(f)
    with pytest.raises(RuntimeError, match="already applied"):
        infra.apply(f)
    with pytest.raises(RuntimeError, match="already applied"):
        Task().infra.apply(f)  # bound: applied through its class
    with pytest.raises(RuntimeError) as raised:

        class Bare(pydantic.BaseModel):
            infra: TaskInfra = TaskInfra()

    # Python 3.11 wraps errors of __set_name__, 3.12 does not
    assert "not applied to any method" in f"{raised.value} {raised.value.__cause__}"
