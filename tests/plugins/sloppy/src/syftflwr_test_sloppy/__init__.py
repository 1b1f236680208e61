"""A transport that misbehaves on purpose (tests/plugins/README.md)."""
