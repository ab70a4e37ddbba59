"""The agents worker (features, predict, decide, execute): thin wrappers over the pure logic in `decision/`."""
