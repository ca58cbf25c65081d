"""The Personify360 simulator: a stand-in for Personify Data Services for the demo, tests and benchmarks."""
