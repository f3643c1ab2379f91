"""Use cases. Each module owns one capability's rules and reaches storage only through the ports."""
