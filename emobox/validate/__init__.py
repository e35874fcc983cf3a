"""Checks: contract checks on plugins and `emobox plugins doctor`."""
