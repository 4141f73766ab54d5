"""The live path: source -> detector -> tracker -> embedder -> identities -> sinks, and the loop that runs it."""
