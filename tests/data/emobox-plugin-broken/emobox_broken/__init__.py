"""Faulty emobox plugins, one fault per module (a test fixture)."""
