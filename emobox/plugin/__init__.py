"""Plugin machinery: hook specifications, spec types and the plugin registry."""
