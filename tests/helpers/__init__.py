"""Test helpers shared by the test modules (tests never import each other)."""
