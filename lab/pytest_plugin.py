"""pytest plugin: labs as fixtures, testinfra hosts for nodes, tunnel assertions.

    pytestmark = pytest.mark.vpnlab_topology("topologies/home-office.yml")

    def test_wireguard(vpnlab_lab):
        assert_tunnel(vpnlab_lab.check("alice", "wireguard"), "up")

A lab comes up once per test module (``vpnlab_lab``) or per test
(``vpnlab_factory``) and is removed afterwards whatever happened, unless
``--vpnlab-keep``. Without a reachable engine the tests are skipped with the
reason, or fail with ``--vpnlab-require-engine`` (CI uses that).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from testinfra.backend.docker import DockerBackend

from lab.errors import DockerUnavailable, VpnlabError
from lab.check.results import TunnelResult
from lab.runtime.engine import container_name
from lab.runtime.lab import DockerLab, ExecResult
from lab.topology import Topology, load_topology, parse_topology

if TYPE_CHECKING:  # pragma: no cover
    from lab.plan import LabPlan
    from lab.steps.results import StepResult


class RunningLab:
    """A lab that is up, as the tests see it."""

    def __init__(self, lab: DockerLab, plan: LabPlan, session: Any):
        self.lab = lab
        self.plan = plan
        self.topology = plan.topology
        self.session = session
        self._results: dict[int, TunnelResult] = {}

    @property
    def name(self) -> str:
        return self.topology.name

    def _index(self, client: str | None, protocol: str | None, server: str | None) -> int:
        matches = [
            i
            for i, t in enumerate(self.topology.tunnels)
            if (client is None or t.client == client)
            and (protocol is None or t.protocol == protocol)
            and (server is None or t.server == server)
        ]
        if len(matches) != 1:
            raise LookupError(
                f"{len(matches)} tunnels in lab '{self.name}' match client={client} protocol={protocol} server={server}"
            )
        return matches[0]

    def check(
        self, client: str | None = None, protocol: str | None = None, server: str | None = None, *, again: bool = False
    ) -> TunnelResult:
        """Start and check one tunnel (once: later calls return the same result, unless ``again``:
        then the previous attempt is ended and the tunnel started and checked anew)."""
        if again:
            self._results.pop(self._index(client, protocol, server), None)
        self.check_all(only=[self._index(client, protocol, server)])
        return self._results[self._index(client, protocol, server)]

    def check_all(self, only: list[int] | None = None) -> list[TunnelResult]:
        indices = list(only if only is not None else range(len(self.topology.tunnels)))
        wanted = [i for i in indices if i not in self._results]
        if wanted:
            from lab.orchestrate import check_plan

            for i, result in zip(wanted, check_plan(self.session, self.lab, self.plan, only=wanted)):
                self._results[i] = result
        return [self._results[i] for i in indices]

    def run_steps(self, captures: Path | None = None) -> list[StepResult]:
        """The topology's ``steps:`` in order (docs/scenarios.md); capture steps' pcaps go into ``captures`` (default: a new temp folder)."""
        from lab.steps.runner import run_steps

        captures = captures or Path(tempfile.mkdtemp(prefix=f"vpnlab-{self.name}-"))
        return run_steps(self.lab, self.plan, self.session.capabilities(), self.session.concurrency, self._results, captures)

    def exec(self, node: str, command: str) -> ExecResult:
        return self.lab.exec(node, command)

    @property
    def runtime(self) -> str:
        """The name of the runtime the lab runs on ('docker', 'uml', ...)."""
        return self.session.runtime.name

    def host(self, node: str) -> Any:
        """A testinfra host for a node: testinfra's docker backend, aimed at the lab's engine."""
        from testinfra.host import Host

        return Host(EngineDockerBackend(container_name(self.name, node), self.session.runtime.engine_url))


class EngineDockerBackend(DockerBackend):
    """testinfra's docker:// backend aimed at a named engine (any runtime's ``engine_url``)."""

    def __init__(self, name: str, engine: str, *args: Any, **kwargs: Any):
        self.engine = engine
        super().__init__(name, *args, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        cmd = self.get_command(command, *args)
        out = self.run_local("docker -H %s exec %s /bin/sh -c %s", self.engine, self.name, cmd)
        out.command = self.encode(cmd)
        return out


def assert_tunnel(result: TunnelResult, expected: str) -> None:
    """Fail, with the reason and the evidence, unless the tunnel was observed ``expected``."""
    __tracebackhide__ = True
    if result.observed == "skipped":
        pytest.skip(f"{result.id}: {result.reason}")
    if result.observed != expected:
        evidence = json.dumps(result.evidence, indent=2)[:6000]
        pytest.fail(
            f"tunnel {result.id}: expected {expected}, observed {result.observed} after {result.seconds} s\n"
            f"reason: {result.reason}\nevidence:\n{evidence}",
            pytrace=False,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vpnlab")
    group.addoption("--vpnlab-keep", action="store_true", help="leave labs running after the tests")
    group.addoption(
        "--vpnlab-require-engine",
        action="store_true",
        help="fail (instead of skip) when no Docker engine answers",
    )
    from lab.runtime.registry import CHOICES, choices_help

    group.addoption("--vpnlab-runtime", choices=CHOICES, default="auto", help=choices_help())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vpnlab_topology(path, runtime=None): the topology vpnlab_lab brings up for the module"
    )
    config.addinivalue_line(
        "markers", "requires_kernel(*features): skip unless the lab's kernel has these features (see lab.kernel)"
    )
    config.addinivalue_line(
        "markers", "vpnlab_matrix(profiles=None, protocols=None): parametrize vpnlab_cell by matrix cells"
    )


class Runtimes:
    """One session per runtime, opened on first use (a guest boots at most once per test run).

    Which runtime a topology or a test gets is decided by the same policy as the CLI's
    (lab.runtime.registry.choose_runtime), from the host kernel's missing features.
    """

    def __init__(self, choice: str, host_session: Any):
        from lab.runtime.registry import HOST

        self.choice = choice
        self.host = host_session
        self._sessions: dict[str, Any] = {HOST: host_session}

    def opened(self, name: str) -> Any | None:
        """The session of runtime ``name`` if this test run has opened it, else None."""
        return self._sessions.get(name)

    def session(self, name: str) -> Any:
        """The session of one runtime by its registry name ('docker', 'uml', ...), opened on first use."""
        if name not in self._sessions:
            from lab.orchestrate import Session

            session = Session(self.host.host)
            try:
                session.open_runtime(name)
            except VpnlabError as exc:
                session.close()
                pytest.fail(str(exc), pytrace=False)
            self._sessions[name] = session
        return self._sessions[name]

    def for_needs(self, needs: Callable[[], dict[str, list[str]]]) -> Any:
        """The session --vpnlab-runtime gives work whose host-kernel gaps ``needs()`` names."""
        from lab.runtime.registry import choose_runtime

        return self.session(choose_runtime(self.choice, needs).name)

    def for_topology(self, topology: Topology) -> Any:
        return self.for_needs(lambda: self.host.missing_on_host(topology))

    def close(self, keep: bool) -> None:
        for session in self._sessions.values():
            if session is not self.host:
                session.close(keep_guest=keep)


@pytest.fixture(scope="session")
def vpnlab_session(request: pytest.FixtureRequest) -> Any:
    """The host engine's session (images are built there)."""
    from lab.orchestrate import Session
    from lab.runtime.engine import connect
    from lab.runtime.host import HostRuntime

    try:
        client = connect()
    except DockerUnavailable as exc:
        if request.config.getoption("--vpnlab-require-engine"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    session = Session(client)
    try:
        session.ensure_images()
    except VpnlabError as exc:
        pytest.fail(str(exc), pytrace=False)
    session.runtime = HostRuntime("the host's Docker engine", client)
    return session


@pytest.fixture(scope="session")
def vpnlab_runtimes(request: pytest.FixtureRequest, vpnlab_session: Any) -> Iterator[Runtimes]:
    runtimes = Runtimes(request.config.getoption("--vpnlab-runtime"), vpnlab_session)
    try:
        yield runtimes
    finally:
        runtimes.close(keep=request.config.getoption("--vpnlab-keep"))


def _load(request: pytest.FixtureRequest, topology: str | Path | dict[str, Any] | Topology) -> tuple[Topology, str]:
    if isinstance(topology, Topology):
        return topology, request.node.nodeid
    if isinstance(topology, dict):
        return parse_topology(yaml.safe_dump(topology), source=f"{request.node.name} (inline)"), request.node.nodeid
    path = _resolve(request, str(topology))
    return load_topology(path), str(path)


@contextmanager
def lab_from(
    request: pytest.FixtureRequest,
    runtimes: Runtimes,
    topology: str | Path | dict[str, Any] | Topology,
    *,
    runtime: str | None = None,
    check_all: bool = False,
) -> Iterator[RunningLab]:
    """Bring a lab up (a path, a dict or a Topology) and remove it afterwards whatever happened.

    ``runtime`` forces a runtime by name, e.g. 'docker' or 'uml' (default: as --vpnlab-runtime decides for the
    topology); ``check_all`` checks every tunnel at once, in parallel, before the body runs.
    A module-scoped fixture for one more lab is then four lines::

        @pytest.fixture(scope="module")
        def no_helper(request, vpnlab_runtimes):
            with lab_from(request, vpnlab_runtimes, "topologies/pptp-no-helper.yml", check_all=True) as lab:
                yield lab
    """
    from lab import orchestrate

    model, source = _load(request, topology)
    session = runtimes.session(runtime) if runtime else runtimes.for_topology(model)
    try:
        plan = orchestrate.plan_for(session, model)
        lab = orchestrate.up(session, plan, source=source, mode="run")
    except VpnlabError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        running = RunningLab(lab, plan, session)
        if check_all:
            running.check_all()
        yield running
    finally:
        if not request.config.getoption("--vpnlab-keep"):
            lab.down()


def _resolve(request: pytest.FixtureRequest, path: str) -> Path:
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    for base in (Path(str(request.path)).parent, Path(str(request.config.rootpath))):
        if (base / candidate).exists():
            return base / candidate
    return candidate


def lab_fixture(
    topology: str | Path | dict[str, Any],
    *,
    runtime: str | None = None,
    check_all: bool = True,
    scope: str = "module",
) -> Any:
    """A fixture that brings up one more lab (all its tunnels checked at once, by default)::

        no_helper = lab_fixture("topologies/pptp-no-helper.yml")
    """

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def fixture(request: pytest.FixtureRequest, vpnlab_runtimes: Runtimes) -> Iterator[RunningLab]:
        with lab_from(request, vpnlab_runtimes, topology, runtime=runtime, check_all=check_all) as lab:
            yield lab

    return fixture


@pytest.fixture(scope="module")
def vpnlab_lab(request: pytest.FixtureRequest, vpnlab_runtimes: Runtimes) -> Iterator[RunningLab]:
    """The lab of the module's ``vpnlab_topology`` marker, up for the whole module."""
    marker = request.node.get_closest_marker("vpnlab_topology")
    if marker is None:
        pytest.fail("vpnlab_lab needs @pytest.mark.vpnlab_topology('path/to/topology.yml')", pytrace=False)
    with lab_from(request, vpnlab_runtimes, marker.args[0], runtime=marker.kwargs.get("runtime")) as lab:
        yield lab


@pytest.fixture
def vpnlab_factory(request: pytest.FixtureRequest, vpnlab_runtimes: Runtimes) -> Iterator[Any]:
    """make(topology, runtime=None) -> RunningLab, where topology is a path, a dict or a Topology."""
    with ExitStack() as stack:

        def make(topology: str | Path | dict[str, Any] | Topology, runtime: str | None = None) -> RunningLab:
            return stack.enter_context(lab_from(request, vpnlab_runtimes, topology, runtime=runtime))

        yield make


@pytest.fixture(autouse=True)
def _vpnlab_requires_kernel(request: pytest.FixtureRequest) -> None:
    """Skip a test marked requires_kernel(...) with the missing feature named."""
    marker = request.node.get_closest_marker("requires_kernel")
    if marker is None:
        return
    from lab.kernel import FEATURE_LABELS

    runtimes: Runtimes = request.getfixturevalue("vpnlab_runtimes")

    def needs() -> dict[str, list[str]]:
        host_features = runtimes.host.capabilities(runtimes.host.host).features
        return {request.node.name: [FEATURE_LABELS.get(f, f) for f in marker.args
                                    if host_features.available(f) is not True]}

    features = runtimes.for_needs(needs).capabilities().features
    missing = [f for f in marker.args if features.available(f) is not True]
    if missing:
        names = ", ".join(FEATURE_LABELS.get(f, f) for f in missing)
        pytest.skip(f"kernel {features.release} lacks {names}")


# --- matrix cells as tests ------------------------------------------------------------------------
#
#     @pytest.mark.vpnlab_matrix(profiles=["open", "no-helpers"], protocols=["wireguard", "pptp"])
#     def test_passthrough(vpnlab_cell):
#         assert_cell(vpnlab_cell)
#
# One test per (profile, protocol), ids like 'open-pptp'; each profile's lab comes up once per
# test session, all its cells are checked together, and it is removed before its first test reports.


def assert_cell(cell: Any) -> None:
    """Fail, with the observed reason, the documented one and the evidence, unless the cell is as expected."""
    __tracebackhide__ = True
    from lab.matrix.text import clean, evidence_summary

    if cell.observed == "skipped":
        pytest.skip(f"{cell.profile}-{cell.protocol}: {cell.reason}")
    if not cell.passed:
        documented = cell.expected_reason or f"the profile expects it {cell.expect}"
        pytest.fail(
            f"{cell.profile} · {cell.protocol}: expected {cell.expect}, observed {cell.observed} after {cell.seconds} s\n"
            f"documented: {clean(documented)}\nobserved: {clean(cell.reason)}\nevidence:\n{evidence_summary(cell)}",
            pytrace=False,
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("vpnlab_matrix")
    if marker is None or "vpnlab_cell" not in metafunc.fixturenames:
        return
    from lab.matrix.pytest_cells import marker_pairs

    pairs = marker_pairs(marker)
    metafunc.parametrize("vpnlab_cell", pairs, ids=[f"{p}-{q}" for p, q in pairs], indirect=True, scope="function")


@pytest.fixture(scope="session")
def _vpnlab_matrix_labs(request: pytest.FixtureRequest) -> Any:
    from lab.matrix.pytest_cells import MatrixLabs

    return MatrixLabs()


@pytest.fixture
def vpnlab_cell(request: pytest.FixtureRequest, _vpnlab_matrix_labs: Any) -> Any:
    """The matrix cell of this test's (profile, protocol), from its profile's shared lab."""
    marker = request.node.get_closest_marker("vpnlab_matrix")
    if marker is None or not hasattr(request, "param"):
        pytest.fail("vpnlab_cell needs @pytest.mark.vpnlab_matrix(profiles=[...], protocols=[...])", pytrace=False)
    runtimes = request.getfixturevalue("vpnlab_runtimes")
    return _vpnlab_matrix_labs.cell(marker, request.param, runtimes)
