"""The one Pulumi Mocks implementation, shared by the unit tests and the offline render.

It records every resource the program registers, and names Kubernetes
objects the way the provider's auto-naming would (logical name plus a
suffix), deterministically, so references such as envFrom and the Ingress
backend resolve to real names and two runs give identical output.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

# The wrapper Pulumi's RPC layer uses for a secret value.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# The annotation the Kubernetes provider puts on every object whose name it generated.
AUTONAMED_ANNOTATION = "pulumi.com/autonamed"


def is_secret_wrapper(value: Any) -> bool:
    """True for the object a secret input arrives as under mocks."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def auto_name(logical_name: str, resource_type: str) -> str:
    """The name the provider would generate, with a suffix derived from the type and logical name."""
    digest = hashlib.sha256(f"{resource_type}::{logical_name}".encode()).hexdigest()
    return f"{logical_name}-{digest[:8]}"


@dataclass(frozen=True)
class RecordedResource:
    """One resource registration seen by the mocks."""

    type: str
    name: str
    inputs: dict[str, Any]
    """The inputs as the engine received them (camelCase; secrets wrapped)."""
    state: dict[str, Any]
    """The inputs plus what the provider would fill in (metadata.name)."""
    custom: bool

    @property
    def is_kubernetes(self) -> bool:
        """True for Kubernetes objects (not components, not providers)."""
        return self.custom and self.type.startswith("kubernetes:") and not self.type.startswith("pulumi:providers")

    @property
    def kind(self) -> str:
        """The Kubernetes kind, e.g. Deployment."""
        return str(self.state.get("kind") or self.type.rsplit(":", 1)[-1])

    @property
    def object_name(self) -> str:
        """metadata.name of the object."""
        return str(self.state.get("metadata", {}).get("name", self.name))


@dataclass(frozen=True)
class Registration:
    """How the program registered one resource: where it sits in the tree and the options that decide updates.

    These are what a real `pulumi up` keys on: a changed URN (type chain, name or parent) without a matching
    alias is a delete and a create; ignore_changes decides what an update may touch.
    """

    urn: str
    parent: str
    """The parent's URN; the stack's for top-level resources."""
    custom: bool
    ignore_changes: tuple[str, ...]
    aliases: tuple[str, ...]
    """Each alias as text: the old parent's URN, or `<no parent>`, plus name/type when they differ."""
    protect: bool
    delete_before_replace: bool

    @property
    def type(self) -> str:
        """The resource's own type token (the last element of the URN's type chain)."""
        return urn_type(self.urn)


def urn_type(urn: str) -> str:
    """A resource's own type token from its URN (`urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>`)."""
    return urn.split("::")[2].rsplit("$", 1)[-1]


def _alias_text(alias: Any) -> str:
    spec = alias.spec
    parent = "<no parent>" if spec.noParent else spec.parentUrn or "<same parent>"
    extra = [f"{key}={value}" for key, value in (("name", spec.name), ("type", spec.type)) if value]
    return " ".join([parent, *extra]) if spec.ListFields() else alias.urn


class RecordingMonitor(MockMonitor):
    """Pulumi's mock monitor, also keeping each registration's URN, parent and options."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        """Record the registration, then let the mock monitor answer it."""
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    urn=self.make_urn(request.parent, request.type, request.name),
                    parent=request.parent,
                    custom=bool(request.custom),
                    ignore_changes=tuple(request.ignoreChanges),
                    aliases=tuple(_alias_text(alias) for alias in request.aliases),
                    protect=bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                )
            )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


class KubernetesMocks(pulumi.runtime.Mocks):
    """Records registrations and auto-names Kubernetes objects."""

    def __init__(self) -> None:
        self.resources: list[RecordedResource] = []
        self.monitor: RecordingMonitor | None = None
        """The monitor of the current run (set by `start_mocks`), holding the registrations."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """Record the resource; return its id and state, with metadata.name filled in."""
        state = copy.deepcopy(args.inputs)
        if args.custom and args.typ.startswith("kubernetes:"):
            metadata = state.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            if not metadata.get("name"):
                # As the provider does: a generated name, and an annotation saying so.
                metadata["name"] = auto_name(args.name, args.typ)
                metadata["annotations"] = {**(metadata.get("annotations") or {}), AUTONAMED_ANNOTATION: "true"}
            state["metadata"] = metadata
        self.resources.append(
            RecordedResource(type=args.typ, name=args.name, inputs=args.inputs, state=state, custom=bool(args.custom))
        )
        namespace = state.get("metadata", {}).get("namespace") if isinstance(state.get("metadata"), dict) else None
        resource_id = f"{namespace}/{state['metadata']['name']}" if namespace else args.name
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """The program makes no provider calls; answer empty."""
        return {}, None


@dataclass
class ProgramRun:
    """What a program run under mocks produced."""

    resources: list[RecordedResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    registrations: list[Registration] = field(default_factory=list)
    """Every resource's URN, parent and options, in registration order."""


def start_mocks(
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: Sequence[str],
    mocks: KubernetesMocks | None = None,
) -> KubernetesMocks:
    """Reset Pulumi's global state and install `mocks` (fresh ones by default) with this config."""
    runtime_settings.ROOT.set(None)
    mocks = mocks or KubernetesMocks()
    mocks.monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=True, monitor=mocks.monitor)
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    return mocks


def run_program(
    program: Callable[[], object],
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: Sequence[str] = (),
    mocks: KubernetesMocks | None = None,
) -> ProgramRun:
    """Run `program` under fresh mocks and return its resources and resolved stack outputs.

    Exceptions from the program (a `ConfigError`, say) propagate after the
    runtime has settled; pass `mocks` to inspect what was registered before that.
    """
    mocks = start_mocks(project, stack, config, secret_keys, mocks)
    assert mocks.monitor is not None
    run = ProgramRun(resources=mocks.resources, registrations=mocks.monitor.registrations)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def execute() -> pulumi.Output[Any]:
        program()
        root = runtime_settings.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
        return pulumi.Output.from_input(exported).apply(run.outputs.update)

    execute()
    return run
