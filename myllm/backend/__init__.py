"""What a backend is and how the core finds one: the contract, the registry, the precision rules."""
