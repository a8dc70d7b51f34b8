"""Session-wide test setup: loopback-only networking, and the request log never
lands in the developer's home.

Every router a test starts records its requests (``interlock.runtime.store``);
the default file is per-user (``$XDG_DATA_HOME/interlock/interlock.db``).  Here
both ``XDG_DATA_HOME`` and ``INTERLOCK_DB`` point into a temporary directory for
the whole session (subprocess servers inherit them).  Tests that check the
path rules set or remove them with ``monkeypatch``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Loopback only: this process and every Python subprocess it starts refuse TCP
# connects to non-loopback addresses before they happen (tests/netguard).
_GUARD = Path(__file__).resolve().parent / "netguard"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(_GUARD), os.environ.get("PYTHONPATH", "")) if p
)
sys.path.insert(0, str(_GUARD))
import sitecustomize as _netguard  # noqa: E402

if getattr(_netguard, "__file__", "") and Path(_netguard.__file__).parent != _GUARD:
    # another sitecustomize was imported first: install ours explicitly
    sys.path.remove(str(_GUARD))
    import importlib.util

    _spec = importlib.util.spec_from_file_location("_netguard", _GUARD / "sitecustomize.py")
    assert _spec is not None and _spec.loader is not None
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))


@pytest.fixture(autouse=True, scope="session")
def _private_request_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.mktemp("interlock-data")
    saved = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "INTERLOCK_DB")}
    os.environ["XDG_DATA_HOME"] = str(root)
    os.environ["INTERLOCK_DB"] = str(root / "interlock" / "session.db")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
