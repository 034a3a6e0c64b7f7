"""Test support shared by the tiers. Modules with fixtures are registered as pytest plugins by the root
conftest (``pytest_plugins``); tests import plain helpers from here, never from a conftest or a test module."""
