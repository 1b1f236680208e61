"""Quickstart: federated logistic regression on scikit-learn's breast-cancer data."""
