"""Pure-torch networks of the SAM family, their builders and the registry (no numpy I/O, no Qt)."""
