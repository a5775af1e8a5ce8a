"""Tests of the registry and its stores."""
