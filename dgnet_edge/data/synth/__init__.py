"""The synthetic pedestrian world: a procedural renderer written in Market-1501 layout."""
