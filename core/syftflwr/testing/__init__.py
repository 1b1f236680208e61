"""Testing helpers shipped in the wheel, for Flower apps and transport authors.

* :mod:`syftflwr.testing.conformance` — the suites a transport subclasses to prove it
  behaves like every other one (docs/plugins.md).
* :mod:`syftflwr.testing.pytest_plugin` — fixtures (``memory_namespace``,
  ``register_transport``), loaded by pytest through the ``pytest11`` entry point.
* :mod:`syftflwr.testing.registration` — register a module as a transport without
  installing it (what ``register_transport`` uses).
* :mod:`syftflwr.testing.probe` — what listing and detecting a transport imports, in a
  fresh interpreter (the suite and ``syftflwr transports --check`` use it).
* :mod:`syftflwr.testing.datasite_process` — a datasite served from another OS process.
* :mod:`syftflwr.testing.simulate` — `syftflwr simulate` in a process of its own.
* :mod:`syftflwr.testing.jobs_flow` — apps with consent over a transport: submit,
  approve, serve one round, a changed app refused (each step a process of its own).

Importing this package is cheap; only the conformance suites import pytest.
"""
