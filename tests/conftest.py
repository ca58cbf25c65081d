"""Test-wide configuration: fixtures live in tests/helpers and are loaded here."""

from hypothesis import settings

pytest_plugins = ["tests.helpers.fixtures", "tests.helpers.simulator", "tests.helpers.tls"]

# Property tests check behaviour, not speed: on a loaded machine a first example can take longer than
# Hypothesis's 200 ms deadline, and the test then fails for nothing it asserts (speed lives in bench/).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
