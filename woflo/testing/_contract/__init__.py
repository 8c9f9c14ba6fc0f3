"""The contract suite's test classes, one module per part (see `woflo.testing.contract`)."""
