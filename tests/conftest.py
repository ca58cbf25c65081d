"""Test-wide configuration: fixtures live in tests/helpers and are loaded here."""

pytest_plugins = ["tests.helpers.fixtures", "tests.helpers.simulator", "tests.helpers.tls"]
