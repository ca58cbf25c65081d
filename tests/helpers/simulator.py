"""Pytest fixtures that run the Personify360 simulator on a free loopback port."""
