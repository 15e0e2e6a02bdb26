"""Node functions named by module, imported when first needed: building a pipeline imports no method code.

Kedro builds every registered pipeline at each start-up (``kedro run --pipelines=X``, ``kedro registry
list``, ``kedro viz``), but a run executes the nodes of one or a few. A pipeline module therefore names
its nodes' functions through :class:`NodeFunctions` instead of importing them::

    nodes = NodeFunctions(f"{__package__}.nodes")
    Node(nodes.evaluate_models, inputs=[...], outputs=[...], name=...)

``nodes.evaluate_models`` is a :class:`NodeFunction`: the module and the function's name, nothing
imported. It is a wrapper in the ``functools.wraps`` sense (``__wrapped__``, ``__annotations__``), so
whatever looks through it imports the module then: Kedro's typed parameters (``params:x`` handed to a
node as its annotated config model: ``inspect.signature`` and ``typing.get_type_hints`` of the nodes of
the pipelines being run, at the start of the run) and the node's first call. So ``kedro run
--pipelines=feature_engineering`` never imports PyTorch, Optuna or matplotlib, and the nodes modules
keep ordinary top-level imports. A pipeline names only its own nodes module's functions
(a library function run as a node is imported there), so the import graph (``lint-imports``, the DVC
stages' code deps) still sees all a stage runs.

What Kedro cannot see through it: the node's signature when the node is built (it checks the inputs
against it; ``tests/pipelines/test_wiring.py`` makes that check for every node of every pipeline),
whether the function is a generator function (none of the nodes is one; the same test checks it), the
source code kedro-viz shows for a node (its panel is empty) and the file ``%load_node`` (``kedro
ipython``) reads a node's imports from.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


class NodeFunction:
    """The function ``name`` of module ``module``, imported when first called or looked through.

    Named like the function (Kedro's logs and default node names read the same); picklable (by names)."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def resolve(self) -> Callable[..., Any]:
        """The function itself (importing its module)."""
        function: Callable[..., Any] = getattr(importlib.import_module(self.module), self.name)
        return function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    @property
    def __name__(self) -> str:  # Kedro names a node by its function's __name__
        return self.name

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        """The function (importing its module): ``inspect.signature`` follows it, and
        ``typing.get_type_hints`` reads it, for the function's globals, before :attr:`__annotations__`."""
        return self.resolve()

    @property
    def __annotations__(self) -> dict[str, Any] | None:  # type: ignore[override]
        """The function's annotations once its module is imported, None before: Kedro reads them when
        it builds a node too (``inspect.signature(..., follow_wrapped=False)``), which must import nothing."""
        module = sys.modules.get(self.module)
        return None if module is None else getattr(module, self.name).__annotations__

    def __reduce__(self) -> tuple[type[NodeFunction], tuple[str, str]]:
        return NodeFunction, (self.module, self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeFunction) and (self.module, self.name) == (other.module, other.name)

    def __hash__(self) -> int:
        return hash((self.module, self.name))

    def __repr__(self) -> str:
        return f"NodeFunction({self.module!r}, {self.name!r})"


class NodeFunctions:
    """``NodeFunctions(module).f`` is the :class:`NodeFunction` ``module.f``; nothing is imported."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> NodeFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return NodeFunction(self._module, name)
