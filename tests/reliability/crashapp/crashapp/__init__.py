"""Test app of the reliability tests (see tests/reliability/test_datasite_crash.py)."""
