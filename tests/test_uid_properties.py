"""Issue 7, item 6: properties of the uid (hypothesis, plus a seeded generator for the volume).

- stable under the key order of the config's dicts, and under the order of CLI overrides
  (OmegaConf- and Hydra-composed configs whose keys were inserted in another order);
- no collision among 1,000,000 distinct random configs (many sharing a readable prefix);
- a folder name that never escapes the cache: no '/', no NUL, never '.'-leading, at most 255
  bytes, ``Path(cache, uid).resolve().parent == Path(cache).resolve()``, whatever the values;
- (issue 21) configs that differ only in a kind (bool, int, float, -0.0, a subclass, a list or a
  tuple) never share a uid, a default included; uids are the same under every PYTHONHASHSEED.
"""

from __future__ import annotations

import json
import random
import typing as tp
from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from exca_hydra import TaskInfra
from exca_hydra.cache.uid import compute_uid, uid_config, uid_string

from test_launcher import TRAINER, Trainer

CACHE = Path("/tmp/exca-uid-properties/cache")  # only resolved, never created

# ----- strategies -----
ANY_CHAR = st.characters(codec=None) | st.characters(categories=["Cs"])  # incl. lone surrogates
WEIRD = st.sampled_from(["/", "..", ".", "../..", "a/../../b", "\x00", "=", ",", "-", " ", "é", "日本", "🙂", "\\", "~"])
TEXT = st.text(ANY_CHAR, max_size=30) | WEIRD | st.lists(WEIRD | st.text(ANY_CHAR, max_size=3), max_size=8).map("".join)
HUGE = st.tuples(TEXT, st.integers(1_000, 50_000)).map(lambda t: (t[0] or "x") * t[1])
KEYS = TEXT | st.sampled_from(["a=b", "a,b", "a.b", "=", ",", "..", "/", "../x", "\x00", "é" * 200]) | HUGE
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT | HUGE
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS, c, max_size=4), max_leaves=20)
CONFIGS = st.dictionaries(KEYS, VALUES, max_size=6)


def nested(depth: int, key: str = "k") -> dict[str, tp.Any]:
    cfg: dict[str, tp.Any] = {"leaf": "../../" * 10}
    for i in range(depth):
        cfg = {f"{key}{i % 3}": cfg, "x": i}
    return cfg


def reordered(value: tp.Any, rng: random.Random) -> tp.Any:
    """The same config with every dict's keys inserted in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        if len(items) > 1 and items == list(value.items()):
            items.reverse()
        return {k: reordered(v, rng) for k, v in items}
    if isinstance(value, list):
        return [reordered(v, rng) for v in value]
    return value


class Free(pydantic.BaseModel):
    """A model with free-form values: strings and dicts go into the uid as given."""

    name: str = "n"
    params: dict[str, tp.Any] = {}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> None:
        pass


# ----- 1. stability -----
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=CONFIGS, seed=st.integers(0, 2**32))
def test_uid_stable_under_dict_key_order(cfg: dict[str, tp.Any], seed: int) -> None:
    other = reordered(cfg, random.Random(seed))
    assert other == cfg
    assert compute_uid(other) == compute_uid(cfg)
    model = Free(params=cfg)
    assert uid_string(uid_config(Free(params=other))) == uid_string(uid_config(model))


IDENT = st.sampled_from(["a", "b", "c", "lr", "x_1", "model", "opt"])
DOTTED = st.lists(IDENT, min_size=1, max_size=3).map(".".join)
LEAF = st.integers(-1000, 1000) | st.sampled_from(["sgd", "adam", "true", "false", "null", "1.5", "x-y"])


def _no_prefix_clash(keys: list[str]) -> bool:  # "a" and "a.b" cannot both be leaves
    return not any(k != o and o.startswith(k + ".") for k in keys for o in keys)


@settings(max_examples=100, deadline=None)
@given(
    overrides=st.dictionaries(DOTTED, LEAF, min_size=1, max_size=8).filter(lambda d: _no_prefix_clash(list(d))),
    base=st.dictionaries(IDENT, st.integers(), max_size=4),
    data=st.data(),
)
def test_uid_stable_under_override_order_omegaconf(overrides: dict[str, tp.Any], base: dict[str, int], data: tp.Any) -> None:
    lines = [f"{key}={value}" for key, value in overrides.items()]
    other = data.draw(st.permutations(lines))
    if len(lines) > 1:  # a permutation that differs, when there is one
        other = other if other != lines else lines[::-1]
    base_cfg = OmegaConf.create({k: v for k, v in base.items() if k not in {o.split(".")[0] for o in overrides}})

    def compose(dotlist: list[str]) -> dict[str, tp.Any]:
        cfg = OmegaConf.merge(base_cfg, OmegaConf.from_dotlist(dotlist))
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]

    first, second = compose(lines), compose(other)
    assert first == second
    assert compute_uid(first) == compute_uid(second)
    assert compute_uid(Free(params=first)) == compute_uid(Free(params=second))


@pytest.fixture(scope="module")
def hydra_compose(tmp_path_factory: pytest.TempPathFactory) -> tp.Iterator[tp.Callable[[list[str]], Trainer]]:
    """Compose the trainer app's config as its command line would (Hydra's compose API)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from exca_hydra.bridge.launch.convert import to_model

    GlobalHydra.instance().clear()
    from hydra import version

    base = version.getbase()  # initialize sets it for the whole process: later launches expect theirs
    with initialize_config_dir(config_dir=str(TRAINER / "conf"), version_base="1.3"):
        yield lambda overrides: to_model(compose("config", overrides=[*overrides, "infra.folder=null"]), Trainer)
    GlobalHydra.instance().clear()
    version.VersionBase.instance().version_base = base


CLI = st.fixed_dictionaries(
    {"model": st.sampled_from(["conv", "transformer"]), "layers": st.integers(1, 64), "lr": st.floats(0.001, 1.0)},
    optional={"extra": st.integers(1, 9), "version": st.sampled_from(["v1", "v2"])},
)


@settings(max_examples=40, deadline=None)
@given(choice=CLI, data=st.data())
def test_uid_stable_under_cli_override_order(hydra_compose: tp.Callable[[list[str]], Trainer], choice: dict[str, tp.Any], data: tp.Any) -> None:
    lines = [f"model={choice['model']}", f"model.layers={choice['layers']}", f"lr={choice['lr']}"]
    if "extra" in choice:
        lines.append(f"model.{'kernel' if choice['model'] == 'conv' else 'embeddings'}={choice['extra']}")
    if "version" in choice:
        lines.append(f"+infra.version={choice['version']}")
    other = data.draw(st.permutations(lines))
    first, second = hydra_compose(lines), hydra_compose(other)
    assert first.infra.uid() == second.infra.uid()
    assert first.model.name == choice["model"] and first.model.layers == choice["layers"]


# ----- 2. no collision -----
_VOCAB = ["a", "b", "lr", "model", "layers", "name", "opt", "seed", "x", "data", "path", "é", "k=v", "a,b"]
_LONG = "a_long_common_value_that_is_truncated_in_the_prefix_" * 2  # > 40 chars: same readable prefix


def _random_value(rng: random.Random, depth: int) -> tp.Any:
    kind = rng.randrange(10 if depth < 2 else 7)
    if kind == 0:
        return rng.randrange(-5, 5)  # small ints: frequent near-duplicates
    if kind == 1:
        return rng.randrange(10**9)
    if kind == 2:
        return rng.choice([0.1, 0.5, 1.0, 1, True, False, None, "1", "1.0", "true", "", "null"])
    if kind == 3:
        return round(rng.random(), rng.randrange(1, 17))
    if kind == 4:
        return _LONG + str(rng.randrange(10**6))
    if kind == 5:
        return "".join(rng.choice("ab/.é=,") for _ in range(rng.randrange(6)))
    if kind == 6:
        return [rng.randrange(3) for _ in range(rng.randrange(4))]
    return _random_config(rng, depth + 1)


def _random_config(rng: random.Random, depth: int = 0) -> dict[str, tp.Any]:
    return {rng.choice(_VOCAB): _random_value(rng, depth) for _ in range(rng.randrange(1, 5))}


def test_no_collision_over_a_million_distinct_configs() -> None:
    rng = random.Random(20240607)
    seen: set[str] = set()
    uids: set[str] = set()
    prefixes: set[str] = set()
    while len(seen) < 1_000_000:  # ~20 s, ~450 MB: the million, streamed
        cfg = _random_config(rng)
        canonical = json.dumps(cfg, sort_keys=True)  # distinct configs: distinct canonical JSON
        if canonical in seen:
            continue
        seen.add(canonical)
        uid = compute_uid(cfg)
        uids.add(uid)
        prefixes.add(uid.rsplit("-", 1)[0])
    assert len(uids) == len(seen)
    assert len(seen) - len(prefixes) > 25_000  # many share a readable prefix: the hash tells them apart
    # distinct models too (defaults excluded: distinct means a distinct uid config)
    models = {}
    for i in range(20_000):
        kind = rng.choice(["conv", "transformer"])
        extra = {"kernel": rng.randrange(50)} if kind == "conv" else {"embeddings": rng.randrange(50)}
        trainer = Trainer(model={"name": kind, "layers": rng.randrange(50), **extra}, lr=rng.randrange(1, 100) / 100)
        models[json.dumps(uid_config(trainer), sort_keys=True)] = uid_string(uid_config(trainer))
    assert len(set(models.values())) == len(models) > 10_000


# ----- 3. folder names -----
def assert_safe_folder_name(uid: str) -> None:
    assert uid and "/" not in uid and "\x00" not in uid, uid
    assert not uid.startswith("."), uid
    assert uid not in (".", "..")
    assert len(uid.encode("utf8")) <= 255, len(uid.encode("utf8"))
    assert Path(CACHE, uid).resolve().parent == CACHE.resolve(), uid
    assert Path(CACHE, uid).resolve().name == uid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cfg=CONFIGS)
@example(cfg={"..": ".."})
@example(cfg={"/": "/"})
@example(cfg={"../../etc/passwd": "x"})
@example(cfg={".hidden": 1})
@example(cfg={"-rf": "/"})
@example(cfg={"a": "\x00"})
@example(cfg={"é" * 300: "日本" * 300})
@example(cfg={"k=v,w": "a=b,c"})
@example(cfg={"x": "\udcff"})  # a non-UTF-8 byte of argv, as Python decodes it
@example(cfg={"x": "🙂" * 100_000})
@example(cfg=nested(400))
@example(cfg={})
def test_folder_name_never_escapes_the_cache(cfg: dict[str, tp.Any]) -> None:
    assert_safe_folder_name(compute_uid(cfg))
    names = [k for k in cfg if isinstance(cfg[k], str)]
    model = Free(name=cfg[names[0]] if names else "..", params=cfg)
    assert_safe_folder_name(uid_string(uid_config(model)))


@settings(max_examples=100, deadline=None)
@given(name=TEXT | HUGE)
@example(name="..")
@example(name=".")
@example(name="/")
@example(name="")
@example(name="-")
def test_folder_name_of_a_single_string_field(name: str) -> None:
    uid = Free(name=name).infra.uid()
    assert_safe_folder_name(uid)
    assert uid.endswith("-" + uid_string(uid_config(Free(name=name))).rsplit("-", 1)[1])


# ----- 4. kinds (issue 21) -----
def _kind_variants(value: tp.Any) -> tp.Iterator[tp.Any]:
    """Values ``==`` to ``value`` that differ from it in the kind of one part: a bool for an
    int, a float for an int (and back), -0.0 for 0.0, a tuple for a list (and back)."""
    kind = type(value)
    if kind is bool:
        yield int(value)
    elif kind is int:
        yield float(value)
        if value in (0, 1):
            yield bool(value)
    elif kind is float:
        if value == 0:
            yield -value
        if value.is_integer() and abs(value) < 2**53:
            yield int(value)
    elif kind in (list, tuple):
        yield (tuple if kind is list else list)(value)
        for i, item in enumerate(value):
            for other in _kind_variants(item):
                yield kind([*value[:i], other, *value[i + 1 :]])
    elif kind is dict:
        for key, item in value.items():
            for other in _kind_variants(item):
                yield {**value, key: other}


NUMBERS = st.sampled_from([0, 1, -1, 2, 0.0, -0.0, 1.0, 2.5, True, False]) | st.integers(-5, 5)
KIND_VALUES = st.recursive(
    NUMBERS | st.none() | st.sampled_from(["a", "1"]),
    lambda c: st.lists(c, max_size=3) | st.lists(c, max_size=3).map(tuple) | st.dictionaries(st.sampled_from(["a", "b"]), c, max_size=2),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=KIND_VALUES)
def test_values_that_differ_only_in_kind_never_share_a_uid(value: tp.Any) -> None:
    variants = list(_kind_variants(value))
    Model = pydantic.create_model("KindDefault", value=(tp.Any, value), holder=(dict[str, tp.Any], {"k": value}))
    default = compute_uid(Model())
    assert compute_uid(Model(value=value)) == default  # the default itself: left out
    for other in variants:
        assert compute_uid(Model(value=other)) != default, (value, other)
        assert compute_uid(Model(holder={"k": other})) != default, (value, other)
        assert compute_uid({"x": other}) != compute_uid({"x": value}), (value, other)  # a plain dict config


class BaseOpt(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    lr: float = 0.1


class SubOpt(BaseOpt):
    pass


class WithOpt(pydantic.BaseModel):
    opt: BaseOpt = BaseOpt()
    opts: list[BaseOpt] = []


@settings(max_examples=50, deadline=None)
@given(lr=st.floats(0, 1), n=st.integers(0, 3))
def test_a_subclass_never_shares_its_bases_uid(lr: float, n: int) -> None:
    assert compute_uid(WithOpt(opt=SubOpt(lr=lr))) != compute_uid(WithOpt(opt=BaseOpt(lr=lr)))
    if n:
        assert compute_uid(WithOpt(opts=[SubOpt(lr=lr)] * n)) != compute_uid(WithOpt(opts=[BaseOpt(lr=lr)] * n))


_SEED_SCRIPT = """
import json, typing as tp
import pydantic
from exca_hydra.cache.uid import compute_uid

class Sets(pydantic.BaseModel):
    keys: dict[frozenset[str], int] = {}
    names: set[str] = set()
    anything: tp.Any = None

configs = [
    Sets(keys={frozenset({"alpha", "beta", "gamma", "delta"}): 1, frozenset({"x", "y"}): 2}),
    Sets(names={"alpha", "beta", "gamma", "delta", "eps"}),
    Sets(anything={frozenset({"a", "b", "c"}): {"z", "y", "x"}}),
    {"s": {"q", "r", "s", "t"}},
]
print(json.dumps([compute_uid(c) for c in configs]))
"""


def test_uids_are_the_same_under_every_hash_seed() -> None:
    import os
    import subprocess
    import sys

    outputs = set()
    for seed in ("0", "1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", _SEED_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout.strip())
    assert len(outputs) == 1, outputs
