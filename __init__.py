"""interlock: a local-first LLM router.

The repository root is this package: ``interlock.compiler`` turns profiles and
catalogs into a decision table, ``interlock.runtime`` serves it.  Importing the
package has no side effects; ``interlock.Client`` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from interlock.runtime.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from interlock.runtime.client import Client

        return Client
    raise AttributeError(f"module 'interlock' has no attribute {name!r}")
