"""Test app of tests/reliability/test_aggregator_resume.py."""
