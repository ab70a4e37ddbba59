"""The Faust app and its agents (features, predict, decide, execute): thin wrappers over pure logic."""
