"""Testing helpers shipped in the wheel: fixtures (a pytest plugin registered through the
``pytest11`` entry point) and, for transport authors, the conformance suites."""
