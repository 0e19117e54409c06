"""Model definitions: configs and ``nn.Module``s only, no I/O beyond loading encoder weights."""
