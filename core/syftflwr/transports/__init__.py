"""Transports built into core. They register through core's own entry points, exactly
like third-party plugins do."""
