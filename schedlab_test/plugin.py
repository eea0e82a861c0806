"""The pytest plugin (entry point ``pytest11: schedlab``): the ``schedlab`` marker, the
``ctx`` fixture, the gauntlet, ``--budget``, ``--shard`` and VM slots.

A test with the marker runs one VM: it returns a :class:`~schedlab_scenario.Scenario`, or
calls ``ctx.run(...)`` itself. ``--gauntlet`` replaces each such test by its variants
(presets x flag profiles x ``--kernel``s), ``--budget S`` keeps a covering subset that fits
S seconds, ``--shard K/N`` keeps this host's share of everything collected.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .marker import MARKER
from .session import Session

# Everything else is imported where a schedlab test needs it: this module is loaded by every
# pytest run in the virtualenv (entry point), most of which have no schedlab test.
if TYPE_CHECKING:
    from .context import Ctx
    from .gauntlet import Variant
    from .spec import SpecError, VmSpec

_VARIANT = "_schedlab_variant"
_KEY_SESSION = pytest.StashKey[Session]()
_KEY_NOTES = pytest.StashKey[list[str]]()
_KEY_CTX = pytest.StashKey["Ctx"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("schedlab", "schedlab VM tests")
    g.addoption("--gauntlet", action="store_true", help="run schedlab tests' gauntlet variants")
    g.addoption(
        "--gauntlet-presets",
        default=None,
        metavar="A,B",
        help="presets the gauntlet may use (default: each test's presets=, else all 24)",
    )
    g.addoption(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep a covering subset of the gauntlet that fits this many seconds",
    )
    g.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run shard K of N (deterministic, cost-balanced)",
    )
    g.addoption(
        "--kernel",
        action="append",
        default=[],
        metavar="K",
        help="kernel path or cached version (repeatable: a gauntlet dimension)",
    )
    g.addoption(
        "--schedlab-engine",
        default="auto",
        choices=("auto", "kvm", "qemu"),
        help="VM engine of schedlab tests",
    )
    g.addoption(
        "--vm-slots",
        type=int,
        default=None,
        metavar="N",
        help="host CPU slots VMs share (default: the host's CPUs)",
    )
    g.addoption(
        "--vm-mem-mib",
        type=int,
        default=None,
        metavar="MIB",
        help="host memory VMs share (default: 3/4 of MemTotal)",
    )
    g.addoption(
        "--sidecar-dir",
        default=None,
        metavar="DIR",
        help="where result sidecars go (default: the session's output directory)",
    )
    g.addoption(
        "--schedlab-out",
        default=None,
        metavar="DIR",
        help="per-test plans, results and run logs (default: in the schedlab cache)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**shape): a schedlab VM test (topology, scheduler, flags, duration, workers, "
        "memory, watchdog_timeout, asserts, expect_error, gauntlet constraints)",
    )
    winput = getattr(config, "workerinput", None)
    out = (winput or {}).get("schedlab_out") or config.getoption("schedlab_out")
    if not out:
        from schedlab_shared.cache import cache_root

        out = cache_root() / "pytest" / (time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    out = Path(out).resolve()
    side = config.getoption("sidecar_dir")
    kernels = config.getoption("kernel")
    config.stash[_KEY_SESSION] = Session(
        out=out,
        sidecars=Path(side).resolve() if side else out / "sidecars",
        engine=config.getoption("schedlab_engine"),
        slots_cpus=config.getoption("vm_slots"),
        slots_mem_mib=config.getoption("vm_mem_mib"),
        kernel=kernels[0] if len(kernels) == 1 else None,
    )
    config.stash[_KEY_NOTES] = []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # noqa: ANN401  (pytest-xdist's WorkerController)
    """pytest-xdist: every worker writes under the controller's session directory."""
    node.workerinput["schedlab_out"] = str(node.config.stash[_KEY_SESSION].out)


def _spec(definition: Any) -> VmSpec | SpecError:  # noqa: ANN401
    from .spec import SpecError, spec_of

    marker = definition.get_closest_marker(MARKER)
    try:
        return spec_of(dict(marker.kwargs))
    except SpecError as e:
        return e


def _kernel_label(k: str) -> str:
    return Path(k).name if "/" in k else k


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(MARKER) is None:
        return
    from .gauntlet import GauntletError, Variant
    from .spec import SpecError

    spec = _spec(metafunc.definition)
    config = metafunc.config
    kernels = config.getoption("kernel")
    if isinstance(spec, SpecError):
        return  # the test fails with the message when it runs
    variants: list[Variant | GauntletError] = []
    if config.getoption("gauntlet") and spec.gauntlet:
        variants.extend(_variants(metafunc, spec, kernels))
    elif len(kernels) > 1:
        return _by_kernel(metafunc, kernels)
    else:
        return
    metafunc.fixturenames.append(_VARIANT)
    ids = [v.id if isinstance(v, Variant) else "gauntlet-error" for v in variants]
    metafunc.parametrize(_VARIANT, variants, ids=ids)


def _variants(metafunc: pytest.Metafunc, spec: VmSpec, kernels: list[str]) -> list[Any]:
    from orchestrator.scheduler.examples import builtin

    from .gauntlet import GauntletError, expand

    sched = builtin(spec.scheduler)
    if sched is None:  # a path: no flags known; the gauntlet runs over presets only
        from orchestrator.scheduler.definition import SchedulerDef

        sched = SchedulerDef(name="custom", binary="/custom")
    wanted = metafunc.config.getoption("gauntlet_presets")
    presets = tuple(p for p in wanted.split(",") if p) if wanted else spec.presets
    try:
        return expand(
            metafunc.function.__name__,
            sched,
            spec.constraints,
            presets=presets,
            required=spec.required_flags,
            excluded=spec.excluded_flags,
            among=spec.gauntlet_flags,
            kernels=[_kernel_label(k) for k in kernels] if len(kernels) > 1 else (),
        )
    except GauntletError as e:
        return [e]


def _by_kernel(metafunc: pytest.Metafunc, kernels: list[str]) -> None:
    metafunc.fixturenames.append(_VARIANT)
    metafunc.parametrize(
        _VARIANT, [("kernel", k) for k in kernels], ids=[_kernel_label(k) for k in kernels]
    )


def _ctx_for(item: pytest.Item) -> Ctx:
    from .context import Ctx
    from .gauntlet import GauntletError, Variant
    from .spec import SpecError

    cached = item.stash.get(_KEY_CTX, None)
    if cached is not None:
        return cached
    spec = _spec(item)
    if isinstance(spec, SpecError):
        pytest.fail(str(spec), pytrace=False)
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get(_VARIANT) if callspec is not None else None
    if isinstance(param, GauntletError):
        pytest.fail(f"gauntlet: {param}", pytrace=False)
    session = item.config.stash[_KEY_SESSION]
    variant = param if isinstance(param, Variant) else None
    if isinstance(param, tuple):  # ("kernel", K) of a base test over several kernels
        from dataclasses import replace

        spec = replace(spec, kernel=param[1])
    ctx = Ctx(item, spec, session, variant)
    item.stash[_KEY_CTX] = ctx
    return ctx


@pytest.fixture
def ctx(request: pytest.FixtureRequest) -> Ctx:
    """The test's VM (``@schedlab_test.vm(...)``): build a Scenario, ``ctx.run`` it."""
    if request.node.get_closest_marker(MARKER) is None:
        pytest.fail(
            "the ctx fixture needs the schedlab marker (@schedlab_test.vm(...))", pytrace=False
        )
    return _ctx_for(request.node)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if pyfuncitem.get_closest_marker(MARKER) is None:
        return None
    from schedlab_scenario import Scenario

    ctx = _ctx_for(pyfuncitem)
    args = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}
    returned = pyfuncitem.obj(**args)
    if isinstance(returned, Scenario):
        ctx.run(returned)
    elif returned is not None:
        pytest.fail(
            f"a schedlab test returns a Scenario or None, not {type(returned).__name__}",
            pytrace=False,
        )
    elif ctx.outcome is None:
        pytest.fail(
            "the test neither returned a Scenario nor called ctx.run(): nothing ran",
            pytrace=False,
        )
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("budget") is None and not config.getoption("shard"):
        return
    from .costs import STATIC, TimesStore
    from .selection import Candidate, ShardError, parse_shard, shard, within_budget

    notes = config.stash[_KEY_NOTES]
    budget = config.getoption("budget")
    if budget is not None:
        model = TimesStore().model()
        cands, others = [], []
        for it in items:
            v = _variant_of(it)
            if v is None:
                others.append(it)
                continue
            cost = model.estimate(v.preset.shape.nr_cpus, _duration(it), it.nodeid)
            covers = frozenset((f, v.profile.name, v.test) for f in v.features)
            cands.append(Candidate(it.nodeid, cost, covers))
        kept = {c.id for c in within_budget(cands, budget)}
        universe = frozenset().union(*(c.covers for c in cands)) if cands else frozenset()
        got = frozenset().union(*(c.covers for c in cands if c.id in kept)) if kept else frozenset()
        est = sum(c.cost for c in cands if c.id in kept)
        _deselect(config, items, lambda it: _variant_of(it) is not None and it.nodeid not in kept)
        notes.append(
            f"gauntlet budget {budget:g} s: {len(kept)}/{len(cands)} variants, estimated "
            f"{est:.0f} s, covering {len(got)}/{len(universe)} (preset feature, profile, test)"
        )
        del others
    text = config.getoption("shard")
    if text:
        try:
            k, n = parse_shard(text)
        except ShardError as e:
            raise pytest.UsageError(str(e)) from None
        costs = {
            it.nodeid: STATIC.estimate(_cpus(it), _duration(it))
            if it.get_closest_marker(MARKER)
            else 0.1
            for it in items
        }
        mine = set(shard([it.nodeid for it in items], costs.__getitem__, k, n))
        total = sum(costs[i] for i in mine)
        _deselect(config, items, lambda it: it.nodeid not in mine)
        notes.append(f"shard {k}/{n}: {len(mine)} tests, estimated {total:.0f} s")


def _deselect(config: pytest.Config, items: list[pytest.Item], drop: Any) -> None:  # noqa: ANN401
    gone = [it for it in items if drop(it)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = [it for it in items if not drop(it)]


def _variant_of(item: pytest.Item) -> Variant | None:
    from .gauntlet import Variant

    cs = getattr(item, "callspec", None)
    v = cs.params.get(_VARIANT) if cs is not None else None
    return v if isinstance(v, Variant) else None


def _duration(item: pytest.Item) -> float:
    from .spec import VmSpec

    s = _spec(item)
    return s.duration if isinstance(s, VmSpec) else 2.0


def _cpus(item: pytest.Item) -> int:
    from .spec import VmSpec

    v = _variant_of(item)
    if v is not None:
        return v.preset.shape.nr_cpus
    s = _spec(item)
    try:
        return s.shape.nr_cpus if isinstance(s, VmSpec) else 2
    except ValueError:
        return 2


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:  # noqa: ANN401
    for line in config.stash.get(_KEY_NOTES, []):
        terminalreporter.write_line(f"schedlab: {line}")
    session = config.stash.get(_KEY_SESSION, None)
    if session is not None and session.sidecars is not None and session.sidecars.is_dir():
        terminalreporter.write_line(f"schedlab: result sidecars in {session.sidecars}")


__all__ = ("ctx",)
