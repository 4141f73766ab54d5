"""Built-in YAML configs (read with dgnet_edge.config.load_config)."""
