"""Scanning: targets, per-host probing and the orchestrator."""
