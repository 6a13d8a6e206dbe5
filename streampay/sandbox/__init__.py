"""Development tools: a local Horizon (`flask stellar sandbox`) that the tests and benchmarks also use."""
