"""The agents worker (features, predict, decide, execute): thin wrappers over the pure logic in `decision/`."""

# The agents, in the order records flow through them (`liqbot agents worker --agents` takes a subset)
AGENTS = ("features", "predict", "decide", "execute")
