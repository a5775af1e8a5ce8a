"""Test-wide settings: hypothesis checks behaviour, never speed (no per-example deadline: a
busy 2-core machine must not fail a property that holds)."""

from hypothesis import settings

settings.register_profile("remora", deadline=None)
settings.load_profile("remora")
